//! What a run leaves for machines and logs: the `--json` object, the
//! `--junit` file a CI system reads, and the timestamped progress lines
//! of a run whose stderr is not a terminal; `-q` and `-v`.

mod common;

use std::time::SystemTime;

use common::*;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Value, json};

/// One JUnit element as read back: its name and attributes.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Element {
    fn attr(&self, key: &str) -> &str {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("<{}> has no {key}: {:?}", self.name, self.attrs))
    }
}

/// Every element of the file, in order, with the testsuite it is in;
/// panics unless the file is well-formed XML.
fn read_junit(path: &std::path::Path) -> Vec<(Option<String>, Element)> {
    let xml = std::fs::read_to_string(path).expect("the JUnit file exists");
    let mut reader = Reader::from_str(&xml);
    reader.config_mut().check_end_names = true;
    let mut out = Vec::new();
    let mut suite: Option<String> = None;
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{xml}"));
        let element = |e: &quick_xml::events::BytesStart| Element {
            name: e.name().as_ref().to_string(),
            attrs: e
                .attributes()
                .map(|a| {
                    let a = a.expect("a well-formed attribute");
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("a well-formed value");
                    (a.key.as_ref().to_string(), value.into_owned())
                })
                .collect(),
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                let el = element(&e);
                if el.name == "testsuite" {
                    suite = Some(el.attr("name").to_string());
                }
                out.push((suite.clone(), el));
            }
            Event::Empty(e) => out.push((suite.clone(), element(&e))),
            Event::End(e) => {
                depth -= 1;
                if e.name().as_ref() == "testsuite" {
                    suite = None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unclosed elements:\n{xml}");
    out
}

fn named<'a>(elements: &'a [(Option<String>, Element)], name: &str) -> Vec<&'a Element> {
    elements
        .iter()
        .filter(|(_, e)| e.name == name)
        .map(|(_, e)| e)
        .collect()
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().expect("a time string"))
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
}

/// Whether a line starts with an RFC 3339 UTC time to the second.
fn stamped(line: &str) -> bool {
    line.get(..20)
        .is_some_and(|t| t.ends_with('Z') && humantime::parse_rfc3339(t).is_ok())
        && line.as_bytes().get(20) == Some(&b' ')
}

#[test]
fn an_apply_leaves_a_junit_file_and_one_json_object() {
    let c = cluster();
    let junit = c.dir.path().join("out/rollout.xml");
    std::fs::create_dir_all(junit.parent().unwrap()).unwrap();
    let inv = c.inventory();
    let run = c.run("apply", &inv, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(run.code, 0);

    // JUnit: a testsuite per host, a testcase per step, nothing failed.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&junit).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "a CI job running as another user can read it");
    let elements = read_junit(&junit);
    let suites = named(&elements, "testsuite");
    let names: Vec<&str> = suites.iter().map(|s| s.attr("name")).collect();
    assert_eq!(names, ["agent-1", "agent-2", "agent-3", "pub-1"]);
    for s in &suites {
        assert_eq!(s.attr("tests"), "5", "{}", s.attr("name"));
        assert_eq!(s.attr("failures"), "0", "{}", s.attr("name"));
    }
    let cases: Vec<&(Option<String>, Element)> = elements
        .iter()
        .filter(|(_, e)| e.name == "testcase")
        .collect();
    assert_eq!(cases.len(), 4 * 5);
    for (suite, case) in &cases {
        assert_eq!(Some(case.attr("classname")), suite.as_deref());
        let secs: f64 = case.attr("time").parse().expect("time is seconds");
        assert!(secs >= 0.0);
    }
    assert!(named(&elements, "failure").is_empty());

    // --json: one object about this run.
    let v = run.json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["mode"], "apply");
    // The run id is the one the agents keep this run's history under.
    let run_id = v["run_id"].as_str().unwrap();
    assert!(!run_id.is_empty());
    exec(
        "agent-1",
        &format!("test -d /var/lib/calico-rollout/runs/{run_id}"),
    );
    let sha = v["inventory"]["sha256"].as_str().unwrap();
    assert!(
        sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "{sha}"
    );
    assert_eq!(
        v["inventory"]["path"],
        c.dir.path().join("cluster.yaml").display().to_string()
    );
    assert!(time(&v["started"]) <= time(&v["finished"]));
    assert!(v["halted"].is_null());
    let hosts = run.hosts();
    assert_eq!(hosts.len(), 4);
    for h in &hosts {
        for s in h["steps"].as_array().unwrap() {
            for key in ["step", "status", "message", "restarted", "duration_ms"] {
                assert!(
                    s.get(key).is_some(),
                    "{} {} has no {key}",
                    h["host"],
                    s["step"]
                );
            }
        }
    }
    // Each changed step lists its gates under it, each passed; the JUnit
    // file has them as the testcases' properties.
    for h in &hosts {
        let gates = |step: usize| -> Vec<(String, String)> {
            h["steps"][step]["gates"]
                .as_array()
                .unwrap_or_else(|| panic!("{} step {step} has no gates", h["host"]))
                .iter()
                .map(|g| {
                    assert!(g["means"].as_str().is_some_and(|m| !m.is_empty()), "{g}");
                    (g["gate"].to_string(), g["outcome"].to_string())
                })
                .collect()
        };
        let passed = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (format!("\"{n}\""), "\"passed\"".to_string()))
                .collect()
        };
        assert_eq!(gates(1), passed(&["docker"]), "{}", h["host"]);
        assert_eq!(
            gates(4),
            passed(&["container:calico-node", "felix", "bgp"]),
            "{}",
            h["host"]
        );
    }
    let properties: Vec<(&str, &str)> = elements
        .iter()
        .filter(|(s, e)| s.as_deref() == Some("agent-1") && e.name == "property")
        .map(|(_, e)| (e.attr("name"), e.attr("value")))
        .collect();
    assert_eq!(
        properties,
        [
            ("gate.etcd-gateway", "passed"),
            ("gate.docker", "passed"),
            ("gate.mesos", "passed"),
            ("gate.container:calico-libnetwork", "passed"),
            ("gate.plugin", "passed"),
            ("gate.container:calico-node", "passed"),
            ("gate.felix", "passed"),
            ("gate.bgp", "passed"),
        ]
    );

    // The docker restart and its gate took real time on every host.
    for h in &hosts {
        let docker = &h["steps"][1];
        assert_eq!(docker["status"], "changed");
        assert!(docker["duration_ms"].as_u64().unwrap() > 0, "{docker}");
    }

    // Off a terminal, progress is one timestamped line per event, naming
    // what the host waits for.
    let waits: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("agent-1 docker: restarting docker, waiting for the cluster store"))
        .collect();
    assert_eq!(waits.len(), 1, "{}", run.stderr);
    assert!(stamped(waits[0]), "{}", waits[0]);
    assert!(
        run.stderr
            .lines()
            .any(|l| stamped(l) && l.ends_with("agent-1: done")),
        "{}",
        run.stderr
    );

    // -q: the converged cluster's plan prints its recap and nothing else.
    let quiet = c.run("plan", &inv, &["-q"]);
    assert_eq!(quiet.code, 0);
    assert!(
        !quiet.stderr.lines().any(stamped),
        "no progress with -q:\n{}",
        quiet.stderr
    );
    assert!(quiet.stderr.contains("plan: "), "{}", quiet.stderr);
    assert_eq!(quiet.json()["mode"], "plan");
}

#[test]
fn a_failed_canary_halts_and_the_junit_file_says_why() {
    let c = cluster();
    let junit = c.dir.path().join("halted.xml");
    let mut inv = c.inventory();
    inv["rollout"]["canary"] = json!(1);
    inv["rollout"]["health_timeout"] = json!("8s");
    // The canary's next docker start hangs: its restart runs out of time,
    // it is reverted, and the budget stops the rollout.
    exec(
        "agent-1",
        "mkdir -p /etc/fake-faults && printf 1 > /etc/fake-faults/hang-restart-docker",
    );
    let run = c.run("apply", &inv, &["-v", "--junit", junit.to_str().unwrap()]);
    assert_eq!(run.code, 5);

    let v = run.json();
    assert_eq!(v["halted"]["kind"], "budget", "{}", v["halted"]);
    let reason = v["halted"]["reason"].as_str().unwrap();
    assert!(reason.contains("agent-1"), "{reason}");

    // The restart never finished: its gate was not reached.
    let docker = &run.hosts()[0]["steps"][1];
    assert_eq!(
        docker["gates"],
        json!([{"gate": "docker", "means": "the cluster store", "outcome": "not_reached"}]),
        "{docker}"
    );

    let elements = read_junit(&junit);
    assert!(
        elements.iter().any(|(s, e)| s.as_deref() == Some("agent-1")
            && e.name == "property"
            && e.attr("name") == "gate.docker"
            && e.attr("value") == "not reached"),
        "the canary's docker gate is not reached"
    );
    assert_eq!(named(&elements, "testsuite").len(), 4);
    assert_eq!(named(&elements, "testcase").len(), 20);
    let failures: Vec<&(Option<String>, Element)> = elements
        .iter()
        .filter(|(_, e)| e.name == "failure")
        .collect();
    assert!(!failures.is_empty());
    assert!(
        failures
            .iter()
            .all(|(s, _)| s.as_deref() == Some("agent-1")),
        "only the canary failed"
    );
    let docker = failures
        .iter()
        .map(|(_, e)| e.attr("message"))
        .find(|m| m.contains("systemctl restart docker did not finish within 8s"))
        .unwrap_or_else(|| panic!("no failure names the hung restart: {failures:?}"));
    assert!(docker.starts_with("reverted: "), "{docker}");
    // The hosts the rollout never reached are skipped, not failed.
    let agent_2 = elements
        .iter()
        .filter(|(s, e)| s.as_deref() == Some("agent-2") && e.name == "skipped")
        .count();
    assert_eq!(agent_2, 5);

    // -v: each remote command as it starts, with its host and step.
    assert!(
        run.stderr.lines().any(|l| stamped(l)
            && l.contains("agent-1 docker $ ")
            && l.contains("systemctl restart docker")),
        "{}",
        run.stderr
    );
}
