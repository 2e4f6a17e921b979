//! The on-agent history of applies: for each run that changed a host, the
//! undo of every change it made, in order, and how far it has been taken
//! back. Revert and `rollback` both work from it, and it outlives the
//! controller that wrote it.
//!
//! On the agent (see [`crate::layout::Layout`]): `history` lists run ids in
//! the order they first changed the host; `runs/<id>/` holds that run's
//! `state`, one `<seq>.json` per change (written before the change is
//! made), a `<seq>.undone` marker once it was taken back, `<step>.restored`
//! once a taken-back step's service was restarted, and `backup/<path>`: the
//! files as they were before this run replaced them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::step::{StepName, Undo};

/// The name a container is retired under by `run`.
pub fn retired_name(container: &str, run: &str) -> String {
    format!("{container}-previous-{run}")
}

/// Run ids name folders and containers on agents: `[A-Za-z0-9._-]`, not
/// starting with a dot or dash.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Changes are being made, or the run stopped while making them.
    Applying,
    /// Every change went through.
    Applied,
    /// The host failed and was put back as it was before the run.
    Reverted,
    /// `rollback` is taking the run back.
    RollingBack,
    /// `rollback` took the run back.
    RolledBack,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Applying => "applying",
            RunState::Applied => "applied",
            RunState::Reverted => "reverted",
            RunState::RollingBack => "rolling-back",
            RunState::RolledBack => "rolled-back",
        }
    }

    pub fn parse(text: &str) -> Option<RunState> {
        [
            RunState::Applying,
            RunState::Applied,
            RunState::Reverted,
            RunState::RollingBack,
            RunState::RolledBack,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One change as written to the agent before it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBody {
    pub step: StepName,
    pub undo: Undo,
    /// The unit the step restarts after its files change: restarted again
    /// once they are taken back.
    #[serde(default)]
    pub restart: Option<String>,
}

impl RecordBody {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("records serialize")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    pub seq: u32,
    pub body: RecordBody,
    pub undone: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub run: String,
    pub state: RunState,
    /// In the order they were made.
    pub changes: Vec<ChangeRecord>,
    /// Steps whose taking back is complete, restart included.
    pub restored: BTreeSet<StepName>,
}

impl RunRecord {
    /// The unit taking back `step` must restart, if any: none when no
    /// change of the step restarts one, or when taking back removes the
    /// unit altogether.
    pub fn restart_unit(&self, step: StepName) -> Option<&str> {
        let records = || self.changes.iter().filter(move |c| c.body.step == step);
        let unit = records().find_map(|c| c.body.restart.as_deref())?;
        (!records().any(|c| c.body.undo.removes_unit(unit))).then_some(unit)
    }

    /// Whether every change is taken back and every step's service restarted.
    pub fn taken_back(&self) -> bool {
        self.changes.iter().all(|c| {
            c.undone
                && (self.restored.contains(&c.body.step)
                    || self.restart_unit(c.body.step).is_none())
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Oldest first.
    pub runs: Vec<RunRecord>,
}

impl History {
    /// Reads what the probe printed: `run <id> <state>`, `change <id>
    /// <seq> <undone 0|1> <record's JSON line>` and `restored <id> <step>`.
    pub fn parse(text: &str) -> Result<History, String> {
        let mut history = History::default();
        for line in text.lines() {
            let words: Vec<&str> = line.splitn(5, ' ').collect();
            let find = |runs: &mut Vec<RunRecord>, id: &str| -> Result<usize, String> {
                runs.iter()
                    .position(|r| r.run == id)
                    .ok_or_else(|| format!("history line for an unknown run: {line:?}"))
            };
            match words.as_slice() {
                ["run", id, state] => {
                    if !valid_run_id(id) {
                        return Err(format!("run id {id:?} is not a safe name"));
                    }
                    let state = RunState::parse(state)
                        .ok_or_else(|| format!("run {id} is in an unknown state {state:?}"))?;
                    history.runs.push(RunRecord {
                        run: id.to_string(),
                        state,
                        changes: Vec::new(),
                        restored: BTreeSet::new(),
                    });
                }
                ["change", id, seq, undone, json] => {
                    let i = find(&mut history.runs, id)?;
                    let seq: u32 = seq
                        .parse()
                        .map_err(|_| format!("bad change number in {line:?}"))?;
                    let body: RecordBody = serde_json::from_str(json)
                        .map_err(|e| format!("record {id}/{seq} is unreadable ({e})"))?;
                    history.runs[i].changes.push(ChangeRecord {
                        seq,
                        body,
                        undone: *undone == "1",
                    });
                }
                ["restored", id, step] => {
                    let i = find(&mut history.runs, id)?;
                    if let Some(step) = StepName::parse(step) {
                        history.runs[i].restored.insert(step);
                    }
                }
                [""] | [] => {}
                _ => return Err(format!("unexpected history line {line:?}")),
            }
        }
        for run in &mut history.runs {
            run.changes.sort_by_key(|c| c.seq);
        }
        Ok(history)
    }

    /// The run `rollback` takes back: the last one that changed the host
    /// and was not reverted. None when there is none, or when it has been
    /// rolled back already (a second rollback finds nothing to do).
    pub fn rollback_target(&self) -> Option<&RunRecord> {
        for run in self.runs.iter().rev() {
            if run.changes.is_empty() || run.state == RunState::Reverted {
                continue;
            }
            if run.state == RunState::RolledBack {
                return None;
            }
            if run.taken_back() {
                if run.state == RunState::RollingBack {
                    return None;
                }
                // A revert that finished its work but not its bookkeeping.
                continue;
            }
            return Some(run);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_json_change() -> String {
        RecordBody {
            step: StepName::Docker,
            undo: Undo::File {
                target: "/etc/docker/daemon.json".into(),
                existed: true,
                tmp_dir: None,
            },
            restart: Some("docker".into()),
        }
        .to_line()
    }

    #[test]
    fn parses_runs_changes_and_progress() {
        let text = format!(
            "run r1 applied\nchange r1 2 0 {c}\nchange r1 1 1 {c}\nrestored r1 docker\nrun r2 reverted\n",
            c = daemon_json_change()
        );
        let h = History::parse(&text).unwrap();
        assert_eq!(h.runs.len(), 2);
        let r1 = &h.runs[0];
        assert_eq!(r1.state, RunState::Applied);
        assert_eq!(r1.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(r1.changes[0].undone && !r1.changes[1].undone);
        assert!(r1.restored.contains(&StepName::Docker));
        assert!(!r1.taken_back());
        assert!(History::parse("run r1 sideways\n").is_err());
        assert!(History::parse("change r9 1 0 x\n").is_err());
    }

    #[test]
    fn rollback_takes_back_the_last_run_that_stuck() {
        let c = daemon_json_change();
        let cases = [
            ("", None),
            ("run r1 applied\nchange r1 1 0 C\n", Some("r1")),
            // A reverted run did not change the host: the one before it is
            // what rollback takes back.
            (
                "run r1 applied\nchange r1 1 0 C\nrun r2 reverted\nchange r2 1 1 C\n",
                Some("r1"),
            ),
            // A run that changed nothing is no target.
            (
                "run r1 applied\nchange r1 1 0 C\nrun r2 applied\n",
                Some("r1"),
            ),
            // Once rolled back, a second rollback finds nothing.
            (
                "run r1 applied\nchange r1 1 0 C\nrun r2 rolled-back\nchange r2 1 1 C\n",
                None,
            ),
            // A rollback cut short goes on where it stopped.
            (
                "run r1 rolling-back\nchange r1 1 1 C\nchange r1 2 0 C\nrestored r1 docker\n",
                Some("r1"),
            ),
            (
                "run r1 rolling-back\nchange r1 1 1 C\nrestored r1 docker\n",
                None,
            ),
            // A revert that undid everything but did not record its end.
            (
                "run r1 applied\nchange r1 1 0 C\nrun r2 applying\nchange r2 1 1 C\nrestored r2 docker\n",
                Some("r1"),
            ),
        ];
        for (text, want) in cases {
            let h = History::parse(&text.replace('C', &c)).unwrap();
            assert_eq!(h.rollback_target().map(|r| r.run.as_str()), want, "{text}");
        }
    }

    #[test]
    fn run_ids_are_safe_names() {
        for ok in ["laptop-4242-1795340400", "a.b_c-1"] {
            assert!(valid_run_id(ok), "{ok}");
        }
        for bad in ["", "../x", "-rf", ".hidden", "a b", "a/b", "a'b"] {
            assert!(!valid_run_id(bad), "{bad}");
        }
    }
}
