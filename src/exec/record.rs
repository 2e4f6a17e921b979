//! The journal side of a run: saved after every phase and on every
//! heartbeat, so that an interruption at any point leaves an accurate
//! record behind, and `--resume` can tell a live run from a dead one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::host::HostRun;
use crate::controller::unix_now;
use crate::journal::{Journal, JournalStatus, JournalStep, RunState};
use crate::report::{Event, Reporter, StepResult};
use crate::step::StepName;

pub struct Record {
    journal: Option<(Journal, PathBuf)>,
    reporter: Arc<dyn Reporter>,
}

pub type SharedRecord = Arc<Mutex<Record>>;

impl Record {
    pub fn shared(
        journal: Option<(Journal, PathBuf)>,
        reporter: Arc<dyn Reporter>,
    ) -> SharedRecord {
        Arc::new(Mutex::new(Record { journal, reporter }))
    }

    fn host_steps(results: &[Option<StepResult>]) -> Vec<JournalStep> {
        results
            .iter()
            .zip(StepName::ALL)
            .map(|(r, step)| match r {
                Some(r) => JournalStep {
                    step,
                    status: r.status.into(),
                    message: r.message.clone(),
                },
                None => JournalStep {
                    step,
                    status: JournalStatus::Skipped,
                    message: "not run yet".into(),
                },
            })
            .collect()
    }

    pub fn save(&mut self, runs: &[HostRun], state: RunState) {
        let Some((journal, dir)) = &mut self.journal else {
            return;
        };
        for run in runs {
            // A host done in an earlier run keeps its entry.
            if run.resumed {
                continue;
            }
            journal.record_host(
                &run.agent.name,
                Self::host_steps(&run.results),
                run.done(),
                super::barrier::passed_mesh(run),
            );
        }
        journal.state = state;
        journal.heartbeat = unix_now();
        if let Err(e) = journal.save(dir) {
            self.reporter
                .event(Event::Notice(&format!("cannot save the run journal: {e}")));
        }
    }

    /// The run's sign of life, between phases.
    pub fn touch(&mut self) {
        if let Some((journal, dir)) = &mut self.journal {
            journal.heartbeat = unix_now();
            let _ = journal.save(dir);
        }
    }
}

/// Saves the journal, whoever else holds it.
pub fn save(record: &SharedRecord, runs: &[HostRun], state: RunState) {
    record
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .save(runs, state);
}
