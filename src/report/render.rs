//! The human report: a table of statuses, then the details that explain it.

use std::fmt::Write;

use super::{Halt, Report, Status};
use crate::step::StepName;

/// The end-of-run table, with failure reasons and changes listed under it.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let name_width = report
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(0)
        .max("HOST".len());
    let col = StepName::ALL
        .iter()
        .map(|s| s.as_str().len())
        .max()
        .unwrap_or(0)
        .max("unreachable".len());
    let _ = write!(out, "{:<name_width$}", "HOST");
    for step in StepName::ALL {
        let _ = write!(out, "  {:<col$}", step.as_str());
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for host in &report.hosts {
        let _ = write!(out, "{:<name_width$}", host.host);
        for step in &host.steps {
            let _ = write!(out, "  {:<col$}", step.status.as_str());
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }

    let mut section = |title: &str, pick: &dyn Fn(Status) -> bool| {
        let lines: Vec<String> = report
            .hosts
            .iter()
            .flat_map(|h| {
                h.steps
                    .iter()
                    .filter(|s| pick(s.status) && !s.message.is_empty())
                    .map(move |s| format!("  {} {}: {}", h.host, s.step, s.message))
            })
            .collect();
        if !lines.is_empty() {
            let _ = write!(out, "\n{title}:\n{}\n", lines.join("\n"));
        }
    };
    section("Changed", &|s| s == Status::Changed);
    section("Failed", &|s| s.is_failure());

    let counts = |pick: &dyn Fn(Status) -> bool| {
        report
            .hosts
            .iter()
            .filter(|h| h.steps.iter().any(|s| pick(s.status)))
            .count()
    };
    let restarted: u32 = report
        .hosts
        .iter()
        .flat_map(|h| &h.steps)
        .map(|s| s.restarts)
        .sum();
    let _ = write!(
        out,
        "\n{} hosts: {} changed, {} failed; {} restarts\n",
        report.hosts.len(),
        counts(&|s| s == Status::Changed),
        counts(&Status::is_failure),
        restarted
    );
    match &report.halt {
        Some(Halt::Preflight(why)) => {
            let _ = writeln!(out, "STOPPED before changing anything: {why}");
        }
        Some(Halt::Budget(why)) => {
            let _ = writeln!(out, "STOPPED: {why}");
        }
        Some(Halt::Paused(why)) => {
            let _ = writeln!(out, "PAUSED: {why}");
        }
        Some(Halt::Interrupted(why)) => {
            let _ = writeln!(out, "INTERRUPTED: {why}; run apply --resume to go on");
        }
        Some(Halt::Aborted(why)) => {
            let _ = writeln!(
                out,
                "ABORTED: {why}; steps in flight are unknown: run plan to see where each host is"
            );
        }
        None => {}
    }
    out
}

/// What `plan` prints: per host, what apply would change and restart.
pub fn render_plan(report: &Report) -> String {
    let mut out = String::new();
    for host in &report.hosts {
        let _ = writeln!(out, "{}:", host.host);
        for step in &host.steps {
            let what = match step.status {
                Status::Ok => "ok, nothing to do".to_string(),
                Status::Changed => format!("would {}", step.message),
                Status::Skipped => format!("skipped ({})", step.message),
                Status::Failed | Status::Unreachable | Status::Reverted | Status::Unknown => {
                    format!("{}: {}", step.status.as_str().to_uppercase(), step.message)
                }
            };
            let _ = writeln!(out, "  {:<11} {what}", step.step.as_str());
        }
    }
    let changes: usize = report
        .hosts
        .iter()
        .flat_map(|h| &h.steps)
        .filter(|s| s.status == Status::Changed)
        .count();
    let _ = writeln!(
        out,
        "\nplan: {changes} step(s) would change on {} host(s); nothing was written",
        report.hosts.len()
    );
    if let Some(Halt::Preflight(why)) = &report.halt {
        let _ = writeln!(out, "apply would stop before changing anything: {why}");
    }
    if let Some(e) = &report.estimate
        && e.batches > 0
    {
        let _ = writeln!(
            out,
            "apply would roll in {} batch(es) of up to {} host(s) and take about {} \
             (restarts and health gates, then min_healthy, batch after batch)",
            e.batches,
            e.largest,
            humantime::format_duration(std::time::Duration::from_secs(e.total.as_secs())),
        );
    }
    out
}
