//! Several remote scripts in one round trip. Each still runs under its own
//! deadline on the agent (coreutils `timeout`), in order, and the first
//! that fails ends the batch; the records say how far it got and why. So a
//! step's installs, reload, restart and first two health checks cost one
//! round trip, and a failure is still told apart by what failed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::gate::{self, Identity};
use super::{KILL_AFTER, Script};
use crate::facts::{self, Record};
use crate::shell::Cmd;
use crate::steps::Gate;

/// How long the batch waits between its two health checks.
const GATE_PAUSE: &str = "0.25";

/// One script of a batch.
#[derive(Debug, Clone)]
pub struct Item {
    pub script: Script,
    /// It reads the batch's stdin; every other item reads nothing.
    pub reads_stdin: bool,
}

/// What one item did, if the batch got to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What a batch reported.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per item, in order; `None` for the items after a failure (or after
    /// the connection went).
    pub outcomes: Vec<Option<Outcome>>,
    /// The two health checks after the items, when they all went through.
    pub readings: Option<[Vec<Result<Identity, String>>; 2]>,
}

/// The batch as one script. `gates` are checked twice after the items if
/// they all went through, each check bounded by `gate_deadline`.
pub fn script(items: &[Item], gates: &[Gate], gate_deadline: Duration) -> Script {
    assert!(
        items.iter().filter(|i| i.reads_stdin).count() <= 1,
        "one stdin per round trip"
    );
    let mut text = format!(
        "{}e=$(mktemp)\ntrap 'rm -f -- \"$e\"' EXIT\n",
        super::probe::RECORD_HELPERS
    );
    let mut deadline = Duration::from_secs(1);
    for (k, item) in items.iter().enumerate() {
        let bounded = Cmd::new("timeout")
            .arg("-k")
            .arg(super::secs(KILL_AFTER))
            .arg(super::secs(item.script.deadline))
            .arg("sh")
            .arg("-c")
            .arg(&item.script.text)
            .to_string();
        let stdin = if item.reads_stdin { "" } else { " </dev/null" };
        text.push_str(&format!(
            "o=$({bounded}{stdin} 2>\"$e\"); r=$?\n\
             err=; while IFS= read -r l; do err=\"$err$l\n\"; done < \"$e\"\n\
             out act{k} \"$r\" \"$o\"; out err{k} 0 \"$err\"\n\
             [ \"$r\" = 0 ] || exit 0\n",
        ));
        deadline += item.script.deadline + KILL_AFTER;
    }
    if !gates.is_empty() {
        text.push_str(&gate::gates_body(gates, "a"));
        text.push_str(&format!("sleep {GATE_PAUSE}\n"));
        text.push_str(&gate::gates_body(gates, "b"));
        deadline += (gate_deadline + gate::extra_time(gates)) * 2;
    }
    let what = items
        .iter()
        .map(|i| i.script.what.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Script::new(what, deadline, text)
}

/// Reads what a batch printed.
pub fn report(items: &[Item], gates: &[Gate], stdout: &[u8]) -> Report {
    let records: BTreeMap<String, Record> = facts::records(stdout).unwrap_or_default();
    let outcomes: Vec<Option<Outcome>> = (0..items.len())
        .map(|k| {
            let act = records.get(&format!("act{k}"))?;
            Some(Outcome {
                code: act.code,
                stdout: act.out.clone(),
                stderr: records
                    .get(&format!("err{k}"))
                    .map(|r| r.out.clone())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let all_ran = outcomes
        .iter()
        .all(|o| o.as_ref().is_some_and(|o| o.code == 0));
    let readings = (all_ran && !gates.is_empty() && records.contains_key("agate0")).then(|| {
        [
            gate::readings_in(gates, &records, "a"),
            gate::readings_in(gates, &records, "b"),
        ]
    });
    Report { outcomes, readings }
}

/// The last lines of what an item said on stderr (or stdout), as the
/// report shows a failed command.
pub fn tail(outcome: &Outcome) -> String {
    let pick = if outcome.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &outcome.stderr
    } else {
        &outcome.stdout
    };
    let text = String::from_utf8_lossy(pick);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        format!("exit {}", outcome.code)
    } else {
        format!("{tail} (exit {})", outcome.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::testing::{sh_with_path, stub};

    fn item(what: &str, text: &str, reads_stdin: bool) -> Item {
        Item {
            script: Script::new(what, Duration::from_secs(5), text),
            reads_stdin,
        }
    }

    #[test]
    fn items_run_in_order_and_the_first_failure_ends_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let items = [
            item("first", &format!("cat > {}; echo one", log.display()), true),
            item("second", "echo 'it broke' >&2; exit 3", false),
            item("third", &format!("echo three >> {}", log.display()), false),
        ];
        let s = script(&items, &[], Duration::from_secs(5));
        assert_eq!(s.what, "first, second, third");
        let out = sh_with_path(&s.text, b"the bytes", None);
        assert!(out.status.success());
        let r = report(&items, &[], &out.stdout);
        let first = r.outcomes[0].as_ref().unwrap();
        assert_eq!((first.code, first.stdout.as_slice()), (0, &b"one"[..]));
        let second = r.outcomes[1].as_ref().unwrap();
        assert_eq!(second.code, 3);
        assert_eq!(tail(second), "it broke (exit 3)");
        assert_eq!(r.outcomes[2], None, "never ran");
        assert_eq!(std::fs::read(&log).unwrap(), b"the bytes");
        assert!(r.readings.is_none());
    }

    #[test]
    fn each_item_keeps_its_own_deadline() {
        let items = [
            Item {
                script: Script::new("slow", Duration::from_secs(1), "sleep 30"),
                reads_stdin: false,
            },
            item("after", "echo no", false),
        ];
        let started = std::time::Instant::now();
        let out = sh_with_path(&script(&items, &[], Duration::from_secs(1)).text, b"", None);
        assert!(started.elapsed() < Duration::from_secs(10));
        let r = report(&items, &[], &out.stdout);
        assert!(crate::remote::TIMED_OUT_EXITS.contains(&r.outcomes[0].as_ref().unwrap().code));
        assert_eq!(r.outcomes[1], None);
    }

    #[test]
    fn a_batch_that_went_through_is_checked_twice() {
        let bin = tempfile::tempdir().unwrap();
        stub(
            bin.path(),
            "docker",
            r#"echo '{"Id": "c1", "RestartCount": 0, "State": {"Running": true, "Restarting": false, "StartedAt": "t"}}'"#,
        );
        let node = [Gate::Container {
            name: "calico-node".into(),
        }];
        let items = [item("start", "true", false)];
        let s = script(&items, &node, Duration::from_secs(5));
        let out = sh_with_path(&s.text, b"", Some(bin.path()));
        let r = report(&items, &node, &out.stdout);
        let [a, b] = r.readings.expect("both checks ran");
        assert_eq!(a, b);
        assert!(a[0].is_ok());
    }
}
