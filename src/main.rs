//! calico-rollout: install and upgrade Calico on DC/OS agents over SSH.
//!
//! The pipeline: `config` (inventory → validated run) → `exec`
//! (preflight/facts → plan → stage → batches) → `report`, over the
//! `transport` seam whose SSH implementation does the talking. Every
//! script that runs on an agent lives in `remote`.

mod bgp;
mod cli;
mod config;
mod controller;
mod desired;
mod diff;
mod error;
mod exec;
mod facts;
mod history;
mod inventory;
mod journal;
mod layout;
mod lock;
mod remote;
mod report;
mod shell;
mod shutdown;
mod step;
mod steps;
mod templates;
mod transport;
mod ui;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};
use crate::exec::{Mode, Unlocked};
use crate::journal::Journal;
use crate::layout::Layout;
use crate::lock::LockOwner;
use crate::report::Reporter;
use crate::shutdown::Shutdown;

static PANICKED: AtomicBool = AtomicBool::new(false);

fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
    // A panic anywhere is exit 1, as documented, even one a host's task
    // survived.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        report_panic(info);
    }));
    // clap exits 2 on a bad command line; 2 is plan's "changes pending".
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { exit::USAGE } else { 0 })
    });
    // -v shows the remote commands as progress events; -vv adds the
    // debug logs.
    let level = match cli.command.args().verbose {
        0 | 1 => "warn",
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
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(&cli))));
    let code = match outcome {
        Err(_) => exit::INTERNAL,
        Ok(_) if PANICKED.load(Ordering::SeqCst) || exec::internal_error_happened() => {
            exit::INTERNAL
        }
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            ui::line_to_stderr(&format!("calico-rollout: {e}"));
            e.exit_code()
        }
    };
    std::process::exit(code);
}

async fn run(cli: &Cli) -> Result<i32, Error> {
    match &cli.command {
        Command::Unlock(args) => return unlock(args).await,
        Command::Status(_) => return status(&cli.command).await,
        _ => {}
    }
    let started = std::time::SystemTime::now();
    let args = cli.command.args();
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => ui::Verbosity::Quiet,
        (false, 0) => ui::Verbosity::Normal,
        (false, _) => ui::Verbosity::Verbose,
    };
    let say = |text: String| {
        if verbosity != ui::Verbosity::Quiet {
            ui::line_to_stderr(&text);
        }
    };
    let config = config::from_command(&cli.command)?;
    let mode = match config.mode {
        Mode::Apply => "apply",
        Mode::Plan => "plan",
        Mode::Rollback => "rollback",
    };
    say(format!(
        "calico-rollout {mode}: {} agent(s) from {} (sha256 {})",
        config.hosts.len(),
        config.inventory.path.display(),
        &config.inventory.hash[..12],
    ));

    let run_id = controller::new_run_id();
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
                .map(|(name, entry)| (name.clone(), entry.clone()))
                .collect();
            say(format!(
                "resuming run {}: {} host(s) already done",
                old.run_id,
                done.len()
            ));
            takeover_from = Some(old.run_id.clone());
            old.adopt(&run_id);
            Some((old, config.state_dir.clone()))
        }
        Mode::Apply => {
            // A journal that cannot be read is replaced: only a live run's
            // must be kept.
            if let Ok(Some(old)) = Journal::load(&config.state_dir) {
                old.check_replaceable()?;
            }
            Some((
                Journal::new(config.inventory.hash.clone(), run_id.clone()),
                config.state_dir.clone(),
            ))
        }
        Mode::Plan | Mode::Rollback => None,
    };

    let progress = Arc::new(ui::Progress::new(verbosity));
    let reporter: Arc<dyn Reporter> = progress.clone();
    let opts = exec::Options {
        forks: config.forks,
        mode: config.mode,
        lock: exec::LockRequest {
            owner: LockOwner::current(&run_id),
            takeover_from,
        },
        pause_after_canary: config.pause_after_canary,
        rollout: config.inventory.rollout.clone(),
        shutdown: Shutdown::listen(),
        journal,
        layout: Layout::default(),
        verify: config.verify,
        show_secrets: config.show_secrets,
    };
    let connector = Arc::new(transport::ssh::SshConnector::new());
    let info = report::RunInfo {
        mode,
        run_id: run_id.clone(),
        inventory_path: config.inventory.path.clone(),
        inventory_sha256: config.inventory.hash.clone(),
        started,
        finished: started,
    };
    let report = exec::run(connector, config.hosts, done, opts, reporter).await;
    progress.finish();
    let info = report::RunInfo {
        finished: std::time::SystemTime::now(),
        ..info
    };

    let human = if report.dry_run {
        report::render_plan(&report)
    } else {
        report::render_table(&report)
    };
    ui::to_stderr(&format!("\n{human}"));
    if let Some(path) = &args.junit {
        write_atomically(path, &report::to_junit(&report, &info))?;
    }
    if config.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report::to_json(&report, &info))?;
    }
    Ok(error::report_exit_code(&report))
}

/// `status`: reads every agent, prints the grouped view on stderr (and
/// `--json` on stdout); the exit code says whether the fleet is converged.
async fn status(command: &Command) -> Result<i32, Error> {
    let config = config::from_command(command)?;
    ui::line_to_stderr(&format!(
        "calico-rollout status: {} agent(s) from {} (sha256 {})",
        config.hosts.len(),
        config.inventory.path.display(),
        &config.inventory.hash[..12],
    ));
    let opts = exec::status::Options {
        forks: config.forks,
        layout: Layout::default(),
        verify: config.verify,
        deadline: config.inventory.rollout.command_timeout,
    };
    let connector = Arc::new(transport::ssh::SshConnector::new());
    let hosts = exec::status::status(connector, config.hosts, &opts).await;
    let report = report::status::StatusReport {
        inventory_path: config.inventory.path.display().to_string(),
        inventory_sha256: config.inventory.hash.clone(),
        hosts,
    };
    ui::to_stderr(&format!("\n{}", report::render_status(&report)));
    if config.json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report.to_json())?;
    }
    Ok(error::status_exit_code(&report))
}

/// Writes a report file whole or not at all: a CI job never reads half
/// of one, and a run that failed or stopped still leaves it.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), Error> {
    let fail = |source: std::io::Error| Error::ReportFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    // A report holds no secret, and CI often reads it as another user;
    // the temp file's own 0600 would hide it.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
    }
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

async fn unlock(args: &cli::UnlockArgs) -> Result<i32, Error> {
    let started = std::time::SystemTime::now();
    let inventory = inventory::load(&args.run.inventory)?;
    let agents = config::select(&inventory.agents, &args.run.limit)?;
    let forks = args.run.forks.map(usize::from).unwrap_or(agents.len());
    let connector = Arc::new(transport::ssh::SshConnector::new());
    let results = exec::unlock(
        connector,
        agents,
        args.force,
        forks,
        inventory.rollout.command_timeout,
    )
    .await;
    let mut code = exit::SUCCESS;
    for (host, outcome) in &results {
        let line = match outcome {
            Unlocked::Free => "no lock".to_string(),
            Unlocked::Removed(holder) => format!("removed the lock: it was {holder}"),
            Unlocked::Refused(why) => {
                code = exit::HOST_FAILED;
                format!("left the lock: {why}")
            }
            Unlocked::Failed(why) => {
                code = exit::HOST_FAILED;
                format!("FAILED: {why}")
            }
        };
        ui::line_to_stderr(&format!("{host}: {line}"));
    }
    if args.run.json {
        let json: Vec<serde_json::Value> = results
            .iter()
            .map(|(host, outcome)| {
                let (status, message) = match outcome {
                    Unlocked::Free => ("free", String::new()),
                    Unlocked::Removed(h) => ("removed", h.clone()),
                    Unlocked::Refused(w) => ("refused", w.clone()),
                    Unlocked::Failed(w) => ("failed", w.clone()),
                };
                serde_json::json!({"host": host, "status": status, "message": message})
            })
            .collect();
        let info = report::RunInfo {
            mode: "unlock",
            run_id: controller::new_run_id(),
            inventory_path: inventory.path.clone(),
            inventory_sha256: inventory.hash.clone(),
            started,
            finished: std::time::SystemTime::now(),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", report::to_json_with(&info, &json))?;
    }
    Ok(code)
}
