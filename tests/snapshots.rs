//! The human output of `plan` and `apply`, compared with golden files in
//! tests/snapshots/ after filtering what changes from run to run (timings).
//! `UPDATE_SNAPSHOTS=1 cargo test --test snapshots` rewrites them; review
//! the diff before committing it.

mod common;

use common::*;

/// The report part of stderr: what follows the progress lines.
fn report_of(run: &Run) -> String {
    match run.stderr.split_once("\n\n") {
        Some((_, report)) => report.to_string(),
        None => panic!("no report after the progress lines:\n{}", run.stderr),
    }
}

/// Durations measured during the run (`12.3s`, `450ms`) become `<time>`
/// and clock readings (`2026-12-02T17:18:19.99Z`, in daemons' messages)
/// `<timestamp>`; the plan's estimates are computed, not measured, and stay.
fn filter_timings(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = &filter_timestamps(line);
        if line.contains("about ") {
            out.push_str(line);
        } else {
            out.push_str(&filter_line(line));
        }
        out.push('\n');
    }
    out
}

fn filter_timestamps(line: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let bytes = line.as_bytes();
    let matches_at = |i: usize| {
        bytes.len() >= i + shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if matches_at(i) {
            let mut end = i + shape.len();
            while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
                end += 1;
            }
            if bytes.get(end) == Some(&b'Z') {
                end += 1;
            }
            out.push_str("<timestamp>");
            i = end;
        } else {
            let c = line[i..].chars().next().expect("inside the line");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn filter_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let digits = from
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(from.len());
        let after = &from[digits..];
        let boundary = |unit: &str| {
            after.starts_with(unit)
                && !after[unit.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        };
        let preceded_by_word = before.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !preceded_by_word && boundary("ms") {
            out.push_str("<time>");
            rest = &after[2..];
        } else if !preceded_by_word && boundary("s") {
            out.push_str("<time>");
            rest = &after[1..];
        } else {
            out.push_str(&from[..digits]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = repo().join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_SNAPSHOTS=1 cargo test --test snapshots",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        panic!(
            "{name}: the output differs from {}:\n{diff}\nIf the change is intended, run \
             UPDATE_SNAPSHOTS=1 cargo test --test snapshots and review the diff.",
            path.display()
        );
    }
}

#[test]
fn timings_are_filtered_and_estimates_kept() {
    assert_eq!(
        filter_timings("took 12.5s and 450ms; agent-1 v2.6.12\n  batch 1: about 46s\n"),
        "took <time> and <time>; agent-1 v2.6.12\n  batch 1: about 46s\n"
    );
    assert_eq!(
        filter_timings("time=\"2026-12-02T17:18:19.991924763Z\" level=info…\n"),
        "time=\"<timestamp>\" level=info…\n"
    );
}

#[test]
fn plan_then_apply_then_plan_on_pristine_agents() {
    let c = cluster();
    let inv = c.inventory();
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 2);
    assert_snapshot("plan-pristine", &filter_timings(&report_of(&plan)));
    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0);
    assert_snapshot("apply-pristine", &filter_timings(&report_of(&apply)));
    let again = c.run("plan", &inv, &[]);
    assert_eq!(again.code, 0);
    assert_snapshot("plan-converged", &filter_timings(&report_of(&again)));
}

#[test]
fn an_apply_whose_canary_fails_its_restart() {
    let c = cluster();
    exec("agent-1", "touch /etc/fake-faults/fail-restart-docker");
    let run = c.run("apply", &c.inventory(), &[]);
    assert_eq!(run.code, 5);
    assert_snapshot("apply-canary-fails", &filter_timings(&report_of(&run)));
}

#[test]
fn a_plan_names_the_gates_the_operators_checks_and_a_gate_that_is_off() {
    let c = cluster();
    let mut inv = c.inventory();
    let apply = c.run("apply", &inv, &[]);
    assert_eq!(apply.code, 0);
    // Policy only: calico-node runs without BIRD, so there is no mesh to
    // wait for; the operator's own check still follows the node.
    inv["node"]["env"]["CALICO_NETWORKING_BACKEND"] = serde_json::json!("none");
    inv["rollout"]["checks"] = serde_json::json!([{
        "name": "smoke",
        "after": "node",
        "command": "true",
    }]);
    let plan = c.run("plan", &inv, &[]);
    assert_eq!(plan.code, 2);
    assert_snapshot("plan-policy-only", &filter_timings(&report_of(&plan)));
}
