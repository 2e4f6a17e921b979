//! The `--junit FILE` form, for CI systems that show test results: one
//! testsuite per host, one testcase per step. A failed, unreachable,
//! reverted or unknown step is a failure with its reason; a skipped one is
//! skipped. For `plan`, a step that would change is a failure "would
//! change: …", so that drift shows red. Each gate a step waited for is
//! a property of its testcase and a line of its system-out, with its
//! outcome: the failure says why the step failed, these which gates held.

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::{GateOutcome, GateResult, HostReport, Report, RunInfo, Status, StepResult};

/// Text as XML 1.0 may carry it: a remote stderr tail can hold control
/// characters (a terminal escape, a bell) that no escaping makes legal.
fn xml_chars(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The failure a step stands for, as (type, message), if it is one.
fn failure(step: &StepResult, dry_run: bool) -> Option<(&'static str, String)> {
    match step.status {
        Status::Changed if dry_run => {
            Some(("would-change", format!("would change: {}", step.message)))
        }
        s if s.is_failure() => Some((s.as_str(), format!("{}: {}", s.as_str(), step.message))),
        _ => None,
    }
}

/// A gate's outcome as one value: `passed`, `failed: <reason>`, `not reached`.
fn outcome(gate: &GateResult) -> String {
    match &gate.outcome {
        GateOutcome::Passed { note: Some(note) } => format!("passed ({note})"),
        GateOutcome::Failed { reason } => format!("failed: {reason}"),
        other => other.as_str().to_string(),
    }
}

/// The step's system-out: a line per gate, then why a gate is off.
fn gate_log(step: &StepResult) -> String {
    let mut lines: Vec<String> = step
        .gates
        .iter()
        .map(|g| format!("{}, waiting for {}: {}", g.gate, g.means, outcome(g)))
        .collect();
    lines.extend(step.notes.iter().map(|n| format!("note: {n}")));
    xml_chars(&lines.join("\n"))
}

fn testcase(
    w: &mut Writer<Vec<u8>>,
    host: &str,
    step: &StepResult,
    dry_run: bool,
) -> io::Result<()> {
    let name = step.step.to_string();
    let time = seconds(step.duration_ms);
    let case = w.create_element("testcase").with_attributes([
        ("name", name.as_str()),
        ("classname", host),
        ("time", time.as_str()),
    ]);
    let failed = failure(step, dry_run);
    let skipped = step.status == Status::Skipped;
    let log = gate_log(step);
    if failed.is_none() && !skipped && log.is_empty() {
        case.write_empty()?;
        return Ok(());
    }
    case.write_inner_content(|w| {
        if !step.gates.is_empty() {
            w.create_element("properties").write_inner_content(|w| {
                for g in &step.gates {
                    let name = xml_chars(&format!("gate.{}", g.gate));
                    let value = xml_chars(&outcome(g));
                    w.create_element("property")
                        .with_attributes([("name", name.as_str()), ("value", value.as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
        }
        if let Some((kind, message)) = &failed {
            let message = xml_chars(message);
            w.create_element("failure")
                .with_attributes([("message", message.as_str()), ("type", kind)])
                .write_text_content(BytesText::new(&message))?;
        } else if skipped {
            let message = xml_chars(&step.message);
            w.create_element("skipped")
                .with_attribute(("message", message.as_str()))
                .write_empty()?;
        }
        if !log.is_empty() {
            w.create_element("system-out")
                .write_text_content(BytesText::new(&log))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn testsuite(
    w: &mut Writer<Vec<u8>>,
    host: &HostReport,
    dry_run: bool,
    timestamp: &str,
) -> io::Result<()> {
    let failures = host
        .steps
        .iter()
        .filter(|s| failure(s, dry_run).is_some())
        .count()
        .to_string();
    let skipped = host
        .steps
        .iter()
        .filter(|s| s.status == Status::Skipped)
        .count()
        .to_string();
    let tests = host.steps.len().to_string();
    let time = seconds(host.steps.iter().map(|s| s.duration_ms).sum());
    let name = xml_chars(&host.host);
    w.create_element("testsuite")
        .with_attributes([
            ("name", name.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
            ("timestamp", timestamp),
        ])
        .write_inner_content(|w| {
            for step in &host.steps {
                testcase(w, &name, step, dry_run)?;
            }
            Ok(())
        })?;
    Ok(())
}

/// The report as a JUnit XML document.
pub fn to_junit(report: &Report, info: &RunInfo) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let timestamp = humantime::format_rfc3339_seconds(info.started).to_string();
    let name = format!("calico-rollout {} {}", info.mode, info.run_id);
    let write = |w: &mut Writer<Vec<u8>>| -> io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("testsuites")
            .with_attribute(("name", xml_chars(&name).as_str()))
            .write_inner_content(|w| {
                for host in &report.hosts {
                    testsuite(w, host, report.dry_run, &timestamp)?;
                }
                Ok(())
            })?;
        Ok(())
    };
    write(&mut w).expect("writing to memory does not fail");
    let mut text = String::from_utf8(w.into_inner()).expect("the writer was given UTF-8");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;
    use crate::report::host_with;
    use crate::report::json::tests::info;

    /// One element as read back: its name, attributes and text.
    #[derive(Debug, Default)]
    struct Element {
        name: String,
        attrs: Vec<(String, String)>,
        text: String,
    }

    impl Element {
        fn attr(&self, key: &str) -> &str {
            self.attrs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("<{}> has no {key}", self.name))
        }
    }

    /// Every element of `xml` in document order; panics if it is not
    /// well-formed.
    fn parse(xml: &str) -> Vec<Element> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut out: Vec<Element> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        loop {
            let event = reader
                .read_event()
                .unwrap_or_else(|e| panic!("{e}:\n{xml}"));
            let start = |e: &quick_xml::events::BytesStart| Element {
                name: e.name().as_ref().to_string(),
                attrs: e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let value = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap();
                        (a.key.as_ref().to_string(), value.into_owned())
                    })
                    .collect(),
                text: String::new(),
            };
            match event {
                Event::Start(e) => {
                    out.push(start(&e));
                    open.push(out.len() - 1);
                }
                Event::Empty(e) => out.push(start(&e)),
                Event::End(_) => {
                    open.pop();
                }
                Event::Text(t) => {
                    if let Some(&i) = open.last() {
                        out[i].text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let name = r.to_string();
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("unknown entity &{name};"));
                    if let Some(&i) = open.last() {
                        out[i].text.push_str(resolved);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(open.is_empty(), "unclosed elements in:\n{xml}");
        out
    }

    fn named<'a>(elements: &'a [Element], name: &str) -> Vec<&'a Element> {
        elements.iter().filter(|e| e.name == name).collect()
    }

    #[test]
    fn one_suite_per_host_one_case_per_step() {
        use Status::*;
        let mut bad = host_with(&[Changed, Reverted, Skipped, Skipped, Skipped]);
        bad.host = "agent-2".into();
        bad.steps[0].duration_ms = 1500;
        bad.steps[1].message = "docker restarted but is not healthy".into();
        let report = Report {
            dry_run: false,
            hosts: vec![host_with(&[Ok, Changed, Ok, Ok, Changed]), bad],
            halt: None,
            estimate: None,
        };
        let xml = to_junit(&report, &info());
        let elements = parse(&xml);
        let suites = named(&elements, "testsuite");
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[1].attr("name"), "agent-2");
        assert_eq!(suites[1].attr("tests"), "5");
        assert_eq!(suites[1].attr("failures"), "1");
        assert_eq!(suites[1].attr("skipped"), "3");
        assert_eq!(suites[0].attr("failures"), "0");
        let cases = named(&elements, "testcase");
        assert_eq!(cases.len(), 10);
        assert_eq!(cases[5].attr("name"), "etcd-proxy");
        assert_eq!(cases[5].attr("classname"), "agent-2");
        assert_eq!(cases[5].attr("time"), "1.500");
        let failures = named(&elements, "failure");
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].attr("message"),
            "reverted: docker restarted but is not healthy"
        );
        assert_eq!(failures[0].attr("type"), "reverted");
        assert_eq!(named(&elements, "skipped").len(), 3);
    }

    #[test]
    fn hostile_reasons_survive_the_round_trip() {
        let mut host = host_with(&[Status::Failed]);
        host.host = "agent-<1>&\"x\"".into();
        host.steps[0].message =
            "</failure><x a='1'>&amp; \"quoted\"\n\u{1b}[31mred\u{7}\u{0} ]]> é".into();
        let report = Report {
            dry_run: false,
            hosts: vec![host],
            halt: None,
            estimate: None,
        };
        let xml = to_junit(&report, &info());
        let elements = parse(&xml);
        let want =
            "failed: </failure><x a='1'>&amp; \"quoted\"\n\u{FFFD}[31mred\u{FFFD}\u{FFFD} ]]> é";
        let failure = named(&elements, "failure")[0];
        assert_eq!(failure.text, want);
        // The newline travels as a character reference, so attribute
        // normalisation keeps it.
        assert_eq!(failure.attr("message"), want);
        assert_eq!(
            named(&elements, "testsuite")[0].attr("name"),
            "agent-<1>&\"x\""
        );
        assert_eq!(
            named(&elements, "testcase")[0].attr("classname"),
            "agent-<1>&\"x\""
        );
    }

    #[test]
    fn each_gate_is_a_property_and_a_line_of_its_steps_output() {
        let report = Report {
            dry_run: false,
            hosts: vec![crate::report::json::tests::gated_host()],
            halt: None,
            estimate: None,
        };
        let elements = parse(&to_junit(&report, &info()));
        let properties: Vec<(&str, &str)> = named(&elements, "property")
            .iter()
            .map(|p| (p.attr("name"), p.attr("value")))
            .collect();
        assert_eq!(
            properties,
            [
                ("gate.container:calico-node", "passed"),
                (
                    "gate.bgp",
                    "failed: waiting for 1 BGP peer: 10.0.0.13 Active"
                ),
                ("gate.check:dns", "not reached"),
            ]
        );
        let out = named(&elements, "system-out");
        assert_eq!(out.len(), 1, "only the node step has gates");
        assert_eq!(
            out[0].text,
            "container:calico-node, waiting for calico-node to run: passed\n\
             bgp, waiting for 2 BGP sessions to be Established again: \
             failed: waiting for 1 BGP peer: 10.0.0.13 Active\n\
             check:dns, waiting for check dns to pass: not reached\n\
             note: Felix's health gate is off: FELIX_HEALTHENABLED is not true in \
             calico-node's environment; the node gate checks that calico-node runs"
        );
        // The properties, failure and output belong to the node's testcase,
        // in the order JUnit readers expect.
        let order: Vec<&str> = elements
            .iter()
            .skip_while(|e| e.name != "testcase" || e.attr("name") != "node")
            .skip(1)
            .map(|e| e.name.as_str())
            .filter(|n| *n != "property")
            .collect();
        assert_eq!(order, ["properties", "failure", "system-out"]);
        assert!(
            named(&elements, "failure")[0]
                .attr("message")
                .ends_with("10.0.0.13 Active")
        );
    }

    #[test]
    fn a_plan_marks_pending_changes_as_failures() {
        let report = Report {
            dry_run: true,
            hosts: vec![host_with(&[Status::Changed, Status::Ok])],
            halt: None,
            estimate: None,
        };
        let mut plan = info();
        plan.mode = "plan";
        let elements = parse(&to_junit(&report, &plan));
        let failures = named(&elements, "failure");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].attr("type"), "would-change");
        assert!(failures[0].attr("message").starts_with("would change: "));
    }
}
