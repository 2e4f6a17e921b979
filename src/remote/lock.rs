//! The scripts behind the per-agent lock (`crate::lock` has the
//! protocol). Every script prints exactly one line on stdout, the state
//! of the lock as seen by the caller once the script is done: `lock
//! acquired`, `lock free`, `lock held {json}` or `lock stale-replaced
//! {json}`. The JSON is the holder's lock line plus `now` (the agent's
//! clock when the script looked) and `stale`.

use std::time::Duration;

use super::Script;
use crate::lock::{HELD_EXIT, LOCK_PATH, LockOwner, STALE_AFTER};
use crate::shell::quote;

/// Takes the lock, or refreshes it when the caller (or `takeover_from`, the
/// run a `--resume` continues) already holds it, or replaces a stale one.
/// Exits `HELD_EXIT` when another live run holds it.
pub fn acquire(owner: &LockOwner, takeover_from: Option<&str>, deadline: Duration) -> Script {
    Script::new(
        "taking the agent's lock",
        deadline,
        acquire_script_at(LOCK_PATH, owner, takeover_from),
    )
}

/// Moves `refreshed` to now if the caller holds the lock; exits `HELD_EXIT`
/// (printing `lock free` or `lock held …`) if it does not, which means a
/// rollout must stop touching the host.
pub fn refresh(owner_id: &str, deadline: Duration) -> Script {
    Script::new(
        "refreshing the agent's lock",
        deadline,
        refresh_script_at(LOCK_PATH, owner_id),
    )
}

/// Removes the lock if the caller holds it; another run's lock is left
/// alone and reported.
pub fn release(owner_id: &str, deadline: Duration) -> Script {
    Script::new(
        "releasing the agent's lock",
        deadline,
        release_script_at(LOCK_PATH, owner_id),
    )
}

/// Removes the lock if `owner_id` still holds it, whoever the caller is
/// (`unlock`): a lock that changed hands since it was shown is left.
pub fn remove(owner_id: &str, deadline: Duration) -> Script {
    Script::new(
        "removing the agent's lock",
        deadline,
        release_script_at(LOCK_PATH, owner_id),
    )
}

/// Reports the lock without taking it (for `plan`).
pub fn check(deadline: Duration) -> Script {
    Script::new(
        "reading the agent's lock",
        deadline,
        check_script_at(LOCK_PATH),
    )
}

fn json_str(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

/// Lock files start with the owner, so "is it ours" is a prefix match that
/// needs no JSON parser on the agent; the closing `",` keeps `run-1` from
/// matching `run-10`.
fn owner_prefix(id: &str) -> String {
    format!("{{\"owner\":{},", json_str(id))
}

/// Shell definitions shared by every script. `since` and `refreshed` come
/// from the agent's `date +%s`, so only the agent's clock judges staleness.
fn prelude(lock: &str) -> String {
    let (dir, name) = lock.rsplit_once('/').expect("lock paths are absolute");
    let dir = if dir.is_empty() { "/" } else { dir };
    format!(
        "set -u\n\
         lock={lock}\n\
         guard={guard}\n\
         template={template}\n\
         stale_after={stale}\n\
         now=$(date +%s)\n\
         cur=\n\
         read_lock() {{ cur=$(head -n 1 -- \"$lock\" 2>/dev/null); }}\n\
         is_stale() {{\n  \
           refreshed=$(printf '%s\\n' \"$cur\" | sed -n 's/.*\"refreshed\": *\\([0-9][0-9]*\\).*/\\1/p')\n  \
           [ -z \"$refreshed\" ] && return 0\n  \
           [ $((now - refreshed)) -ge \"$stale_after\" ]\n\
         }}\n\
         holder() {{\n  \
           if is_stale; then s=true; else s=false; fi\n  \
           printf '%s\\n' \"$cur\" | sed \"s/}}[[:space:]]*\\$/,\\\"now\\\":$now,\\\"stale\\\":$s}}/\"\n\
         }}\n\
         report() {{\n  \
           if read_lock; then printf 'lock held %s\\n' \"$(holder)\"; else echo 'lock free'; fi\n\
         }}\n\
         # Every change to an existing lock happens under this guard, so a\n\
         # stale lock is replaced by one run only. flock's lock dies with the\n\
         # script; without flock only that rare race is left open.\n\
         guarded() {{\n  \
           command -v flock >/dev/null 2>&1 || return 0\n  \
           exec 9>>\"$guard\" || exit 1\n  \
           flock -w 10 9 || {{ echo \"timed out waiting for $guard\" >&2; exit 1; }}\n\
         }}\n\
         new_tmp() {{\n  \
           tmp=$(mktemp -- \"$template\") || exit 1\n  \
           trap 'rm -f -- \"$tmp\"' EXIT\n\
         }}\n",
        lock = quote(lock),
        guard = quote(&format!("{dir}/.{name}.guard")),
        template = quote(&format!("{dir}/.{name}.XXXXXX")),
        stale = STALE_AFTER.as_secs(),
    )
}

fn acquire_script_at(lock: &str, owner: &LockOwner, takeover_from: Option<&str>) -> String {
    let body = format!(
        "{{\"owner\":{},\"user\":{},\"host\":{},\"pid\":{},\"space\":{},\"since\":",
        json_str(&owner.id),
        json_str(&owner.user),
        json_str(&owner.host),
        owner.pid,
        json_str(&owner.space),
    );
    format!(
        "{prelude}\
         body={body}\n\
         mine={mine}\n\
         takeover={takeover}\n\
         write() {{ printf '%s%s,\"refreshed\":%s}}\\n' \"$body\" \"$1\" \"$now\" > \"$tmp\" && chmod 644 -- \"$tmp\"; }}\n\
         guarded\n\
         new_tmp\n\
         write \"$now\" || exit 1\n\
         # ln, unlike mv, fails if the lock exists: a new lock appears whole or\n\
         # not at all. One that vanished before the read was just released.\n\
         n=0\n\
         while :; do\n  \
           if err=$(ln -- \"$tmp\" \"$lock\" 2>&1); then echo 'lock acquired'; exit 0; fi\n  \
           read_lock && break\n  \
           n=$((n + 1))\n  \
           if [ \"$n\" -ge 5 ]; then echo \"cannot create $lock: $err\" >&2; exit 1; fi\n\
         done\n\
         take() {{ write \"$1\" && mv -f -- \"$tmp\" \"$lock\"; }}\n\
         case $cur in\n  \
           \"$mine\"*)\n    \
             since=$(printf '%s\\n' \"$cur\" | sed -n 's/.*\"since\": *\\([0-9][0-9]*\\).*/\\1/p')\n    \
             take \"${{since:-$now}}\" || exit 1\n    \
             echo 'lock acquired'; exit 0 ;;\n\
         esac\n\
         if [ -n \"$takeover\" ]; then\n  \
           case $cur in\n    \
             \"$takeover\"*) take \"$now\" || exit 1; echo 'lock acquired'; exit 0 ;;\n  \
           esac\n\
         fi\n\
         if is_stale; then\n  \
           old=$(holder)\n  \
           take \"$now\" || exit 1\n  \
           printf 'lock stale-replaced %s\\n' \"$old\"; exit 0\n\
         fi\n\
         printf 'lock held %s\\n' \"$(holder)\"\n\
         exit {held}\n",
        prelude = prelude(lock),
        body = quote(&body),
        mine = quote(&owner_prefix(&owner.id)),
        takeover = quote(&takeover_from.map(owner_prefix).unwrap_or_default()),
        held = HELD_EXIT,
    )
}

fn refresh_script_at(lock: &str, owner_id: &str) -> String {
    format!(
        "{prelude}\
         mine={mine}\n\
         guarded\n\
         if read_lock; then\n  \
           case $cur in\n    \
             \"$mine\"*)\n      \
               new_tmp\n      \
               printf '%s\\n' \"$cur\" | sed \"s/\\\"refreshed\\\": *[0-9]*/\\\"refreshed\\\":$now/\" > \"$tmp\" &&\n      \
               chmod 644 -- \"$tmp\" && mv -f -- \"$tmp\" \"$lock\" || exit 1\n      \
               echo 'lock acquired'; exit 0 ;;\n  \
           esac\n\
         fi\n\
         report\n\
         exit {held}\n",
        prelude = prelude(lock),
        mine = quote(&owner_prefix(owner_id)),
        held = HELD_EXIT,
    )
}

fn release_script_at(lock: &str, owner_id: &str) -> String {
    format!(
        "{prelude}\
         mine={mine}\n\
         guarded\n\
         if read_lock; then\n  \
           case $cur in\n    \
             \"$mine\"*) rm -f -- \"$lock\" || exit 1 ;;\n  \
           esac\n\
         fi\n\
         report\n",
        prelude = prelude(lock),
        mine = quote(&owner_prefix(owner_id)),
    )
}

/// Takes no guard: locks are only ever replaced whole, so a plain read
/// sees one complete version.
fn check_script_at(lock: &str) -> String {
    format!("{}report\n", prelude(lock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::unix_now;
    use crate::lock::{Holder, LockState, parse};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};

    fn owner(id: &str) -> LockOwner {
        LockOwner {
            id: id.to_string(),
            user: "alice".to_string(),
            host: "laptop".to_string(),
            pid: 4242,
            space: "boot-1/pid:[4026531836]".to_string(),
        }
    }

    fn spawn(script: &str) -> std::process::Child {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a script under the local sh, the way the agent would, and
    /// checks the one-line protocol on the way.
    fn sh(script: &str) -> (i32, LockState) {
        check_output(spawn(script).wait_with_output().unwrap())
    }

    fn check_output(out: Output) -> (i32, LockState) {
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stdout.lines().count(),
            1,
            "stdout {stdout:?}, stderr {stderr}"
        );
        assert!(stderr.is_empty(), "{stderr}");
        let state = parse(&stdout).unwrap_or_else(|e| panic!("{e}; stderr {stderr}"));
        (out.status.code().unwrap(), state)
    }

    /// A lock path whose folder needs quoting.
    fn lock_in(dir: &Path) -> String {
        let sub = dir.join("run 'lock'");
        std::fs::create_dir(&sub).unwrap();
        sub.join("calico-rollout.lock")
            .to_str()
            .unwrap()
            .to_string()
    }

    fn read(lock: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap()
    }

    /// Only the lock and the flock guard remain: no temp files.
    fn assert_tidy(lock: &str) {
        let dir = Path::new(lock).parent().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != ".calico-rollout.lock.guard")
            .collect();
        names.sort();
        let want: &[&str] = if Path::new(lock).exists() {
            &["calico-rollout.lock"]
        } else {
            &[]
        };
        assert_eq!(names, want);
    }

    fn stale_lock(lock: &str, id: &str) {
        std::fs::write(
            lock,
            format!(
                "{{\"owner\":\"{id}\",\"user\":\"bob\",\"host\":\"desk\",\"pid\":7,\"since\":1,\"refreshed\":1}}\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn acquire_hold_reacquire_release() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let a = owner("op-1-100");
        let mut b = owner("op-1-10");
        b.user = "b'ob $(id)\n\"x\"".to_string();

        assert_eq!(sh(&check_script_at(&lock)), (0, LockState::Free));
        assert_eq!(
            sh(&acquire_script_at(&lock, &a, None)),
            (0, LockState::Acquired)
        );
        assert_tidy(&lock);
        let v = read(&lock);
        assert_eq!(v["owner"], "op-1-100");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["host"], "laptop");
        assert_eq!(v["pid"], 4242);
        let since = v["since"].as_u64().unwrap();
        assert!(since.abs_diff(unix_now()) < 60, "{v}");
        assert_eq!(v["refreshed"], since);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        // Another run, even one whose id starts with ours, is refused.
        let (code, state) = sh(&acquire_script_at(&lock, &b, None));
        assert_eq!(code, HELD_EXIT);
        let LockState::Held(h) = state else {
            panic!("{state:?}")
        };
        assert_eq!(
            (h.owner.as_str(), h.pid, h.stale),
            ("op-1-100", 4242, false)
        );
        assert_eq!((h.since, h.refreshed), (since, since));
        assert!(h.now >= since);
        assert_eq!(read(&lock)["owner"], "op-1-100");
        assert_tidy(&lock);

        // check sees the same (at its own `now`), and never takes the lock.
        let (code, state) = sh(&check_script_at(&lock));
        let LockState::Held(seen) = state else {
            panic!("{state:?}")
        };
        assert_eq!(code, 0);
        assert_eq!(Holder { now: h.now, ..seen }, h);

        // The same run takes it again.
        assert_eq!(
            sh(&acquire_script_at(&lock, &a, None)),
            (0, LockState::Acquired)
        );
        assert_eq!(read(&lock)["since"], since);

        // Release by another run leaves it, and says who holds it.
        let (code, state) = sh(&release_script_at(&lock, "op-1-10"));
        assert_eq!(code, 0);
        assert!(
            matches!(state, LockState::Held(ref h) if h.owner == "op-1-100"),
            "{state:?}"
        );
        assert!(Path::new(&lock).exists());

        // Release by the holder removes it; then anyone may take it.
        assert_eq!(
            sh(&release_script_at(&lock, "op-1-100")),
            (0, LockState::Free)
        );
        assert!(!Path::new(&lock).exists());
        assert_eq!(
            sh(&release_script_at(&lock, "op-1-100")),
            (0, LockState::Free)
        );
        assert_eq!(
            sh(&acquire_script_at(&lock, &b, None)),
            (0, LockState::Acquired)
        );
        assert_eq!(read(&lock)["user"], b.user.as_str());
        assert_tidy(&lock);
    }

    #[test]
    fn stale_locks_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        stale_lock(&lock, "dead-run");

        let (code, state) = sh(&check_script_at(&lock));
        assert_eq!(code, 0);
        assert!(
            matches!(state, LockState::Held(ref h) if h.stale),
            "{state:?}"
        );

        let (code, state) = sh(&acquire_script_at(&lock, &owner("new-run"), None));
        assert_eq!(code, 0);
        let LockState::StaleReplaced(old) = state else {
            panic!("{state:?}")
        };
        assert_eq!(
            (old.owner.as_str(), old.user.as_str(), old.refreshed),
            ("dead-run", "bob", 1)
        );
        assert_eq!(read(&lock)["owner"], "new-run");
        assert_tidy(&lock);

        // A lock that is not ours to read counts as stale too.
        std::fs::write(&lock, "garbage\n").unwrap();
        let (code, state) = sh(&acquire_script_at(&lock, &owner("new-run-2"), None));
        assert_eq!(code, 0);
        assert!(
            matches!(state, LockState::StaleReplaced(ref h) if h.owner.contains("garbage")),
            "{state:?}"
        );
        assert_eq!(read(&lock)["owner"], "new-run-2");
    }

    #[test]
    fn a_resumed_run_takes_over_its_predecessors_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let old = owner("op-1-100");
        assert_eq!(
            sh(&acquire_script_at(&lock, &old, None)),
            (0, LockState::Acquired)
        );

        let new = owner("op-2-200");
        let (code, _) = sh(&acquire_script_at(&lock, &new, Some("op-1-10")));
        assert_eq!(code, HELD_EXIT, "a different predecessor does not count");
        let taken = sh(&acquire_script_at(&lock, &new, Some("op-1-100")));
        assert_eq!(taken, (0, LockState::Acquired));
        assert_eq!(read(&lock)["owner"], "op-2-200");
        assert_tidy(&lock);
    }

    #[test]
    fn refresh_moves_only_our_own_lock_forward() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        assert_eq!(
            sh(&refresh_script_at(&lock, "mine")),
            (HELD_EXIT, LockState::Free)
        );
        assert!(!Path::new(&lock).exists(), "refresh never creates a lock");

        stale_lock(&lock, "mine");
        assert_eq!(
            sh(&refresh_script_at(&lock, "mine")),
            (0, LockState::Acquired)
        );
        let v = read(&lock);
        assert_eq!(v["since"], 1);
        assert_eq!(v["owner"], "mine");
        assert!(
            v["refreshed"].as_u64().unwrap().abs_diff(unix_now()) < 60,
            "{v}"
        );
        assert_tidy(&lock);

        stale_lock(&lock, "theirs");
        let (code, state) = sh(&refresh_script_at(&lock, "mine"));
        assert_eq!(code, HELD_EXIT);
        assert!(
            matches!(state, LockState::Held(ref h) if h.owner == "theirs"),
            "{state:?}"
        );
        assert_eq!(read(&lock)["refreshed"], 1);
    }

    #[test]
    fn concurrent_acquires_never_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let (a, b) = (owner("run-a"), owner("run-b"));
        for i in 0..20 {
            // Half the rounds race for a free lock, half for a stale one.
            if i % 2 == 1 {
                stale_lock(&lock, "dead-run");
            }
            let children = [
                spawn(&acquire_script_at(&lock, &a, None)),
                spawn(&acquire_script_at(&lock, &b, None)),
            ];
            let results: Vec<_> = children
                .map(|c| check_output(c.wait_with_output().unwrap()))
                .into_iter()
                .collect();
            let won: Vec<_> = results.iter().filter(|(code, _)| *code == 0).collect();
            assert_eq!(won.len(), 1, "round {i}: {results:?}");
            let lost = results.iter().find(|(code, _)| *code != 0).unwrap();
            assert!(
                matches!(lost, (HELD_EXIT, LockState::Held(_))),
                "round {i}: {results:?}"
            );
            let winner = read(&lock)["owner"].as_str().unwrap().to_string();
            assert_tidy(&lock);
            std::fs::remove_file(&lock).unwrap();
            assert!(["run-a", "run-b"].contains(&winner.as_str()));
        }
    }

    #[test]
    fn scripts_use_the_real_path_and_quote_owners() {
        let s = acquire(&owner("o'x"), Some("p q"), Duration::from_secs(9)).text;
        assert!(s.contains("lock=/run/lock/calico-rollout.lock\n"), "{s}");
        let assigned = |var: &str| {
            let line = s
                .lines()
                .find(|l| l.starts_with(&format!("{var}=")))
                .unwrap();
            shlex::split(line).unwrap()
        };
        assert_eq!(assigned("mine"), [r#"mine={"owner":"o'x","#]);
        assert_eq!(assigned("takeover"), [r#"takeover={"owner":"p q","#]);
        let d = Duration::from_secs(9);
        assert!(
            release("r", d)
                .text
                .contains("lock=/run/lock/calico-rollout.lock\n")
        );
        assert!(
            refresh("r", d)
                .text
                .contains("lock=/run/lock/calico-rollout.lock\n")
        );
        assert!(
            check(d)
                .text
                .contains("lock=/run/lock/calico-rollout.lock\n")
        );
    }
}
