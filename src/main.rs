//! calico-rollout: install and upgrade Calico on DC/OS agents over SSH.
//!
//! The pipeline: `config` (inventory → validated run) → `rollout`
//! (preflight/facts → plan → stage → batches) → `report`, over the
//! `transport` seam whose SSH implementation does the talking.

mod cli;
mod config;
mod desired;
mod error;
mod facts;
mod inventory;
mod journal;
mod lock;
mod remote;
mod report;
mod rollout;
mod shell;
mod shutdown;
mod steps;
mod templates;
mod transport;
mod ui;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::error::Error;
use crate::journal::Journal;
use crate::lock::LockOwner;
use crate::report::Reporter;
use crate::rollout::Mode;
use crate::shutdown::Shutdown;

fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
    let cli = Cli::parse();
    let level = match cli.command.args().verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CALICO_ROLLOUT_LOG").unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let runtime = tokio::runtime::Runtime::new()?;
    let code = match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("calico-rollout: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: &Cli) -> Result<i32, Error> {
    let config = config::from_command(&cli.command)?;
    eprintln!(
        "calico-rollout {}: {} agent(s) from {} (sha256 {})",
        match config.mode {
            Mode::Apply => "apply",
            Mode::Plan => "plan",
            Mode::Rollback => "rollback",
        },
        config.hosts.len(),
        config.inventory.path.display(),
        &config.inventory.hash[..12],
    );

    let run_id = journal::new_run_id();
    let mut done = BTreeMap::new();
    let mut takeover_from = None;
    let journal = match config.mode {
        Mode::Apply if config.resume => {
            let mut old = Journal::load(&config.state_dir)?
                .ok_or_else(|| Error::NothingToResume(config.state_dir.clone()))?;
            old.check_resumable(&config.inventory.hash)?;
            let finished = old.done_hosts();
            done = old
                .hosts
                .iter()
                .filter(|(name, _)| finished.contains(*name))
                .map(|(name, entry)| (name.clone(), entry.steps.clone()))
                .collect();
            eprintln!(
                "resuming run {}: {} host(s) already done",
                old.run_id,
                done.len()
            );
            takeover_from = Some(std::mem::replace(&mut old.run_id, run_id.clone()));
            Some((old, config.state_dir.clone()))
        }
        Mode::Apply => Some((
            Journal::new(config.inventory.hash.clone(), run_id.clone()),
            config.state_dir.clone(),
        )),
        Mode::Plan | Mode::Rollback => None,
    };

    let progress = Arc::new(ui::Progress::new());
    let reporter: Arc<dyn Reporter> = progress.clone();
    let opts = rollout::Options {
        forks: config.forks,
        mode: config.mode,
        lock: rollout::LockRequest {
            owner: LockOwner::current(&run_id),
            takeover_from,
        },
        pause_after_canary: config.pause_after_canary,
        rollout: config.inventory.rollout.clone(),
        shutdown: Shutdown::listen(),
        journal,
    };
    let connector = Arc::new(transport::ssh::SshConnector::new());
    let report = rollout::run(connector, config.hosts, done, opts, reporter).await;
    progress.finish();

    let human = if report.dry_run {
        report::render_plan(&report)
    } else {
        report::render_table(&report)
    };
    eprint!("\n{human}");
    if config.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report.to_json())?;
    }
    Ok(report.exit_code())
}
