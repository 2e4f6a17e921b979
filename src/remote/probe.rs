//! The facts probe: one script that reads everything the planners need,
//! printed as records (`KEY EXIT LENGTH`, the output, a newline) for
//! `facts::parse`. It starts each agent tool at most once: one `systemctl
//! show` for every unit, one `docker version` (does the daemon answer),
//! one `dockerd --version` (what a restart starts), one `docker inspect`
//! for the containers and one for the images, one `stat` for the managed
//! files. A file is
//! hashed only when its `stat` differs from what the manifest recorded at
//! install time (size, mtime, ctime, inode: user space cannot set ctime
//! back), unless asked to verify everything.

use std::time::Duration;

use super::Script;
use crate::desired::{self, Desired};
use crate::facts::{NOT_ROOT, TEXT_RECORD, TEXTS_READ, UNITS};
use crate::layout::Layout;
use crate::shell::{Cmd, quote};

/// DC/OS's own answer to "which address does this agent use".
pub const DETECT_IP: &str = "/opt/mesosphere/bin/detect_ip";

/// The unit properties the planners read.
const UNIT_PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,UnitFileState,ExecStart";

/// The helpers every probe line uses. `out` prints one record; `p` runs a
/// command and records its stdout and stderr, `q` its stdout only; `f`
/// records a file's exact bytes (command substitution alone would drop
/// trailing newlines, and daemon.json's compare-and-swap needs them all);
/// `lsd` lists a folder without a process.
pub(crate) const RECORD_HELPERS: &str = "export LC_ALL=C\n\
    out() { printf '%s %s %s\\n%s\\n' \"$1\" \"$2\" \"${#3}\" \"$3\"; }\n\
    p() { k=$1; shift; o=$(\"$@\" 2>&1); r=$?; out \"$k\" \"$r\" \"$o\"; }\n\
    q() { k=$1; shift; o=$(\"$@\" 2>/dev/null); r=$?; out \"$k\" \"$r\" \"$o\"; }\n\
    f() { if [ -r \"$2\" ]; then o=$(cat -- \"$2\"; printf x); o=${o%x}; out \"$1\" 0 \"$o\"; else out \"$1\" 1 ''; fi; }\n\
    lsd() { for x in \"$1\"/*; do [ -e \"$x\" ] && printf '%s\\n' \"${x##*/}\"; done; return 0; }\n";

/// Prints the run history as `History::parse` reads it, with shell
/// builtins only. Run ids are checked before they become paths.
fn history_dump(layout: &Layout) -> String {
    format!(
        "history_dump() {{\n  \
           h={history}; r={runs}\n  \
           [ -f \"$h\" ] || return 0\n  \
           while IFS= read -r id; do\n    \
             case $id in ''|.*|-*|*[!A-Za-z0-9._-]*) continue ;; esac\n    \
             d=\"$r/$id\"\n    \
             [ -d \"$d\" ] || continue\n    \
             st=; [ -e \"$d/state\" ] && {{ IFS= read -r st < \"$d/state\" || :; }}\n    \
             printf 'run %s %s\\n' \"$id\" \"${{st:-applying}}\"\n    \
             for f in \"$d\"/[0-9]*.json; do\n      \
               [ -e \"$f\" ] || continue\n      \
               n=${{f##*/}}; n=${{n%.json}}\n      \
               u=0; [ -e \"$d/$n.undone\" ] && u=1\n      \
               rec=; IFS= read -r rec < \"$f\" || :\n      \
               printf 'change %s %s %s %s\\n' \"$id\" \"$n\" \"$u\" \"$rec\"\n    \
             done\n    \
             for f in \"$d\"/*.restored; do\n      \
               [ -e \"$f\" ] || continue\n      \
               n=${{f##*/}}; printf 'restored %s %s\\n' \"$id\" \"${{n%.restored}}\"\n    \
             done\n  \
           done < \"$h\"\n\
         }}\n",
        history = quote(&layout.history_file()),
        runs = quote(&layout.runs_dir()),
    )
}

/// Prints `sha256  path` for each file that exists, like `sha256sum`: from
/// the manifest when the file's `stat` still matches the recorded one,
/// else by hashing it. `hashes 1 …` hashes everything.
fn hashes_fn(layout: &Layout) -> String {
    format!(
        "hashes() {{\n\
         verify=$1; shift\n\
         man=; [ \"$verify\" = 1 ] || man=$(cat -- {manifest} 2>/dev/null)\n\
         st=$(stat -c '%n|%s|%y|%z|%i' -- \"$@\" 2>/dev/null)\n\
         need=\n\
         while IFS='|' read -r n s m c i; do\n\
         [ -n \"$n\" ] || continue\n\
         hit=\n\
         while IFS='|' read -r mn ms mm mc mi msha; do\n\
         if [ \"$mn|$ms|$mm|$mc|$mi\" = \"$n|$s|$m|$c|$i\" ]; then hit=$msha; break; fi\n\
         done <<EOF\n\
         $man\n\
         EOF\n\
         if [ -n \"$hit\" ]; then printf '%s  %s\\n' \"$hit\" \"$n\"; else need=\"$need $n\"; fi\n\
         done <<EOF\n\
         $st\n\
         EOF\n\
         # Managed paths never hold white space: split on purpose.\n\
         [ -z \"$need\" ] || sha256sum -- $need 2>/dev/null\n\
         return 0\n\
         }}\n",
        manifest = quote(&layout.manifest_file()),
    )
}

/// How much the probe reads beyond what the planners need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reads {
    /// Hash every managed file, trusting no manifest.
    pub verify: bool,
    /// Bring back the managed text files' contents, for `plan`'s diffs.
    pub texts: bool,
}

/// The probe's own part of a script (the lock may come before it). It
/// leaves what `detect_ip` printed in `$detected`, for checks that follow
/// in the same script (`remote::status`), so that it runs once.
pub fn probe_body(want: &Desired, layout: &Layout, reads: Reads) -> String {
    let mut files: Vec<String> = Vec::new();
    // Small rendered files only: binaries are compared by hash alone.
    let mut texts: Vec<String> = Vec::new();
    if let Some(p) = &want.etcd_proxy {
        files.push(p.unit_file.path.to_string());
        texts.push(p.unit_file.path.to_string());
        if let desired::EtcdRuns::Managed(bin) = &p.binary {
            files.push(bin.path.to_string());
        }
    }
    if let Some(t) = &want.etcd_tls {
        files.extend(t.files.iter().map(|f| f.path.to_string()));
    }
    if let Some(c) = &want.cni {
        files.extend(c.binaries.iter().map(|b| b.path.to_string()));
        files.push(c.config.path.to_string());
        texts.push(c.config.path.to_string());
    }
    let containers: Vec<&desired::ContainerSpec> = [&want.libnetwork, &want.node]
        .into_iter()
        .flatten()
        .collect();
    for c in &containers {
        files.push(c.env_file.path.to_string());
        texts.push(c.env_file.path.to_string());
    }
    let etcd_binary = want
        .etcd_proxy
        .as_ref()
        .map(|p| p.binary.path().to_string())
        .unwrap_or_else(|| "/usr/bin/etcd".into());

    let mut s = String::new();
    s.push_str(&history_dump(layout));
    s.push_str(&hashes_fn(layout));
    let mut line = |key: &str, cmd: Cmd| s.push_str(&format!("{key} {cmd}\n"));
    line(
        "q units",
        Cmd::new("systemctl")
            .arg("show")
            .arg("-p")
            .arg(UNIT_PROPERTIES)
            .arg("--")
            .args(UNITS.iter().map(|u| format!("{u}.service"))),
    );
    line(
        "p docker_server",
        Cmd::new("docker")
            .arg("version")
            .arg("--format")
            .arg("{{.Server.Version}}"),
    );
    // Containers and images apart, each by its type: a name docker finds
    // as neither makes it look for a network plugin next, and a plugin
    // socket left behind by a stopped calico-libnetwork stalls that look
    // for some 15 s.
    let inspect = Cmd::new("docker")
        .arg("inspect")
        .arg("--type")
        .arg("container")
        .arg("--")
        .arg(desired::LIBNETWORK_CONTAINER)
        .arg(desired::NODE_CONTAINER);
    let mut images = Cmd::new("docker")
        .arg("inspect")
        .arg("--type")
        .arg("image")
        .arg("--");
    for c in &containers {
        images = images.arg(c.image.as_str());
    }
    let images = if containers.is_empty() {
        String::new()
    } else {
        format!("q images {images}; ")
    };
    // Containers and images only when the daemon answers. The version is
    // the binary's: it is what the next restart starts, even when the
    // running daemon is older (a package upgraded but not restarted).
    s.push_str(&format!(
        "dr=$r\n\
         if [ \"$dr\" = 0 ]; then q inspect {inspect}; {images}else out inspect 1 ''; fi\n\
         p dockerd_version dockerd --version\n",
    ));
    if reads.texts {
        s.push_str(&format!("out {TEXTS_READ} 0 ''\n"));
        for t in &texts {
            s.push_str(&format!(
                "f {} {}\n",
                quote(&format!("{TEXT_RECORD}{t}")),
                quote(t)
            ));
        }
    }
    if !files.is_empty() {
        let verify = if reads.verify { "1" } else { "0" };
        s.push_str(&format!(
            "q hashes hashes {verify} {}\n",
            files.iter().map(|f| quote(f)).collect::<Vec<_>>().join(" ")
        ));
    }
    // The sessions before anything changes: the BGP gate waits for each
    // of them to be Established again.
    if let Some(Ok(ipv6)) = want
        .node
        .as_ref()
        .and_then(|n| n.node_checks.as_ref())
        .map(|c| c.bgp.clone())
    {
        s.push_str(&format!(
            "if [ \"$dr\" = 0 ]; then p {} timeout -k 1 10 sh -c {}; fi\n",
            crate::facts::BGP_RECORD,
            quote(&super::bird::show_protocols(desired::NODE_CONTAINER, ipv6))
        ));
    }
    s.push_str(&format!(
        "f daemon_json {}\n\
         q staged lsd {}\n\
         q pending lsd {}\n\
         p etcd_binary test -x {}\n\
         q mesos_ip {}\n\
         if [ \"$r\" = 0 ]; then detected=$o; else detected=; fi\n\
         q history history_dump\n",
        quote(desired::DAEMON_JSON_PATH),
        quote(&layout.stage_dir()),
        quote(&layout.pending_dir()),
        quote(&etcd_binary),
        quote(DETECT_IP),
    ));
    s
}

/// The root check every probe starts with.
pub fn root_check() -> String {
    format!(
        "[ \"$(id -u)\" = 0 ] || {{ echo 'not running as root: set ssh.become: true (sudo -n), or log in as root' >&2; exit {NOT_ROOT}; }}\n"
    )
}

/// The lock script, then the probe in the same round trip: the lock's
/// answer is the record `lock`, and the probe runs only if this run may go
/// on (it holds the lock, or, for `plan`, nobody does).
pub fn locked(
    lock: &Script,
    want: &Desired,
    layout: &Layout,
    reads: Reads,
    deadline: Duration,
) -> Script {
    Script::new(
        "taking the agent's lock and reading its facts",
        deadline,
        format!(
            "{root}{RECORD_HELPERS}\
             lk=$(sh -c {lock} 2>&1); out lock \"$?\" \"$lk\"\n\
             last=${{lk##*\n}}\n\
             case $last in 'lock acquired'|'lock free'|'lock stale-replaced '*) ;; *) exit 0 ;; esac\n\
             {body}",
            root = root_check(),
            lock = quote(&lock.text),
            body = probe_body(want, layout, reads),
        ),
    )
}

/// The probe alone, as `locked` runs it after the lock.
#[cfg(test)]
pub fn probe(want: &Desired, layout: &Layout, deadline: Duration) -> Script {
    probe_reading(want, layout, Reads::default(), deadline)
}

#[cfg(test)]
pub fn probe_reading(want: &Desired, layout: &Layout, reads: Reads, deadline: Duration) -> Script {
    Script::new(
        "the facts probe",
        deadline,
        format!(
            "{}{RECORD_HELPERS}{}",
            root_check(),
            probe_body(want, layout, reads)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Facts, ProbeError, parse};
    use crate::remote::testing::{sh_with_env, sh_with_path, stub};
    use crate::steps::testing::desired;

    /// Runs the real probe script under sh, with stand-ins for the agent's
    /// programs first on PATH and the state folder in a temp dir.
    fn probe_with(stubs: &[(&str, &str)], state: &std::path::Path) -> Result<Facts, ProbeError> {
        let bin = tempfile::tempdir().unwrap();
        for (name, body) in stubs {
            stub(bin.path(), name, body);
        }
        let layout = Layout::at(state.to_str().unwrap());
        let script = probe(&desired(), &layout, Duration::from_secs(30));
        let out = sh_with_env(&script.text, b"", Some(bin.path()), &env(state));
        parse(
            out.status.code().map(|c| c as u32),
            &out.stdout,
            &out.stderr,
        )
    }

    /// Each tool logs its calls, so a test can count them.
    const AGENT: [(&str, &str); 4] = [
        ("id", "echo 0"),
        (
            "dockerd",
            "echo dockerd >> \"$CALLS\"; echo 'Docker version 20.10.24+dfsg1, build 297e128'",
        ),
        (
            "docker",
            r#"echo "docker $1" >> "$CALLS"
case "$1" in
  version) [ -e "$DOWN" ] && { echo 'Cannot connect to the Docker daemon' >&2; exit 1; }; echo 20.10.24 ;;
  inspect) case "$3" in
    container) echo '[{"Id": "c1", "Name": "/calico-node", "Config": {"Image": "calico/node:v2.6.11", "Labels": {"org.projectcalico.rollout.spec": "abc"}}, "State": {"Running": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}]'; echo 'Error: No such container: calico-libnetwork' >&2; exit 1 ;;
    image) echo '[{"Id": "sha256:1", "RepoTags": ["calico/node:v2.6.12"]}]'; echo 'Error: No such image: calico/libnetwork-plugin:v1.1.3' >&2; exit 1 ;;
    *) echo 'inspect without --type' >&2; exit 2 ;;
  esac ;;
esac"#,
        ),
        (
            "systemctl",
            r#"echo "systemctl $1" >> "$CALLS"
[ "$1" = show ] || exit 1
printf 'Id=calico-etcd-proxy.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n\n'
printf 'ExecStart={ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// ; ignore_errors=no }\nId=docker.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n'
printf 'Id=dcos-mesos-slave.service\nLoadState=loaded\nActiveState=activating\nUnitFileState=enabled\n\n'
printf 'Id=dcos-mesos-slave-public.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n'"#,
        ),
    ];

    fn calls(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Where the stand-ins log their calls, and the switch that takes
    /// docker down.
    fn env(dir: &std::path::Path) -> [(&'static str, std::path::PathBuf); 2] {
        [("CALLS", dir.join("calls")), ("DOWN", dir.join("down"))]
    }

    #[test]
    fn the_probe_reads_an_agent_starting_each_tool_once() {
        let state = tempfile::tempdir().unwrap();
        let facts = probe_with(&AGENT, state.path()).unwrap();
        assert_eq!(facts.docker_answering, Ok(()));
        assert_eq!(facts.docker_version, Ok(crate::facts::Version(20, 10, 24)));
        assert!(facts.unit("docker").loaded && facts.unit("dcos-mesos-slave").loaded);
        assert!(!facts.unit("calico-etcd-proxy").loaded);
        assert!(facts.unit("docker").exec_start.contains("-H fd://"));
        assert_eq!(facts.unit("dcos-mesos-slave").active, "activating");
        // `test` is a shell builtin: existence checks see this machine's files.
        let daemon_json = std::fs::read("/etc/docker/daemon.json").ok();
        assert_eq!(facts.daemon_json, daemon_json);
        let node = &facts.containers["calico-node"];
        assert_eq!(
            (node.id.as_str(), node.image.as_str(), node.policy.as_str()),
            ("c1", "calico/node:v2.6.11", "always")
        );
        assert_eq!(node.spec_hash.as_deref(), Some("abc"));
        assert!(facts.images.contains("calico/node:v2.6.12"));
        assert!(!facts.images.contains("calico/libnetwork-plugin:v1.1.3"));
        assert!(facts.hashes.is_empty() && facts.staged.is_empty());
        assert!(facts.history.runs.is_empty());
        // No detect_ip on this machine: the gate falls back to the inventory.
        assert_eq!(facts.mesos_ip, None);
        assert_eq!(
            calls(state.path()),
            [
                "systemctl show",
                "docker version",
                "docker inspect",
                "docker inspect",
                "dockerd",
                "docker exec"
            ],
            "one call to each tool (docker inspect once for the containers, once for the images), \
             and BIRD's sessions read in calico-node"
        );
    }

    #[test]
    fn a_docker_that_does_not_answer_is_asked_nothing_more() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join("down"), "").unwrap();
        let facts = probe_with(&AGENT, state.path()).unwrap();
        assert!(
            facts
                .docker_answering
                .unwrap_err()
                .contains("Cannot connect")
        );
        assert_eq!(facts.docker_version, Ok(crate::facts::Version(20, 10, 24)));
        assert!(facts.containers.is_empty());
        assert_eq!(
            calls(state.path()),
            ["systemctl show", "docker version", "dockerd"]
        );
    }

    #[test]
    fn the_probe_reads_the_run_history() {
        let state = tempfile::tempdir().unwrap();
        let root = state.path();
        std::fs::create_dir_all(root.join("runs/r1")).unwrap();
        std::fs::create_dir_all(root.join("runs/r2")).unwrap();
        std::fs::write(root.join("history"), "r1\n../evil\nr2\ngone\n").unwrap();
        std::fs::write(root.join("runs/r1/state"), "applied").unwrap();
        std::fs::write(root.join("runs/r2/state"), "reverted").unwrap();
        std::fs::write(
            root.join("runs/r1/0001.json"),
            "{\"step\":\"docker\",\"undo\":{\"undo\":\"file\",\"target\":\"/etc/docker/daemon.json\",\"existed\":true},\"restart\":\"docker\"}\n",
        )
        .unwrap();
        std::fs::write(root.join("runs/r1/0001.undone"), "").unwrap();
        std::fs::write(root.join("runs/r1/docker.restored"), "").unwrap();
        let facts = probe_with(&AGENT, root).unwrap();
        let runs: Vec<(&str, &str)> = facts
            .history
            .runs
            .iter()
            .map(|r| (r.run.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(runs, [("r1", "applied"), ("r2", "reverted")]);
        let r1 = &facts.history.runs[0];
        assert_eq!(r1.changes.len(), 1);
        assert!(r1.changes[0].undone && r1.taken_back());
    }

    #[test]
    fn the_lock_and_the_probe_share_one_round_trip() {
        let state = tempfile::tempdir().unwrap();
        let layout = Layout::at(state.path().to_str().unwrap());
        let bin = tempfile::tempdir().unwrap();
        for (name, body) in &AGENT {
            stub(bin.path(), name, body);
        }
        let answer = |lock_says: &str, code: u32| {
            let lock = Script::new(
                "lock",
                Duration::from_secs(5),
                format!(
                    "echo 'noise on stderr' >&2; echo {}; exit {code}",
                    quote(lock_says)
                ),
            );
            let script = locked(
                &lock,
                &desired(),
                &layout,
                Reads::default(),
                Duration::from_secs(5),
            );
            let out = sh_with_env(&script.text, b"", Some(bin.path()), &env(state.path()));
            assert!(out.status.success());
            crate::facts::records(&out.stdout).unwrap()
        };
        let held = answer(r#"lock held {"owner":"other"}"#, 75);
        assert_eq!(held["lock"].code, 75);
        assert!(
            held["lock"]
                .text()
                .ends_with(r#"lock held {"owner":"other"}"#)
        );
        assert!(
            !held.contains_key("units"),
            "nothing is read under another's lock"
        );
        let ours = answer("lock acquired", 0);
        assert!(ours.contains_key("units") && ours.contains_key("history"));
        let free = answer("lock free", 0);
        assert!(free.contains_key("units"), "plan reads a free agent");
    }

    #[test]
    fn the_probe_refuses_without_root() {
        let mut agent = AGENT.to_vec();
        agent[0] = ("id", "echo 1000");
        let state = tempfile::tempdir().unwrap();
        match probe_with(&agent, state.path()) {
            Err(ProbeError::NotRoot(why)) => assert!(why.contains("become"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// Runs only the helpers and `hashes` over real files.
    fn hashes(
        layout: &Layout,
        verify: bool,
        files: &[&std::path::Path],
        bin: &std::path::Path,
    ) -> (String, Vec<String>) {
        let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let script = format!(
            "{RECORD_HELPERS}{}hashes {} {}\n",
            hashes_fn(layout),
            if verify { 1 } else { 0 },
            list.join(" ")
        );
        let out = sh_with_path(&script, b"", Some(bin));
        (String::from_utf8(out.stdout).unwrap(), calls(bin))
    }

    #[test]
    fn files_the_manifest_vouches_for_are_not_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        stub(
            bin.path(),
            "sha256sum",
            &format!(
                "echo \"sha256sum $*\" >> {}/calls; exec /usr/bin/sha256sum \"$@\"",
                bin.path().display()
            ),
        );
        let layout = Layout::at(dir.path().to_str().unwrap());
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "two").unwrap();
        let sha_a = crate::desired::sha256_hex(b"one");
        // The manifest vouches for a, as an install leaves it.
        let stat = std::process::Command::new("stat")
            .args(["-c", "%n|%s|%y|%z|%i"])
            .arg(&a)
            .output()
            .unwrap();
        let line = format!(
            "{}|{sha_a}\n",
            String::from_utf8(stat.stdout).unwrap().trim()
        );
        std::fs::write(layout.manifest_file(), line).unwrap();

        let (out, calls) = hashes(&layout, false, &[&a, &b], bin.path());
        assert!(out.contains(&format!("{sha_a}  {}", a.display())), "{out}");
        assert!(out.contains(&crate::desired::sha256_hex(b"two")), "{out}");
        assert_eq!(calls, [format!("sha256sum -- {}", b.display())]);

        // Changed by hand (even to the same size): hashed again.
        std::fs::write(&a, "eno").unwrap();
        let (out, _) = hashes(&layout, false, &[&a], bin.path());
        assert!(out.contains(&crate::desired::sha256_hex(b"eno")), "{out}");
        // --verify hashes everything.
        std::fs::write(&a, "one").unwrap();
        let _ = std::fs::remove_file(bin.path().join("calls"));
        let (_, calls) = hashes(&layout, true, &[&a], bin.path());
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn files_are_read_to_the_last_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("daemon.json");
        std::fs::write(&file, "{}\n\n").unwrap();
        let out = sh_with_path(
            &format!(
                "{RECORD_HELPERS}f one {}\nf two /nonexistent\n",
                file.display()
            ),
            b"",
            None,
        );
        let records = crate::facts::records(&out.stdout).unwrap();
        assert_eq!(records["one"].out, b"{}\n\n");
        assert_eq!(records["two"].code, 1);
    }

    #[test]
    fn detect_ip_names_the_mesos_address() {
        let bin = tempfile::tempdir().unwrap();
        let ip = bin.path().join("detect_ip");
        stub(bin.path(), "detect_ip", "echo 172.18.0.5");
        let state = tempfile::tempdir().unwrap();
        let layout = Layout::at(state.path().to_str().unwrap());
        let script = probe(&desired(), &layout, Duration::from_secs(30))
            .text
            .replace(DETECT_IP, ip.to_str().unwrap());
        for (name, body) in &AGENT {
            stub(bin.path(), name, body);
        }
        let out = sh_with_env(&script, b"", Some(bin.path()), &env(state.path()));
        let facts = parse(Some(0), &out.stdout, &out.stderr).unwrap();
        assert_eq!(facts.mesos_ip.as_deref(), Some("172.18.0.5"));
    }

    #[test]
    fn plan_reads_the_managed_text_files_whole_and_apply_does_not() {
        let want = desired();
        let cni = want.cni.as_ref().unwrap().config.path.to_string();
        let state = tempfile::tempdir().unwrap();
        let local = state.path().join("calico.cni");
        // No trailing newline lost, no bytes added.
        std::fs::write(&local, b"{\"name\": \"calico\"}\n\n").unwrap();
        let layout = Layout::at(state.path().to_str().unwrap());
        let bin = tempfile::tempdir().unwrap();
        for (name, body) in &AGENT {
            stub(bin.path(), name, body);
        }
        let read = |texts: bool| {
            let reads = Reads {
                verify: false,
                texts,
            };
            let script = probe_reading(&want, &layout, reads, Duration::from_secs(30))
                .text
                .replace(&cni, local.to_str().unwrap());
            let out = sh_with_env(&script, b"", Some(bin.path()), &env(state.path()));
            parse(Some(0), &out.stdout, &out.stderr).unwrap()
        };
        let facts = read(true);
        let texts = facts.texts.as_ref().expect("texts were read");
        assert_eq!(
            texts.get(local.to_str().unwrap()).map(Vec::as_slice),
            Some(&b"{\"name\": \"calico\"}\n\n"[..])
        );
        assert_eq!(
            facts.text("/etc/calico/calico-node.env"),
            Some(None),
            "a file the agent lacks is known to be absent"
        );
        assert_eq!(read(false).texts, None);
    }
}
