//! From the raw command line to a validated run: the inventory loaded, the
//! hosts selected, every template rendered. Nothing here touches the network.

use std::path::PathBuf;
use std::sync::Arc;

use globset::{Glob, GlobSetBuilder};

use crate::cli::Command;
use crate::desired::{self, Desired};
use crate::error::Error;
use crate::exec::Mode;
use crate::inventory::{self, Agent, Inventory};
use crate::journal;
use crate::templates::Templates;

pub struct Config {
    pub inventory: Inventory,
    /// The selected agents with their desired state, in inventory order.
    pub hosts: Vec<(Agent, Desired)>,
    pub forks: usize,
    pub mode: Mode,
    pub json: bool,
    /// Hash every managed file on the agents.
    pub verify: bool,
    /// Keep environment values in plan's diffs.
    pub show_secrets: bool,
    pub resume: bool,
    pub pause_after_canary: bool,
    /// Where the run journal lives.
    pub state_dir: PathBuf,
}

pub fn from_command(command: &Command) -> Result<Config, Error> {
    let args = command.args();
    let inventory = inventory::load(&args.inventory)?;
    let agents = select(&inventory.agents, &args.limit)?;
    let templates = Templates::load(inventory.templates_dir.as_deref())?;
    let binaries = if inventory.cni.enabled {
        desired::hash_binaries(&inventory)?
    } else {
        Arc::from(Vec::new())
    };
    let etcd = desired::etcd_runs(&inventory)?;
    let hosts = agents
        .into_iter()
        .map(|agent| {
            let want = desired::for_agent(&inventory, &agent, &templates, &binaries, &etcd)?;
            Ok((agent, want))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let (mode, resume, pause_after_canary) = match command {
        Command::Apply(a) => (Mode::Apply, a.resume, a.pause_after_canary),
        Command::Plan(_) | Command::Unlock(_) | Command::Status(_) => (Mode::Plan, false, false),
        Command::Rollback(_) => (Mode::Rollback, false, false),
    };
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => journal::default_state_dir(&inventory.path),
    };
    let forks = args.forks.map(usize::from).unwrap_or(hosts.len());
    check_open_files(hosts.len(), forks, crate::controller::open_files_limit())?;
    Ok(Config {
        forks,
        hosts,
        inventory,
        mode,
        json: args.json,
        verify: args.verify,
        show_secrets: args.show_secrets,
        resume,
        pause_after_canary,
        state_dir,
    })
}

/// Every host keeps its SSH connection open for the whole run, and each
/// host being worked on may stream a file: with too low a `ulimit -n` the
/// run would fail half way, so it is refused before it starts.
pub fn check_open_files(hosts: usize, forks: usize, limit: Option<u64>) -> Result<(), Error> {
    let needed = (hosts + forks.min(hosts)) as u64 + 64;
    match limit {
        Some(limit) if limit < needed => Err(Error::OpenFiles {
            hosts,
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// `--limit`: names or globs; every pattern must match some agent, so a
/// typo cannot silently shrink a rollout to nothing.
pub fn select(agents: &[Agent], patterns: &[String]) -> Result<Vec<Agent>, Error> {
    if patterns.is_empty() {
        return Ok(agents.to_vec());
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::Limit {
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
        if !agents
            .iter()
            .any(|a| glob.compile_matcher().is_match(&a.name))
        {
            return Err(Error::LimitMatchesNothing(p.clone()));
        }
        set.add(glob);
    }
    let set = set.build().map_err(|e| Error::Limit {
        pattern: patterns.join(","),
        reason: e.to_string(),
    })?;
    Ok(agents
        .iter()
        .filter(|a| set.is_match(&a.name))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Role;
    use crate::steps::testing::agent;

    fn named(names: &[&str]) -> Vec<Agent> {
        names
            .iter()
            .map(|n| Agent {
                name: n.to_string(),
                ..agent(Role::Private)
            })
            .collect()
    }

    #[test]
    fn too_few_open_files_are_said_up_front() {
        assert!(check_open_files(50, 50, Some(1024)).is_ok());
        assert!(check_open_files(600, 600, None).is_ok());
        let e = check_open_files(600, 600, Some(1024))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1264 open files") && e.contains("ulimit -n"),
            "{e}"
        );
        assert!(
            check_open_files(600, 10, Some(1024)).is_ok(),
            "fewer at once"
        );
    }

    #[test]
    fn limit_by_name_and_glob() {
        let all = named(&["agent-1", "agent-2", "pub-1"]);
        let names = |sel: Vec<Agent>| sel.into_iter().map(|a| a.name).collect::<Vec<_>>();
        assert_eq!(names(select(&all, &[]).unwrap()).len(), 3);
        assert_eq!(
            names(select(&all, &["agent-*".into()]).unwrap()),
            ["agent-1", "agent-2"]
        );
        assert_eq!(
            names(select(&all, &["pub-1".into(), "agent-2".into()]).unwrap()),
            ["agent-2", "pub-1"]
        );
        assert!(matches!(
            select(&all, &["agnet-*".into()]),
            Err(Error::LimitMatchesNothing(_))
        ));
        assert!(matches!(
            select(&all, &["[".into()]),
            Err(Error::Limit { .. })
        ));
    }
}
