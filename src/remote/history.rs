//! The run history on the agent: the snippets that open a run's record
//! and write a change into it (used inside the change's own script, before
//! the change), and the scripts that move a run's state.

use std::time::Duration;

use super::Script;
use crate::history::RunState;
use crate::layout::Layout;
use crate::shell::quote;
use crate::step::StepName;

/// Shell that gives `run` its folder, a state, and its line in the history.
/// Every line stops the script on failure by itself: callers run under
/// `set -u` alone, where a failed command would not.
pub(crate) fn begin_run(layout: &Layout, run: &str) -> String {
    format!(
        "mkdir -p -m 700 -- {dir} || exit 1\n\
         [ -e {state} ] || printf 'applying' > {state} || exit 1\n\
         grep -qxF -- {run} {history} 2>/dev/null || printf '%s\\n' {run} >> {history} || exit 1\n",
        dir = quote(&layout.run_dir(run)),
        state = quote(&layout.state_path(run)),
        run = quote(run),
        history = quote(&layout.history_file()),
    )
}

/// Shell that writes change `seq` of `run`: `printf` with `format` and
/// `args` (shell words) must print the record's JSON. Written whole or not
/// at all, and on disk (its folder too), before the change itself is made,
/// so that a power loss never leaves a change without its undo: a change whose
/// record cannot be written (a full disk) does not happen, and the script
/// ends with the agent's own words.
pub(crate) fn write_record(
    layout: &Layout,
    run: &str,
    seq: u32,
    format: &str,
    args: &str,
) -> String {
    let path = layout.record_path(run, seq);
    format!(
        "{begin}{{ printf {format} {args} > {tmp} && sync -- {tmp} && mv -f -- {tmp} {path} && \
         sync -- {dir}; }} || {{ rm -f -- {tmp}; echo {failed} >&2; exit 1; }}\n",
        dir = quote(&layout.run_dir(run)),
        failed = quote(&format!(
            "cannot write the undo record {path}; nothing was changed"
        )),
        begin = begin_run(layout, run),
        format = quote(format),
        tmp = quote(&format!("{path}.tmp")),
        path = quote(&path),
    )
}

/// Escapes `%` and `\` so that text passes through printf's format as is.
pub(crate) fn printf_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "%%")
}

pub(crate) fn mark_undone(layout: &Layout, run: &str, seq: u32) -> String {
    format!(": > {}\n", quote(&layout.undone_path(run, seq)))
}

/// Marks a taken-back step complete, restart included.
pub fn mark_restored(layout: &Layout, run: &str, step: StepName, deadline: Duration) -> Script {
    Script::new(
        format!("recording that {step} is back"),
        deadline,
        format!(
            "mkdir -p -- {dir} && : > {path}\n",
            dir = quote(&layout.run_dir(run)),
            path = quote(&layout.restored_path(run, step)),
        ),
    )
}

pub fn set_state(layout: &Layout, run: &str, state: RunState, deadline: Duration) -> Script {
    Script::new(
        format!("recording the run as {}", state.as_str()),
        deadline,
        format!(
            "[ -d {dir} ] || exit 0\n{write}",
            dir = quote(&layout.run_dir(run)),
            write = super::write_file(&layout.state_path(run), state.as_str()),
        ),
    )
}

/// After an apply went through on a host: rollback only ever takes back
/// the last run that changed the host, so older runs' backups and retired
/// containers are no longer needed and go.
pub fn commit(layout: &Layout, run: &str, deadline: Duration) -> Script {
    let text = format!(
        "set -u\n\
         [ -d {dir} ] || exit 0\n\
         {state}\
         keep={run}\n\
         for d in {runs}/*/; do\n  \
           [ -d \"$d\" ] || continue\n  \
           id=${{d%/}}; id=${{id##*/}}\n  \
           [ \"$id\" = \"$keep\" ] && continue\n  \
           for m in \"$d\"*.retired; do\n    \
             [ -e \"$m\" ] || continue\n    \
             c=$(cat -- \"$m\")\n    \
             case $c in ''|-*|*[!A-Za-z0-9._-]*) ;; *) docker rm -f -- \"$c\" >/dev/null 2>&1 || true ;; esac\n  \
           done\n  \
           rm -rf -- \"$d\"\n\
         done\n\
         printf '%s\\n' \"$keep\" > {history_tmp} && mv -f -- {history_tmp} {history}\n",
        dir = quote(&layout.run_dir(run)),
        state = super::write_file(&layout.state_path(run), RunState::Applied.as_str()),
        run = quote(run),
        runs = quote(&layout.runs_dir()),
        history_tmp = quote(&format!("{}.tmp", layout.history_file())),
        history = quote(&layout.history_file()),
    );
    Script::new("recording the run as applied", deadline, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::testing::{sh_with_path, stub};
    use std::path::Path;

    #[test]
    fn records_open_the_run_once_and_arrive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path().to_str().unwrap());
        let write = |seq: u32| {
            write_record(
                &layout,
                "r1",
                seq,
                &format!("{{\"n\":%s,\"pct\":\"{}\"}}\\n", printf_literal("100%")),
                "7",
            )
        };
        for seq in [1, 2] {
            let out = sh_with_path(&write(seq), b"", None);
            assert!(out.status.success(), "{out:?}");
        }
        assert_eq!(
            std::fs::read_to_string(layout.record_path("r1", 2)).unwrap(),
            "{\"n\":7,\"pct\":\"100%\"}\n"
        );
        assert_eq!(
            std::fs::read_to_string(layout.history_file()).unwrap(),
            "r1\n"
        );
        assert_eq!(
            std::fs::read_to_string(layout.state_path("r1")).unwrap(),
            "applying"
        );
    }

    #[test]
    fn a_change_whose_record_cannot_be_written_does_not_happen() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path().to_str().unwrap());
        // The record's temporary file cannot be made: as a full disk, but
        // also for root.
        std::fs::create_dir_all(format!("{}.tmp", layout.record_path("r1", 1))).unwrap();
        let changed = dir.path().join("changed");
        let script = format!(
            "set -u\n{}: > {}\n",
            write_record(&layout, "r1", 1, "{}\\n", ""),
            changed.display()
        );
        let out = sh_with_path(&script, b"", None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Is a directory") && err.contains("cannot write the undo record"),
            "the agent's own words, then what it means: {err}"
        );
        assert!(!changed.exists(), "the change did not happen");
        assert!(!Path::new(&layout.record_path("r1", 1)).exists());
    }

    #[test]
    fn commit_keeps_only_the_run_rollback_needs() {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let log = dir.path().join("docker.log");
        stub(
            bin.path(),
            "docker",
            &format!("echo \"$@\" >> {}", log.display()),
        );
        let layout = Layout::at(dir.path().join("state").to_str().unwrap());
        for run in ["old", "new"] {
            let out = sh_with_path(&begin_run(&layout, run), b"", None);
            assert!(out.status.success());
        }
        std::fs::write(
            layout.retired_marker("old", "calico-node"),
            "calico-node-previous-old",
        )
        .unwrap();
        let out = sh_with_path(
            &commit(&layout, "new", Duration::from_secs(5)).text,
            b"",
            Some(bin.path()),
        );
        assert!(out.status.success(), "{out:?}");
        assert!(!std::path::Path::new(&layout.run_dir("old")).exists());
        assert_eq!(
            std::fs::read_to_string(layout.state_path("new")).unwrap(),
            "applied"
        );
        assert_eq!(
            std::fs::read_to_string(layout.history_file()).unwrap(),
            "new\n"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "rm -f -- calico-node-previous-old\n"
        );
        // A run that never opened a record on this host changes nothing.
        let out = sh_with_path(
            &commit(&layout, "other", Duration::from_secs(5)).text,
            b"",
            Some(bin.path()),
        );
        assert!(out.status.success());
        assert!(std::path::Path::new(&layout.run_dir("new")).exists());
    }
}
