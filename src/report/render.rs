//! The human report: a table of statuses, then the details that explain it,
//! each said once: hosts with the same change or the same plan are grouped,
//! and a host that failed as a whole is named once.

use std::fmt::Write;

use super::diffs::diff_lines;
use super::hosts::{compact, group_by_text, heading};
use super::{Halt, HostReport, Report, Status, StepResult};
use crate::step::StepName;

/// The end-of-run table, with changes and failure reasons listed under it.
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

    let changed = changes_by_step(report);
    if !changed.is_empty() {
        let _ = writeln!(out, "\nChanged:");
        for (step, message, hosts) in &changed {
            let _ = writeln!(
                out,
                "  {:<col$}  {}: {message}",
                step.as_str(),
                compact(hosts)
            );
        }
    }
    let failed = failures(report);
    if !failed.is_empty() {
        let _ = write!(out, "\nFailed:\n{}", failed.join(""));
    }

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
        Some(Halt::Mesh(why)) => {
            let _ = writeln!(
                out,
                "STOPPED: {why}; run apply --resume once the sessions are Established"
            );
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

/// Each step's changes: (step, message, hosts), in step order, hosts with
/// the same change together.
fn changes_by_step(report: &Report) -> Vec<(StepName, &str, Vec<&str>)> {
    let mut groups: Vec<(StepName, &str, Vec<&str>)> = Vec::new();
    for step in StepName::ALL {
        for h in &report.hosts {
            for s in h.steps.iter().filter(|s| s.step == step) {
                if s.status != Status::Changed || s.message.is_empty() {
                    continue;
                }
                match groups
                    .iter_mut()
                    .find(|(st, m, _)| *st == step && *m == s.message)
                {
                    Some((_, _, hosts)) => hosts.push(&h.host),
                    None => groups.push((step, &s.message, vec![&h.host])),
                }
            }
        }
    }
    groups
}

/// One line per failure; a host whose every failing step says the same
/// (unreachable, say) is one line, not one per step.
fn failures(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for h in &report.hosts {
        let failing: Vec<&StepResult> = h
            .steps
            .iter()
            .filter(|s| s.status.is_failure() && !s.message.is_empty())
            .collect();
        if let Some(first) = said_once(&failing) {
            lines.push(format!(
                "  {} ({}): {}: {}\n",
                h.host,
                steps_named(&failing),
                first.status.as_str(),
                first.message
            ));
        } else {
            for s in failing {
                lines.push(format!(
                    "  {} {}: {}: {}\n",
                    h.host,
                    s.step,
                    s.status.as_str(),
                    s.message
                ));
            }
        }
    }
    lines
}

/// The one failure that several steps share (an unreachable host's), if
/// they all say the same.
fn said_once<'a>(failing: &[&'a StepResult]) -> Option<&'a StepResult> {
    let (first, rest) = failing.split_first()?;
    (!rest.is_empty()
        && rest
            .iter()
            .all(|s| s.status == first.status && s.message == first.message))
    .then_some(*first)
}

fn steps_named(steps: &[&StepResult]) -> String {
    if steps.len() == StepName::ALL.len() {
        "every step".to_string()
    } else {
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        names.join(", ")
    }
}

/// A host's plan as it prints, one line per step.
fn plan_lines(host: &HostReport) -> String {
    let failing: Vec<&StepResult> = host
        .steps
        .iter()
        .filter(|s| s.status.is_failure())
        .collect();
    if failing.len() == host.steps.len()
        && let Some(first) = said_once(&failing)
    {
        return format!(
            "  {}: {}\n",
            first.status.as_str().to_uppercase(),
            first.message
        );
    }
    let mut out = String::new();
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
        let gates = if step.status == Status::Changed {
            gate_lines(step)
        } else {
            Vec::new()
        };
        for line in gates
            .into_iter()
            .chain(step.diff.iter().flat_map(diff_lines))
        {
            let _ = writeln!(out, "{:14}{line}", "");
        }
    }
    out
}

/// What a change would wait for before the next step: the gates in the
/// operator's words, their own checks by name, and any gate that is off
/// with why, so that a plan says what "healthy" will mean.
fn gate_lines(step: &StepResult) -> Vec<String> {
    let (checks, gates): (Vec<_>, Vec<_>) = step.gates.iter().partition(|g| g.check().is_some());
    let mut lines = Vec::new();
    if !gates.is_empty() {
        let means: Vec<&str> = gates.iter().map(|g| g.means.as_str()).collect();
        lines.push(format!("waits for {}", means.join("; ")));
    }
    if !checks.is_empty() {
        let names: Vec<&str> = checks.iter().filter_map(|g| g.check()).collect();
        lines.push(format!(
            "then {} {} (rollout.checks)",
            if names.len() == 1 { "check" } else { "checks" },
            names.join(", ")
        ));
    }
    lines.extend(step.notes.iter().map(|n| format!("note: {n}")));
    lines
}

/// What `plan` prints: what apply would change and restart, hosts with the
/// same plan together, and how long it would take.
pub fn render_plan(report: &Report) -> String {
    let groups = group_by_text(
        report
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), plan_lines(h))),
    );
    let mut out = String::new();
    for (lines, hosts) in &groups {
        let _ = write!(out, "{}:\n{lines}", heading(hosts));
    }
    let changes: usize = report
        .hosts
        .iter()
        .flat_map(|h| &h.steps)
        .filter(|s| s.status == Status::Changed)
        .count();
    let changing = report.hosts.iter().filter(|h| h.changed()).count();
    let unprobed = report.hosts.iter().filter(|h| h.failed()).count();
    let _ = write!(
        out,
        "\nplan: {changes} step(s) would change on {changing} of {} host(s)",
        report.hosts.len()
    );
    if unprobed > 0 {
        let _ = write!(out, "; {unprobed} host(s) could not be planned");
    }
    let _ = writeln!(out, "; nothing was written");
    if let Some(Halt::Preflight(why)) = &report.halt {
        let _ = writeln!(out, "apply would stop before changing anything: {why}");
    }
    if let Some(e) = &report.estimate
        && e.batches > 0
    {
        let _ = writeln!(
            out,
            "apply would roll in {} batch(es) of up to {} host(s) and take about {} \
             (restarts and health gates, then min_healthy, batch after batch):",
            e.batches,
            e.largest,
            about(e.total),
        );
        for (n, b) in e.per_batch.iter().enumerate().take(BATCHES_SHOWN) {
            let hosts: Vec<&str> = b.hosts.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "  batch {}{} {}: restarts {}; about {}",
                n + 1,
                if b.canary { " (canary)" } else { "" },
                compact(&hosts),
                if b.restarts.is_empty() {
                    "nothing".to_string()
                } else {
                    b.restarts.join(", ")
                },
                about(b.took),
            );
        }
        if e.per_batch.len() > BATCHES_SHOWN {
            let _ = writeln!(
                out,
                "  … and {} more batch(es)",
                e.per_batch.len() - BATCHES_SHOWN
            );
        }
    }
    out
}

/// A plan of a few hundred hosts still fits a screen.
const BATCHES_SHOWN: usize = 12;

fn about(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, cells: &[(Status, &str)]) -> HostReport {
        HostReport {
            host: name.into(),
            steps: cells
                .iter()
                .zip(StepName::ALL)
                .map(|(&(status, message), step)| StepResult {
                    step,
                    status,
                    message: message.into(),
                    restarted: false,
                    restarts: 0,
                    diff: Vec::new(),
                    duration_ms: 0,
                    gates: Vec::new(),
                    notes: Vec::new(),
                })
                .collect(),
        }
    }

    fn report(dry_run: bool, hosts: Vec<HostReport>) -> Report {
        Report {
            dry_run,
            hosts,
            halt: None,
            estimate: None,
        }
    }

    use Status::{Changed, Ok, Skipped, Unreachable};
    const OK: (Status, &str) = (Ok, "");
    const GONE: (Status, &str) = (Unreachable, "connect 10.0.0.2:22: timed out");
    const DOCKER: (Status, &str) = (Changed, "set cluster-store; restart docker");

    #[test]
    fn the_recap_says_each_change_once_and_an_unreachable_host_once() {
        let hosts = vec![
            host("agent-1", &[OK, DOCKER, OK, OK, OK]),
            host("agent-2", &[OK, DOCKER, OK, OK, OK]),
            host("agent-3", &[GONE; 5]),
            host(
                "pub-1",
                &[
                    OK,
                    DOCKER,
                    (Changed, "restart dcos-mesos-slave-public"),
                    OK,
                    OK,
                ],
            ),
        ];
        let text = render_table(&report(false, hosts));
        let recap = &text[text.find("\nChanged:").expect("a Changed section")..];
        assert_eq!(
            recap,
            "\nChanged:\n\
             \x20 docker       agent-[1-2], pub-1: set cluster-store; restart docker\n\
             \x20 cni          pub-1: restart dcos-mesos-slave-public\n\
             \nFailed:\n\
             \x20 agent-3 (every step): unreachable: connect 10.0.0.2:22: timed out\n\
             \n4 hosts: 3 changed, 1 failed; 0 restarts\n"
        );
    }

    #[test]
    fn a_failure_after_changes_is_named_with_its_step() {
        let hosts = vec![host(
            "agent-1",
            &[
                OK,
                (Status::Reverted, "docker info has no cluster store"),
                (Skipped, "an earlier step failed"),
                (Skipped, "an earlier step failed"),
                (Skipped, "an earlier step failed"),
            ],
        )];
        let text = render_table(&report(false, hosts));
        assert!(
            text.contains(
                "\nFailed:\n  agent-1 docker: reverted: docker info has no cluster store\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn plan_groups_hosts_with_the_same_plan_and_counts_the_hosts_that_change() {
        let hosts = vec![
            host("agent-1", &[OK, DOCKER, OK, OK, OK]),
            host("agent-2", &[OK; 5]),
            host("agent-3", &[OK, DOCKER, OK, OK, OK]),
            host("agent-4", &[GONE; 5]),
        ];
        let text = render_plan(&report(true, hosts));
        assert_eq!(
            text,
            "agent-1, agent-3 (2 hosts):\n\
             \x20 etcd-proxy  ok, nothing to do\n\
             \x20 docker      would set cluster-store; restart docker\n\
             \x20 cni         ok, nothing to do\n\
             \x20 libnetwork  ok, nothing to do\n\
             \x20 node        ok, nothing to do\n\
             agent-2:\n\
             \x20 etcd-proxy  ok, nothing to do\n\
             \x20 docker      ok, nothing to do\n\
             \x20 cni         ok, nothing to do\n\
             \x20 libnetwork  ok, nothing to do\n\
             \x20 node        ok, nothing to do\n\
             agent-4:\n\
             \x20 UNREACHABLE: connect 10.0.0.2:22: timed out\n\
             \nplan: 2 step(s) would change on 2 of 4 host(s); \
             1 host(s) could not be planned; nothing was written\n"
        );
    }

    #[test]
    fn plan_says_what_each_change_waits_for_and_which_gate_is_off() {
        use crate::report::{GateOutcome, GateResult};
        let gate = |gate: &str, means: &str| GateResult {
            gate: gate.into(),
            means: means.into(),
            outcome: GateOutcome::NotReached,
        };
        let node = (Changed, "start calico-node (calico/node:v2.6.12)");
        let mut h = host("agent-1", &[OK, OK, OK, OK, node]);
        h.steps[4].gates = vec![
            gate("container:calico-node", "calico-node to run"),
            gate("felix", "Felix to be ready (:9099)"),
            gate("check:dns", "check dns to pass"),
            gate("check:ping-gw", "check ping-gw to pass"),
        ];
        h.steps[4].notes =
            vec!["the BGP gate is off: CALICO_NETWORKING_BACKEND is none (policy only)".into()];
        // Gates of a step that does not change are not the plan's business.
        h.steps[0].gates = vec![gate("etcd-gateway", "the etcd gateway to serve a read")];
        let text = render_plan(&report(true, vec![h]));
        assert!(
            text.starts_with(
                "agent-1:\n\
                 \x20 etcd-proxy  ok, nothing to do\n\
                 \x20 docker      ok, nothing to do\n\
                 \x20 cni         ok, nothing to do\n\
                 \x20 libnetwork  ok, nothing to do\n\
                 \x20 node        would start calico-node (calico/node:v2.6.12)\n\
                 \x20             waits for calico-node to run; Felix to be ready (:9099)\n\
                 \x20             then checks dns, ping-gw (rollout.checks)\n\
                 \x20             note: the BGP gate is off: CALICO_NETWORKING_BACKEND is none \
                 (policy only)\n\
                 \nplan: 1 step(s)"
            ),
            "{text}"
        );
    }
}
