//! Where calico-rollout keeps its own state on an agent. One value holds
//! the root, so that every remote script can be tried under a temporary
//! folder in tests, exactly as it runs on an agent.

use crate::step::StepName;

/// The state folder on a real agent.
pub const AGENT_STATE_DIR: &str = "/var/lib/calico-rollout";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout::at(AGENT_STATE_DIR)
    }
}

impl Layout {
    pub fn at(root: &str) -> Self {
        Layout {
            root: root.trim_end_matches('/').to_string(),
        }
    }

    /// Uploads, named by their sha256, before they are installed.
    pub fn stage_dir(&self) -> String {
        format!("{}/stage", self.root)
    }

    pub fn stage_path(&self, sha256: &str) -> String {
        format!("{}/stage/{sha256}", self.root)
    }

    /// Markers of restarts a change made necessary and that have not
    /// happened yet: an interrupted run leaves them for the next one.
    pub fn pending_dir(&self) -> String {
        format!("{}/pending", self.root)
    }

    pub fn pending_path(&self, unit: &str) -> String {
        format!("{}/pending/{unit}", self.root)
    }

    /// What each managed file was when calico-rollout installed it:
    /// `path|size|mtime|ctime|inode|sha256` a line.
    pub fn manifest_file(&self) -> String {
        format!("{}/manifest", self.root)
    }

    /// Run ids, one a line, in the order they first changed the host.
    pub fn history_file(&self) -> String {
        format!("{}/history", self.root)
    }

    pub fn runs_dir(&self) -> String {
        format!("{}/runs", self.root)
    }

    pub fn run_dir(&self, run: &str) -> String {
        format!("{}/runs/{run}", self.root)
    }

    pub fn state_path(&self, run: &str) -> String {
        format!("{}/state", self.run_dir(run))
    }

    pub fn record_path(&self, run: &str, seq: u32) -> String {
        format!("{}/{seq:04}.json", self.run_dir(run))
    }

    pub fn undone_path(&self, run: &str, seq: u32) -> String {
        format!("{}/{seq:04}.undone", self.run_dir(run))
    }

    pub fn restored_path(&self, run: &str, step: StepName) -> String {
        format!("{}/{step}.restored", self.run_dir(run))
    }

    /// Where `run` keeps the version of `target` it replaced. One slot per
    /// run and file: a later run never overwrites an earlier run's copy.
    pub fn backup_path(&self, run: &str, target: &str) -> String {
        format!("{}/backup{target}", self.run_dir(run))
    }

    /// The file naming a container `run` retired, so that pruning the run
    /// also removes the container.
    pub fn retired_marker(&self, run: &str, container: &str) -> String {
        format!("{}/{container}.retired", self.run_dir(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hang_off_one_root() {
        let l = Layout::default();
        assert_eq!(l.stage_path("ab"), "/var/lib/calico-rollout/stage/ab");
        assert_eq!(
            l.backup_path("r1", "/etc/docker/daemon.json"),
            "/var/lib/calico-rollout/runs/r1/backup/etc/docker/daemon.json"
        );
        assert_eq!(
            l.record_path("r1", 7),
            "/var/lib/calico-rollout/runs/r1/0007.json"
        );
        assert_eq!(Layout::at("/tmp/x/").history_file(), "/tmp/x/history");
    }
}
