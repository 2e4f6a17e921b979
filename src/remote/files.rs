//! Files on the agent: uploads into the stage area, atomic installs with
//! their backup and history record, and taking an install back.

use std::time::Duration;

use super::Script;
use super::history::{mark_undone, printf_literal, write_record};
use crate::history::RecordBody;
use crate::layout::Layout;
use crate::shell::{Cmd, quote};
use crate::step::{StepName, Undo};
use crate::steps::{Expect, FileCheck, Install, Source};

/// Exit status of an install whose target changed since the probe read it.
pub const CONFLICT_EXIT: u32 = 86;

/// Which change of which run an install is, for its history record.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub layout: &'a Layout,
    pub run: &'a str,
    pub seq: u32,
    pub step: StepName,
    /// The unit the step restarts after the file changes.
    pub restart: Option<&'a str>,
}

fn dir_of(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => "/",
    }
}

/// Checks that `$tmp` holds exactly the expected bytes before anything
/// replaces a live file: a cut connection must never install half a file.
fn verify(sha256: &str, what: &str) -> String {
    format!(
        "got=$(sha256sum < \"$tmp\"); got=${{got%% *}}\n\
         if [ \"$got\" != {sha} ]; then echo {msg}\" has sha256 $got, expected \"{sha} >&2; exit 1; fi\n",
        sha = quote(sha256),
        msg = quote(&format!("refusing to install {what}: the received file")),
    )
}

/// The unit a unit-file path belongs to, if it is one.
pub fn unit_of(target: &str) -> Option<&str> {
    target
        .strip_prefix("/etc/systemd/system/")
        .and_then(|u| u.strip_suffix(".service"))
}

/// Shell that records `$target` as just installed with `sha256`: its
/// `stat` and hash, so that the probe need not hash it again while the
/// `stat` stays the same. If the manifest cannot be written it goes, and
/// the probe hashes everything.
fn manifest_entry(layout: &Layout, sha256: &str) -> String {
    format!(
        "{{ st=$(stat -c '%n|%s|%y|%z|%i' -- \"$target\") && man={man} &&\n  \
           {{ if [ -f \"$man\" ]; then while IFS= read -r l; do case $l in \"$target|\"*) ;; *) printf '%s\\n' \"$l\" ;; esac; done < \"$man\"; fi\n  \
             printf '%s|%s\\n' \"$st\" {sha}; }} > \"$man.tmp\" && mv -f -- \"$man.tmp\" \"$man\"; }} || rm -f -- {man}\n",
        man = quote(&layout.manifest_file()),
        sha = quote(sha256),
    )
}

/// Installs a file atomically. In order: the bytes go to a temp file (in
/// the target's folder, or `tmp_dir` on the same filesystem) and are
/// checked against their hash, by the agent's own program where one
/// exists, and against what the target must still be; the target as it
/// is now is saved as this run's backup; the change is recorded in the
/// run's history; the restart it needs is marked pending; then the temp
/// file is synced and renamed over the target, the folder synced, and the
/// manifest told.
/// Whatever fails before the rename leaves the target, and the pending
/// markers, as they were.
pub fn install(i: &Install, change: Change<'_>, deadline: Duration) -> Script {
    let target = i.target.as_str();
    let name = target.rsplit('/').next().unwrap_or(target);
    let dir = dir_of(target);
    let tmp_dir = i.tmp_dir.as_ref().map(|d| d.as_str()).unwrap_or(dir);
    let layout = change.layout;
    let fill = match &i.source {
        Source::Staged => format!(
            "cat -- {} > \"$tmp\"\n",
            quote(&layout.stage_path(&i.sha256))
        ),
        Source::Bytes(_) => "cat > \"$tmp\"\n".to_string(),
    };
    let check = match i.check {
        None => String::new(),
        Some(FileCheck::Dockerd) => format!(
            "dockerd --validate --config-file \"$tmp\" >/dev/null 2>\"$tmp.why\" || \
             {{ echo {msg} \"$(tail -n 1 \"$tmp.why\")\" >&2; rm -f -- \"$tmp.why\"; exit 1; }}\n\
             rm -f -- \"$tmp.why\"\n",
            msg = quote(&format!(
                "dockerd refuses the new {target}, left unchanged:"
            )),
        ),
    };
    let expect = match &i.expect {
        Expect::Any => String::new(),
        Expect::Absent => format!(
            "if [ -e \"$target\" ]; then echo {msg} >&2; exit {CONFLICT_EXIT}; fi\n",
            msg = quote(&format!(
                "{target} appeared since the probe read this agent; left as it is"
            )),
        ),
        Expect::Sha256(sha) => format!(
            "cur=$(sha256sum < \"$target\" 2>/dev/null) || cur=\n\
             if [ \"${{cur%% *}}\" != {sha} ]; then echo {msg} >&2; exit {CONFLICT_EXIT}; fi\n",
            sha = quote(sha),
            msg = quote(&format!(
                "{target} changed since the probe read this agent; left as it is"
            )),
        ),
    };
    // The record says what the agent found, not what the probe saw.
    let body = RecordBody {
        step: change.step,
        undo: Undo::File {
            target: target.to_string(),
            existed: true,
            tmp_dir: i.tmp_dir.as_ref().map(|d| d.to_string()),
        },
        restart: change.restart.map(str::to_string),
    }
    .to_line();
    let (pre, post) = body
        .split_once("\"existed\":true")
        .expect("the record names existed");
    let record = write_record(
        layout,
        change.run,
        change.seq,
        &format!(
            "{}\"existed\":%s{}\\n",
            printf_literal(pre),
            printf_literal(post)
        ),
        "\"$existed\"",
    );
    let backup = layout.backup_path(change.run, target);
    let pending = match &i.pending {
        None => String::new(),
        Some(unit) => format!(
            "marker={marker}\n\
             had=false; [ -e \"$marker\" ] && had=true\n\
             mkdir -p -- {pending_dir}\n\
             : > \"$marker\"\n\
             trap 'rm -f -- \"$tmp\"; [ \"$had\" = true ] || rm -f -- \"$marker\"' EXIT\n",
            marker = quote(&layout.pending_path(unit)),
            pending_dir = quote(&layout.pending_dir()),
        ),
    };
    let text = format!(
        "set -eu\n\
         target={target_q}\n\
         mkdir -p -- {dir} {tmp_dir}\n\
         if [ \"$(stat -c %d -- {tmp_dir})\" != \"$(stat -c %d -- {dir})\" ]; then\n  \
           echo {fs_msg} >&2; exit 1\n\
         fi\n\
         tmp=$(mktemp -- {template})\n\
         trap 'rm -f -- \"$tmp\"' EXIT\n\
         {fill}\
         {verify}\
         {check}\
         {expect}\
         chmod {mode:o} -- \"$tmp\"\n\
         existed=false\n\
         if [ -e \"$target\" ]; then\n  \
           existed=true\n  \
           if [ ! -e {backup} ]; then\n    \
             mkdir -p -- {backup_dir}\n    \
             cp -p -- \"$target\" {backup_tmp}\n    \
             sync -- {backup_tmp}\n    \
             mv -f -- {backup_tmp} {backup}\n    \
             sync -- {backup_dir}\n  \
           fi\n\
         fi\n\
         {record}\
         {pending}\
         sync -- \"$tmp\" 2>/dev/null || sync\n\
         mv -f -- \"$tmp\" \"$target\"\n\
         trap - EXIT\n\
         sync -- {dir} 2>/dev/null || true\n\
         {manifest}",
        manifest = manifest_entry(layout, &i.sha256),
        target_q = quote(target),
        dir = quote(dir),
        tmp_dir = quote(tmp_dir),
        fs_msg = quote(&format!(
            "cannot install {target} atomically: {tmp_dir} is not on its filesystem"
        )),
        template = quote(&format!("{tmp_dir}/.{name}.calico-rollout.XXXXXX")),
        verify = verify(&i.sha256, target),
        mode = i.mode,
        backup = quote(&backup),
        backup_dir = quote(dir_of(&backup)),
        backup_tmp = quote(&format!("{backup}.tmp")),
    );
    Script::new(format!("writing {target}"), deadline, text)
}

/// Takes back change `seq` of `run` if it was made: puts back the run's
/// backup of `target`, or removes the file when the run created it (a
/// unit file's unit is stopped and disabled first). Idempotent: prints
/// `undo done`, or `undo nothing` when the change never took effect or
/// was already taken back.
pub fn undo_file(
    layout: &Layout,
    run: &str,
    seq: u32,
    target: &str,
    tmp_dir: Option<&str>,
    deadline: Duration,
) -> Script {
    let dir = dir_of(target);
    let name = target.rsplit('/').next().unwrap_or(target);
    let tmp_dir = tmp_dir.unwrap_or(dir);
    let unit = unit_of(target);
    let backup = layout.backup_path(run, target);
    let remove_unit = unit
        .map(|u| {
            format!(
                "  {} >/dev/null 2>&1 || true\n",
                Cmd::new("systemctl")
                    .arg("disable")
                    .arg("--now")
                    .arg("--")
                    .arg(u)
            )
        })
        .unwrap_or_default();
    let reload = if unit.is_some() {
        "systemctl daemon-reload\n"
    } else {
        ""
    };
    let text = format!(
        "set -eu\n\
         target={target_q}\n\
         [ -e {record} ] || {{ echo 'undo nothing'; exit 0; }}\n\
         [ -e {undone} ] && {{ echo 'undo nothing'; exit 0; }}\n\
         backup={backup}\n\
         if [ -e \"$backup\" ]; then\n  \
           a=$(sha256sum < \"$backup\"); b=$(sha256sum < \"$target\" 2>/dev/null) || b=\n  \
           if [ \"$a\" != \"$b\" ]; then\n    \
             mkdir -p -- {dir} {tmp_dir}\n    \
             tmp=$(mktemp -- {template})\n    \
             trap 'rm -f -- \"$tmp\"' EXIT\n    \
             cp -p -- \"$backup\" \"$tmp\"\n    \
             sync -- \"$tmp\" 2>/dev/null || sync\n    \
             mv -f -- \"$tmp\" \"$target\"\n    \
             trap - EXIT\n    \
             sync -- {dir} 2>/dev/null || true\n  \
           fi\n\
         else\n\
         {remove_unit}  \
           rm -f -- \"$target\"\n\
         fi\n\
         {reload}\
         {mark}\
         echo 'undo done'\n",
        target_q = quote(target),
        record = quote(&layout.record_path(run, seq)),
        undone = quote(&layout.undone_path(run, seq)),
        backup = quote(&backup),
        dir = quote(dir),
        tmp_dir = quote(tmp_dir),
        template = quote(&format!("{tmp_dir}/.{name}.calico-rollout.XXXXXX")),
        mark = mark_undone(layout, run, seq),
    );
    Script::new(format!("putting back {target}"), deadline, text)
}

/// Receives a binary on stdin into the stage area, named by its hash.
pub fn stage(layout: &Layout, sha256: &str, deadline: Duration) -> Script {
    let dir = layout.stage_dir();
    let text = format!(
        "set -eu\n\
         mkdir -p -m 700 -- {dir}\n\
         tmp=$(mktemp -- {template})\n\
         trap 'rm -f -- \"$tmp\"' EXIT\n\
         cat > \"$tmp\"\n\
         {verify}\
         mv -f -- \"$tmp\" {dest}\n\
         trap - EXIT\n",
        dir = quote(&dir),
        template = quote(&format!("{dir}/.upload.XXXXXX")),
        verify = verify(sha256, "a staged upload"),
        dest = quote(&layout.stage_path(sha256)),
    );
    Script::new(
        format!("uploading {}…", &sha256[..sha256.len().min(12)]),
        deadline,
        text,
    )
}

/// The agent downloads `url` into its stage area and checks its hash;
/// nothing is installed from it before the batch, and a download that
/// fails or does not match leaves the stage area as it was.
pub fn download(layout: &Layout, url: &str, sha256: &str, deadline: Duration) -> Script {
    let dir = layout.stage_dir();
    // curl's own bound, inside the command's: a slow mirror fails with
    // curl's reason rather than a bare timeout.
    let max_time = deadline.as_secs().saturating_sub(5).max(5);
    let text = format!(
        "set -eu\n\
         mkdir -p -m 700 -- {dir}\n\
         tmp=$(mktemp -- {template})\n\
         trap 'rm -f -- \"$tmp\" \"$tmp.why\"' EXIT\n\
         if ! curl -fsSL --retry 3 --retry-delay 2 --connect-timeout 10 --max-time {max_time} -o \"$tmp\" {url} 2>\"$tmp.why\"; then\n  \
           echo {msg}\"$(tail -n 1 \"$tmp.why\")\" >&2; exit 1\n\
         fi\n\
         {verify}\
         mv -f -- \"$tmp\" {dest}\n",
        dir = quote(&dir),
        template = quote(&format!("{dir}/.download.XXXXXX")),
        url = quote(url),
        msg = quote(&format!("downloading {url} failed: ")),
        verify = verify(sha256, &format!("the download of {url}")),
        dest = quote(&layout.stage_path(sha256)),
    );
    Script::new(format!("downloading {url}"), deadline, text)
}

pub fn clear_stage(layout: &Layout, sha256s: &[String], deadline: Duration) -> Script {
    Script::new(
        "clearing the stage area",
        deadline,
        Cmd::new("rm")
            .arg("-f")
            .arg("--")
            .args(sha256s.iter().map(|s| layout.stage_path(s)))
            .to_string(),
    )
}

pub fn clear_pending(layout: &Layout, unit: &str, deadline: Duration) -> Script {
    Script::new(
        format!("clearing the pending restart of {unit}"),
        deadline,
        Cmd::new("rm")
            .arg("-f")
            .arg("--")
            .arg(layout.pending_path(unit))
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use crate::remote::testing::{sh, stderr, stdout};
    use std::path::Path;

    const D: Duration = Duration::from_secs(30);

    struct World {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        layout: Layout,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let layout = Layout::at(root.join("state").to_str().unwrap());
        World {
            _dir: dir,
            root,
            layout,
        }
    }

    fn spec(target: &str, content: &[u8], expect: Expect, pending: Option<&str>) -> Install {
        Install {
            target: target.parse().unwrap(),
            source: Source::Bytes(content.into()),
            sha256: crate::desired::sha256_hex(content),
            mode: 0o640,
            check: None,
            expect,
            pending: pending.map(str::to_string),
            tmp_dir: None,
            remerge: None,
            undo: Undo::File {
                target: target.into(),
                existed: false,
                tmp_dir: None,
            },
        }
    }

    fn change<'a>(w: &'a World, run: &'a str, seq: u32) -> Change<'a> {
        Change {
            layout: &w.layout,
            run,
            seq,
            step: StepName::Docker,
            restart: Some("docker"),
        }
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn install_replaces_atomically_records_and_refuses_damaged_bytes() {
        let w = world();
        let target = w.root.join("conf").join("it.json");
        let target = target.to_str().unwrap();
        let old = b"{\"old\": true}\n";
        std::fs::create_dir_all(w.root.join("conf")).unwrap();
        std::fs::write(target, old).unwrap();
        let new = b"{\"new\": true}\n";

        let s = install(
            &spec(target, new, Expect::Any, Some("docker")),
            change(&w, "r1", 1),
            D,
        );
        let out = sh(&s.text, new);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(std::fs::read(target).unwrap(), new);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            std::fs::read(w.layout.backup_path("r1", target)).unwrap(),
            old,
            "the run's backup is what was there before"
        );
        assert!(Path::new(&w.layout.pending_path("docker")).exists());
        let manifest = std::fs::read_to_string(w.layout.manifest_file()).unwrap();
        let sha = crate::desired::sha256_hex(new);
        assert!(
            manifest.starts_with(&format!("{target}|{}|", new.len()))
                && manifest.ends_with(&format!("|{sha}\n")),
            "{manifest}"
        );
        let record: RecordBody =
            serde_json::from_slice(&std::fs::read(w.layout.record_path("r1", 1)).unwrap()).unwrap();
        assert_eq!(
            record,
            RecordBody {
                step: StepName::Docker,
                undo: Undo::File {
                    target: target.into(),
                    existed: true,
                    tmp_dir: None
                },
                restart: Some("docker".into()),
            }
        );

        // A truncated transfer leaves the file, and the folder, as they were.
        let s = install(
            &spec(target, b"x", Expect::Any, None),
            change(&w, "r2", 1),
            D,
        );
        let out = sh(&s.text, b"y");
        assert!(!out.status.success());
        assert!(stderr(&out).contains("refusing to install"));
        assert_eq!(std::fs::read(target).unwrap(), new);
        assert_eq!(leftovers(&w.root.join("conf")), ["it.json"]);
        assert!(!Path::new(&w.layout.record_path("r2", 1)).exists());
    }

    #[test]
    fn a_file_changed_since_the_probe_is_left_alone_and_unmarked() {
        let w = world();
        let target = w.root.join("daemon.json");
        let target = target.to_str().unwrap();
        std::fs::write(target, "{\"edited\": 1}").unwrap();
        let seen = crate::desired::sha256_hex(b"{}");
        let s = install(
            &spec(target, b"{\"a\":1}", Expect::Sha256(seen), Some("docker")),
            change(&w, "r1", 1),
            D,
        );
        let out = sh(&s.text, b"{\"a\":1}");
        assert_eq!(out.status.code(), Some(CONFLICT_EXIT as i32));
        assert!(stderr(&out).contains("changed since the probe"), "{out:?}");
        assert_eq!(std::fs::read(target).unwrap(), b"{\"edited\": 1}");
        assert!(
            !Path::new(&w.layout.pending_path("docker")).exists(),
            "a refused install marks no restart"
        );

        let s = install(
            &spec(target, b"{}", Expect::Absent, None),
            change(&w, "r1", 2),
            D,
        );
        let out = sh(&s.text, b"{}");
        assert_eq!(out.status.code(), Some(CONFLICT_EXIT as i32));
    }

    #[test]
    fn a_failed_install_keeps_an_earlier_pending_restart() {
        let w = world();
        std::fs::create_dir_all(w.layout.pending_dir()).unwrap();
        std::fs::write(w.layout.pending_path("docker"), "").unwrap();
        let target = w.root.join("f");
        let s = install(
            &spec(
                target.to_str().unwrap(),
                b"abc",
                Expect::Any,
                Some("docker"),
            ),
            change(&w, "r1", 1),
            D,
        );
        let out = sh(&s.text, b"abd");
        assert!(!out.status.success());
        assert!(Path::new(&w.layout.pending_path("docker")).exists());
    }

    #[test]
    fn temp_files_can_live_outside_a_folder_a_daemon_loads_whole() {
        let w = world();
        let cni = w.root.join("network/cni");
        std::fs::create_dir_all(&cni).unwrap();
        let target = cni.join("calico.cni");
        let mut i = spec(target.to_str().unwrap(), b"{}", Expect::Absent, None);
        i.tmp_dir = Some(
            w.root
                .join("network/.calico-rollout")
                .to_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
        let s = install(&i, change(&w, "r1", 1), D);
        assert!(!s.text.contains("cni/.calico.cni"), "{}", s.text);
        let out = sh(&s.text, b"{}");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(leftovers(&cni), ["calico.cni"]);
    }

    #[test]
    fn undo_puts_back_the_runs_backup_once_and_only_if_the_change_was_made() {
        let w = world();
        let target = w.root.join("calico.cni");
        let t = target.to_str().unwrap();
        std::fs::write(t, "before").unwrap();
        let undo = |run: &str, seq: u32| {
            stdout(&sh(&undo_file(&w.layout, run, seq, t, None, D).text, b""))
        };

        // Nothing recorded: nothing to take back.
        assert_eq!(undo("r1", 1), "undo nothing\n");
        assert_eq!(std::fs::read(t).unwrap(), b"before");

        let out = sh(
            &install(
                &spec(t, b"after", Expect::Any, None),
                change(&w, "r1", 1),
                D,
            )
            .text,
            b"after",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        // A second run's install of the same file keeps its own backup.
        let out = sh(
            &install(
                &spec(t, b"later", Expect::Any, None),
                change(&w, "r2", 1),
                D,
            )
            .text,
            b"later",
        );
        assert!(out.status.success());
        assert_eq!(undo("r2", 1), "undo done\n");
        assert_eq!(std::fs::read(t).unwrap(), b"after");
        assert_eq!(undo("r2", 1), "undo nothing\n", "taken back once");
        assert_eq!(undo("r1", 1), "undo done\n");
        assert_eq!(std::fs::read(t).unwrap(), b"before");

        // A file the run created goes.
        let fresh = w.root.join("new.cni");
        let f = fresh.to_str().unwrap();
        let out = sh(
            &install(&spec(f, b"x", Expect::Absent, None), change(&w, "r3", 1), D).text,
            b"x",
        );
        assert!(out.status.success());
        let rec: RecordBody =
            serde_json::from_slice(&std::fs::read(w.layout.record_path("r3", 1)).unwrap()).unwrap();
        assert_eq!(
            rec.undo,
            Undo::File {
                target: f.into(),
                existed: false,
                tmp_dir: None
            }
        );
        assert_eq!(
            stdout(&sh(&undo_file(&w.layout, "r3", 1, f, None, D).text, b"")),
            "undo done\n"
        );
        assert!(!fresh.exists());
        let _ = History::default();
    }

    #[test]
    fn a_download_is_checked_before_it_is_staged() {
        let w = world();
        let bin = tempfile::tempdir().unwrap();
        // A curl that serves `served` for any URL, or fails like curl.
        let served = bin.path().join("served");
        crate::remote::testing::stub(
            bin.path(),
            "curl",
            &format!(
                r#"while [ $# -gt 1 ]; do [ "$1" = -o ] && out=$2; shift; done
[ -e {s} ] || {{ echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }}
cp {s} "$out""#,
                s = served.display()
            ),
        );
        let sha = crate::desired::sha256_hex(b"plugin");
        let url = "https://mirror.example/calico";
        let run = || {
            crate::remote::testing::sh_with_path(
                &download(&w.layout, url, &sha, D).text,
                b"",
                Some(bin.path()),
            )
        };
        let out = run();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("downloading https://mirror.example/calico failed: curl: (22)"),
            "{}",
            stderr(&out)
        );
        std::fs::write(&served, "tampered").unwrap();
        let out = run();
        assert!(
            stderr(&out).contains("refusing to install the download"),
            "{}",
            stderr(&out)
        );
        assert!(!Path::new(&w.layout.stage_path(&sha)).exists());
        std::fs::write(&served, "plugin").unwrap();
        assert!(run().status.success());
        assert_eq!(std::fs::read(w.layout.stage_path(&sha)).unwrap(), b"plugin");
        assert_eq!(leftovers(Path::new(&w.layout.stage_dir())), [sha]);
    }

    #[test]
    fn staging_checks_the_upload() {
        let w = world();
        let bytes = b"binary";
        let sha = crate::desired::sha256_hex(bytes);
        let out = sh(&stage(&w.layout, &sha, D).text, bytes);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(std::fs::read(w.layout.stage_path(&sha)).unwrap(), bytes);
        let out = sh(&stage(&w.layout, &sha, D).text, b"binar");
        assert!(!out.status.success());
        assert_eq!(leftovers(Path::new(&w.layout.stage_dir())), [sha]);
    }
}
