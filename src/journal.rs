//! The local record of an apply, kept on the operator's machine so that
//! `apply --resume` can skip the hosts an interrupted run already finished.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::controller::{local_hostname, process_space, run_alive_here, unix_now};
use crate::lock::STALE_AFTER;
use crate::report::{Status, StepResult};
use crate::step::StepName;
use crate::steps::Mesh;

/// The journal's file name inside the state folder.
pub const JOURNAL_FILE: &str = "journal.json";

/// `<inventory's folder>/.calico-rollout/<inventory file stem>/`: beside the
/// inventory, so that two inventories in one folder never share a journal.
pub fn default_state_dir(inventory: &Path) -> PathBuf {
    let folder = inventory.parent().unwrap_or(Path::new(""));
    let stem = inventory
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "inventory".to_string());
    folder.join(".calico-rollout").join(stem)
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error(
        "{} is not a readable journal ({error}); run apply without --resume to start over",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
    #[error(
        "the inventory changed since the interrupted run (sha256 {}… then, {}… now); \
         run apply without --resume",
        short(then),
        short(now)
    )]
    InventoryChanged { then: String, now: String },
    #[error("the last run finished; nothing to resume")]
    Finished,
    #[error(
        "run {run} is still going (pid {pid} on {host}, heartbeat {ago}s ago); \
         wait for it to end, or stop it, before resuming"
    )]
    StillRunning {
        run: String,
        pid: u32,
        host: String,
        ago: u64,
    },
    #[error(
        "run {run} is still going (pid {pid} on {host}, heartbeat {ago}s ago) and its journal \
         is kept; wait for it to end, or stop it, before starting another apply"
    )]
    Busy {
        run: String,
        pid: u32,
        host: String,
        ago: u64,
    },
}

/// Hashes are shown the way the run's opening line shows them.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Finished,
    /// The failure budget ran out, or preflight halted the run.
    Stopped,
    /// The operator pressed Ctrl-C: hosts in flight finished their step.
    Interrupted,
    /// A second Ctrl-C: hosts in flight were left mid-step.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalStatus {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
    Reverted,
    /// The run was aborted while the step was under way: its effect on the
    /// host is not known, so a resume must look again.
    Unknown,
}

impl JournalStatus {
    /// Whether the step needs nothing more from a resumed run.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            JournalStatus::Ok | JournalStatus::Changed | JournalStatus::Skipped
        )
    }
}

impl From<Status> for JournalStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Ok => JournalStatus::Ok,
            Status::Changed => JournalStatus::Changed,
            Status::Skipped => JournalStatus::Skipped,
            Status::Failed => JournalStatus::Failed,
            Status::Unreachable => JournalStatus::Unreachable,
            Status::Reverted => JournalStatus::Reverted,
            Status::Unknown => JournalStatus::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStep {
    pub step: StepName,
    pub status: JournalStatus,
    pub message: String,
}

impl From<&StepResult> for JournalStep {
    fn from(result: &StepResult) -> Self {
        JournalStep {
            step: result.step,
            status: result.status.into(),
            message: result.message.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub done: bool,
    pub steps: Vec<JournalStep>,
    /// The BGP sessions the host proved Established: `--resume` checks
    /// them again before its first batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<Mesh>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// sha256 of the inventory the run was started from.
    pub inventory_hash: String,
    pub run_id: String,
    /// Unix seconds.
    pub started_at: u64,
    pub state: RunState,
    /// The machine and process of the run, and its last sign of life (unix
    /// seconds): `--resume` refuses while the run is alive.
    #[serde(default)]
    pub controller: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub heartbeat: u64,
    /// The boot and pid namespace of that process (see
    /// `controller::process_space`): only there does its pid tell.
    #[serde(default)]
    pub space: String,
    pub hosts: BTreeMap<String, HostEntry>,
}

impl Journal {
    pub fn new(inventory_hash: impl Into<String>, run_id: impl Into<String>) -> Self {
        Journal {
            inventory_hash: inventory_hash.into(),
            run_id: run_id.into(),
            started_at: unix_now(),
            state: RunState::Running,
            controller: local_hostname(),
            pid: std::process::id(),
            heartbeat: unix_now(),
            space: process_space(),
            hosts: BTreeMap::new(),
        }
    }

    /// Makes the journal this process's: `--resume` continues the run
    /// under this process's name.
    pub fn adopt(&mut self, run_id: &str) {
        self.run_id = run_id.to_string();
        self.controller = local_hostname();
        self.pid = std::process::id();
        self.heartbeat = unix_now();
        self.space = process_space();
        self.state = RunState::Running;
    }

    /// Whether the run that wrote the journal may still be going: its
    /// process lives on this machine, or another machine's run kept its
    /// heartbeat within the lock's stale time.
    pub fn alive(&self) -> bool {
        if self.pid == 0 {
            return false;
        }
        // Only in its own process space is the pid proof either way; a
        // run elsewhere, another container with the same hostname
        // included, is alive while its heartbeat is fresh.
        if !self.space.is_empty() && self.space == process_space() {
            return run_alive_here(self.pid);
        }
        unix_now().saturating_sub(self.heartbeat) < STALE_AFTER.as_secs()
    }

    /// The journal in `dir`, or None when no run has left one there.
    pub fn load(dir: &Path) -> Result<Option<Journal>, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(JournalError::Read { path, error }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| JournalError::Corrupt { path, error })
    }

    /// Replaces the journal in `dir` in one rename, so a crash or Ctrl-C
    /// mid-save leaves the previous journal whole rather than half of this one.
    pub fn save(&self, dir: &Path) -> Result<(), JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |error| JournalError::Write { path, error }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write_err(dir))?;
        let mut bytes = serde_json::to_vec_pretty(self).expect("journal serializes");
        bytes.push(b'\n');
        // tempfile makes the file 0600 and removes it if anything fails.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err(&path))?;
        tmp.write_all(&bytes).map_err(write_err(&path))?;
        tmp.as_file().sync_all().map_err(write_err(&path))?;
        tmp.persist(&path).map_err(|e| JournalError::Write {
            path: path.clone(),
            error: e.error,
        })?;
        // The rename is already atomic; syncing the folder only makes it
        // survive a power cut, which not every filesystem supports.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Records a host's outcome, replacing what an earlier attempt recorded.
    /// A host counts as done only if every step also ended done.
    pub fn record_host(
        &mut self,
        host: &str,
        steps: Vec<JournalStep>,
        done: bool,
        mesh: Option<Mesh>,
    ) {
        let done = done && steps.iter().all(|s| s.status.is_done());
        self.hosts
            .insert(host.to_string(), HostEntry { done, steps, mesh });
    }

    /// A new apply starts a new journal: refused while the run that wrote
    /// this one may still be going, which would lose its `--resume`.
    pub fn check_replaceable(&self) -> Result<(), JournalError> {
        if self.state == RunState::Finished || !self.alive() {
            return Ok(());
        }
        Err(JournalError::Busy {
            run: self.run_id.clone(),
            pid: self.pid,
            host: self.controller.clone(),
            ago: unix_now().saturating_sub(self.heartbeat),
        })
    }

    pub fn check_resumable(&self, inventory_hash: &str) -> Result<(), JournalError> {
        if self.state == RunState::Finished {
            return Err(JournalError::Finished);
        }
        if self.alive() {
            return Err(JournalError::StillRunning {
                run: self.run_id.clone(),
                pid: self.pid,
                host: self.controller.clone(),
                ago: unix_now().saturating_sub(self.heartbeat),
            });
        }
        if self.inventory_hash != inventory_hash {
            return Err(JournalError::InventoryChanged {
                then: self.inventory_hash.clone(),
                now: inventory_hash.to_string(),
            });
        }
        Ok(())
    }

    /// The hosts a resumed run can leave alone.
    pub fn done_hosts(&self) -> BTreeSet<String> {
        self.hosts
            .iter()
            .filter(|(_, e)| e.done && e.steps.iter().all(|s| s.status.is_done()))
            .map(|(h, _)| h.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: StepName, status: JournalStatus) -> JournalStep {
        JournalStep {
            step,
            status,
            message: format!("{step} {status:?}"),
        }
    }

    fn sample() -> Journal {
        let mut j = Journal::new("a".repeat(64), "op-1-2");
        j.record_host(
            "agent-1",
            vec![
                step(StepName::EtcdProxy, JournalStatus::Ok),
                step(StepName::Docker, JournalStatus::Changed),
                step(StepName::Cni, JournalStatus::Skipped),
            ],
            true,
            None,
        );
        j.record_host(
            "agent-2",
            vec![
                step(StepName::EtcdProxy, JournalStatus::Ok),
                step(StepName::Docker, JournalStatus::Failed),
            ],
            false,
            None,
        );
        j.record_host(
            "agent-3",
            vec![step(StepName::Node, JournalStatus::Unknown)],
            false,
            None,
        );
        j
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("nested").join("state");
        assert!(Journal::load(&state).unwrap().is_none());

        let mut j = sample();
        j.state = RunState::Interrupted;
        j.save(&state).unwrap();
        assert_eq!(Journal::load(&state).unwrap(), Some(j.clone()));

        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let text = fs::read_to_string(state.join(JOURNAL_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["state"], "interrupted");
        assert_eq!(v["hosts"]["agent-1"]["steps"][0]["step"], "etcd-proxy");
        assert_eq!(v["hosts"]["agent-1"]["steps"][1]["status"], "changed");
        assert_eq!(v["hosts"]["agent-3"]["steps"][0]["status"], "unknown");

        // A second save replaces the first.
        j.state = RunState::Finished;
        j.save(&state).unwrap();
        assert_eq!(
            Journal::load(&state).unwrap().unwrap().state,
            RunState::Finished
        );
    }

    #[test]
    fn save_leaves_only_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = sample();
        for _ in 0..3 {
            j.save(dir.path()).unwrap();
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [JOURNAL_FILE]);
    }

    #[test]
    fn corrupt_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(JOURNAL_FILE), "{\"inventory_hash\": ").unwrap();
        let err = Journal::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().join(JOURNAL_FILE).display().to_string()),
            "{err}"
        );
        assert!(err.contains("without --resume"), "{err}");

        let mut j = serde_json::to_value(sample()).unwrap();
        j["hosts"]["agent-1"]["steps"][0]["step"] = "etcd".into();
        fs::write(dir.path().join(JOURNAL_FILE), j.to_string()).unwrap();
        let err = Journal::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown variant `etcd`"), "{err}");
    }

    #[test]
    fn a_run_that_is_alive_cannot_be_resumed() {
        let mut j = sample();
        let hash = "a".repeat(64);
        // This very process wrote it.
        let err = j.check_replaceable().unwrap_err();
        assert!(matches!(err, JournalError::Busy { .. }), "{err}");
        let err = j.check_resumable(&hash).unwrap_err();
        assert!(matches!(err, JournalError::StillRunning { .. }), "{err}");
        assert!(err.to_string().contains("still going"), "{err}");
        // Another machine's run with a fresh heartbeat is alive too, and
        // so is one in another container of the same hostname: its pid
        // says nothing here.
        j.space = "another-boot/pid:[4026531836]".into();
        assert!(j.alive());
        j.heartbeat = unix_now() - STALE_AFTER.as_secs() - 1;
        assert!(!j.alive());
        // A run of this process space whose process is gone is not, even
        // with a fresh heartbeat: it died.
        j.space = process_space();
        j.heartbeat = unix_now();
        j.pid = u32::MAX - 1;
        assert!(!j.alive());
        j.check_resumable(&hash).unwrap();
    }

    #[test]
    fn check_resumable() {
        let mut j = sample();
        j.pid = 0;
        let hash = "a".repeat(64);
        for state in [
            RunState::Running,
            RunState::Stopped,
            RunState::Interrupted,
            RunState::Aborted,
        ] {
            j.state = state;
            j.check_resumable(&hash).unwrap();
        }

        let other = "b".repeat(64);
        let err = j.check_resumable(&other).unwrap_err().to_string();
        assert_eq!(
            err,
            "the inventory changed since the interrupted run \
             (sha256 aaaaaaaaaaaa… then, bbbbbbbbbbbb… now); run apply without --resume"
        );

        j.state = RunState::Finished;
        let err = j.check_resumable(&hash).unwrap_err().to_string();
        assert_eq!(err, "the last run finished; nothing to resume");
    }

    #[test]
    fn done_hosts_are_the_ones_that_finished_cleanly() {
        let mut j = sample();
        assert_eq!(j.done_hosts(), BTreeSet::from(["agent-1".to_string()]));

        // A host recorded done with a failed step is not done.
        j.record_host(
            "agent-4",
            vec![step(StepName::Docker, JournalStatus::Reverted)],
            true,
            None,
        );
        assert!(!j.hosts["agent-4"].done);

        // A later attempt replaces the earlier record.
        j.record_host(
            "agent-2",
            vec![step(StepName::Docker, JournalStatus::Changed)],
            true,
            None,
        );
        assert_eq!(
            j.done_hosts(),
            BTreeSet::from(["agent-1".to_string(), "agent-2".to_string()])
        );
    }

    #[test]
    fn report_statuses_map_across() {
        let pairs = [
            (Status::Ok, "ok"),
            (Status::Changed, "changed"),
            (Status::Skipped, "skipped"),
            (Status::Failed, "failed"),
            (Status::Unreachable, "unreachable"),
            (Status::Reverted, "reverted"),
        ];
        for (status, name) in pairs {
            let js = JournalStatus::from(status);
            assert_eq!(serde_json::to_value(js).unwrap(), name);
            assert_eq!(js.is_done(), !status.is_failure());
        }
    }

    #[test]
    fn default_state_dir_is_beside_the_inventory() {
        assert_eq!(
            default_state_dir(Path::new("/srv/dcos/cluster.yaml")),
            Path::new("/srv/dcos/.calico-rollout/cluster")
        );
        assert_eq!(
            default_state_dir(Path::new("prod.yml")),
            Path::new(".calico-rollout/prod")
        );
    }
}
