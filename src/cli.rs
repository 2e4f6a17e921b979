//! The command line as typed: parsed by clap, validated later in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "calico-rollout",
    version,
    about = "Install and upgrade Calico on every DC/OS agent over SSH, in rolling batches",
    after_help = "Exit status: 0 all hosts ok/changed/skipped (plan: nothing would change); \
                  2 plan only: some step would change; \
                  3 too many hosts failed preflight, nothing changed; 4 some host failed; \
                  5 failure budget exceeded, later batches not started; 6 paused after the canary batch; \
                  130 interrupted (Ctrl-C/SIGTERM), journal saved, locks released; \
                  131 aborted by a second Ctrl-C; 64 bad command line, inventory, template or --resume; \
                  1 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Roll Calico out: stage, then restart in batches, then report.
    Apply(ApplyArgs),
    /// Probe every host and show what apply would change; write nothing.
    Plan(RunArgs),
    /// Put every host back as it was before the last apply changed it,
    /// rolling in batches with the same health gates.
    Rollback(RunArgs),
    /// Remove the agents' calico-rollout locks that a dead run left behind.
    Unlock(UnlockArgs),
    /// Show what every agent runs, its health, lock and last run, and its
    /// drift from the inventory per step; take no lock, write nothing.
    /// Exit 0 converged, 2 drift, 4 some agent could not be read or a
    /// step would be refused.
    Status(RunArgs),
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Remove a lock even when its holder looks alive.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub run: RunArgs,

    /// Continue the last apply, which was interrupted, stopped or paused:
    /// hosts it finished are skipped. Refused if the inventory changed.
    #[arg(long)]
    pub resume: bool,

    /// Stop after the canary batch has stayed healthy; go on with --resume.
    #[arg(long)]
    pub pause_after_canary: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The inventory file (cluster.yaml).
    #[arg(short = 'i', long = "inventory", value_name = "FILE")]
    pub inventory: PathBuf,

    /// Only these agents: names or globs, comma-separated or repeated.
    #[arg(
        short = 'l',
        long = "limit",
        value_name = "PATTERN",
        value_delimiter = ','
    )]
    pub limit: Vec<String>,

    /// How many hosts to work on at once [default: all].
    #[arg(short = 'f', long = "forks", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: Option<u16>,

    /// Print the report as one JSON object on stdout (progress still goes
    /// to stderr).
    #[arg(long)]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE: one testsuite per host,
    /// one testcase per step (plan, apply and rollback).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Hash every managed file on the agents, instead of trusting the
    /// manifest of what was installed where a file's stat is unchanged.
    #[arg(long)]
    pub verify: bool,

    /// Where the run journal is kept [default: .calico-rollout/<inventory
    /// name>/ next to the inventory].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Show environment values in plan's container diffs (masked by
    /// default: they may hold credentials).
    #[arg(long)]
    pub show_secrets: bool,

    /// More output on stderr: -v each remote command as it starts, -vv
    /// debug logs too.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print only the recap (and errors) on stderr: no progress.
    #[arg(short = 'q', long = "quiet", conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Command {
    pub fn args(&self) -> &RunArgs {
        match self {
            Command::Apply(a) => &a.run,
            Command::Unlock(a) => &a.run,
            Command::Plan(a) | Command::Rollback(a) | Command::Status(a) => a,
        }
    }
}
