//! The command line as typed: parsed by clap, validated later in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "calico-rollout",
    version,
    about = "Install and upgrade Calico on every DC/OS agent over SSH, in rolling batches",
    after_help = "Exit status: 0 all hosts ok/changed/skipped; 2 bad command line, inventory or template; \
                  3 too many hosts failed preflight, nothing changed; 4 some host failed; \
                  5 failure budget exceeded, later batches not started; 1 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Roll Calico out: stage, then restart in batches, then report.
    Apply(RunArgs),
    /// Probe every host and show what apply would change; write nothing.
    Plan(RunArgs),
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

    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Command {
    pub fn args(&self) -> &RunArgs {
        match self {
            Command::Apply(a) | Command::Plan(a) => a,
        }
    }

    pub fn dry_run(&self) -> bool {
        matches!(self, Command::Plan(_))
    }
}
