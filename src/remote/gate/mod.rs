//! Health gates on the agent, and how their answers are read. A gate
//! passes when its service answers and is the same process it was the
//! last time it was looked at: a systemd unit's MainPID, NRestarts and
//! ActiveEnterTimestampMonotonic, a container's Id, RestartCount and
//! StartedAt. A unit with Restart=always that dies and comes back, or a
//! container docker keeps restarting, answers now and then but never
//! keeps its identity.
//!
//! All of a host's gates are checked in one command, so a poll costs one
//! round trip whatever the number of gates.

mod calico;
mod operator;

use std::collections::BTreeMap;
use std::time::Duration;

use super::Script;
use super::service::journal_tail;
use crate::desired::{DOCKER_UNIT, ETCD_PROXY_UNIT, TLS_CA, TLS_CERT, TLS_KEY};
use crate::shell::{Cmd, quote};
use crate::steps::Gate;

/// The unit properties that say which process the unit is.
const UNIT_PROPERTIES: &str =
    "ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestampMonotonic";
const UNIT_IDENTITY: [&str; 3] = ["MainPID", "NRestarts", "ActiveEnterTimestampMonotonic"];
const CONTAINER_IDENTITY: [&str; 3] = ["Id", "RestartCount", "StartedAt"];

/// Who answered a gate: when any of these change while the service is
/// watched, it restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub service: String,
    pub fields: Vec<(&'static str, String)>,
    /// What the operator should know about how the gate was checked (a
    /// part of it that could not be), when anything.
    pub note: Option<String>,
}

impl Identity {
    /// A check that proves an answer, not a process: nothing to compare.
    fn answered(service: &str) -> Self {
        Identity {
            service: service.to_string(),
            fields: Vec::new(),
            note: None,
        }
    }
}

impl Identity {
    /// `None` when `later` is the same process; otherwise what changed.
    pub fn changed(&self, later: &Identity) -> Option<String> {
        let diffs: Vec<String> = self
            .fields
            .iter()
            .zip(&later.fields)
            .filter(|(a, b)| a.1 != b.1)
            .map(|((k, a), (_, b))| format!("{k} {a} -> {b}"))
            .collect();
        (!diffs.is_empty()).then(|| format!("{} restarted ({})", self.service, diffs.join(", ")))
    }
}

fn unit_check(unit: &str) -> String {
    format!(
        "st=$({show}); printf '%s\\n' \"$st\"\n\
         if ! printf '%s\\n' \"$st\" | grep -qx 'ActiveState=active'; then {journal}; exit 1; fi\n",
        show = Cmd::new("systemctl")
            .arg("show")
            .arg("-p")
            .arg(UNIT_PROPERTIES)
            .arg("--")
            .arg(format!("{unit}.service")),
        journal = journal_tail(unit),
    )
}

fn curl(url: &str, unit: &str, options: &[(&str, &str)]) -> String {
    curl_word(&quote(url), unit, options)
}

/// `curl` of a URL given as a shell word (quoted, or holding a variable).
fn curl_word(url: &str, unit: &str, options: &[(&str, &str)]) -> String {
    let mut cmd = Cmd::new("curl")
        .arg("-fsS")
        // --globoff: an IPv6 address in brackets is not a glob range.
        .arg("--globoff")
        .arg("--max-time")
        .arg("3")
        .arg("-o")
        .arg("/dev/null");
    for (flag, value) in options {
        cmd = cmd.arg(flag).arg(value);
    }
    format!(
        "if ! {cmd} -- {url}; then {}; exit 1; fi\n",
        journal_tail(unit),
    )
}

/// The Mesos gate's check, for a script that learns the address on the
/// agent itself: `var` names a shell variable holding the host part of
/// the URL (an IPv6 address already in brackets).
pub(crate) fn mesos_check_at(unit: &str, var: &str, port: u16) -> String {
    let base = format!("\"http://${{{var}}}:{port}");
    format!(
        "{}{}{}",
        unit_check(unit),
        curl_word(&format!("{base}/health\""), unit, &[]),
        mesos_state(&format!("{base}/state\""))
    )
}

/// Whether the agent is registered with a master: `/state` names one in
/// `master_hostname`. Prints `StateCode=` (the HTTP status) and
/// `MasterHostname=`; the reading decides.
fn mesos_state(url_word: &str) -> String {
    format!(
        r#"s=$(curl -sS --globoff --max-time 3 -w '\nStateCode=%{{http_code}}' -- {url_word})
printf '%s\n' "$s" | sed -n -e 's/.*"master_hostname" *: *"\([^"]*\)".*/MasterHostname=\1/p' -e '/^StateCode=/p'
"#
    )
}

/// The cluster store the docker gate's check printed, as `docker info`
/// has it (empty when docker runs without one).
pub(crate) fn cluster_store_in(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let store = properties(&text).get("ClusterStore").copied()?.to_string();
    serde_json::from_str(&store).ok()
}

/// One check of one gate, as a block of shell. Exit 0 is needed but not
/// enough: `reading` reads what it printed.
pub(crate) fn check(gate: &Gate) -> String {
    match gate {
        Gate::EtcdGateway { tls: false } => format!(
            "{}{}",
            unit_check(ETCD_PROXY_UNIT),
            curl(V2_READ_HTTP, ETCD_PROXY_UNIT, &[])
        ),
        // The gateway passes TLS through: the client certificate is the
        // one every other client on the agent presents.
        Gate::EtcdGateway { tls: true } => format!(
            "{}{}",
            unit_check(ETCD_PROXY_UNIT),
            curl(
                V2_READ_HTTPS,
                ETCD_PROXY_UNIT,
                &[
                    ("--cacert", TLS_CA),
                    ("--cert", TLS_CERT),
                    ("--key", TLS_KEY)
                ],
            )
        ),
        Gate::Docker { .. } => format!(
            "{}printf 'ClusterStore='\nif ! {}; then {}; exit 1; fi\n",
            unit_check(DOCKER_UNIT),
            Cmd::new("docker")
                .arg("info")
                .arg("--format")
                .arg("{{json .ClusterStore}}"),
            journal_tail(DOCKER_UNIT),
        ),
        Gate::Mesos {
            unit,
            address,
            port,
            registered,
        } => {
            let host = if address.contains(':') {
                format!("[{address}]")
            } else {
                address.clone()
            };
            let base = format!("http://{host}:{port}");
            let state = if *registered {
                mesos_state(&quote(&format!("{base}/state")))
            } else {
                String::new()
            };
            format!(
                "{}{}{state}",
                unit_check(unit),
                curl(&format!("{base}/health"), unit, &[]),
            )
        }
        Gate::Container { name } => format!(
            "{}\n",
            Cmd::new("docker")
                .arg("inspect")
                .arg("--type")
                .arg("container")
                .arg("--format")
                .arg("{{json .}}")
                .arg("--")
                .arg(name)
        ),
        Gate::Felix { port } => calico::felix_check(*port),
        Gate::Bgp(mesh) => calico::bgp_check(mesh),
        Gate::Plugin => calico::plugin_check(),
        Gate::Check(c) => operator::check(c),
    }
}

/// A real v2 read of the store through the gateway (`GET /v2/keys/`): what
/// Docker's cluster store and Calico v2 ask of it, more than a connect.
const V2_READ_HTTP: &str = "http://127.0.0.1:2379/v2/keys/";
const V2_READ_HTTPS: &str = "https://127.0.0.1:2379/v2/keys/";

/// How much longer than one command a round of checks may take: the
/// operator's checks have deadlines of their own.
pub fn extra_time(gates: &[Gate]) -> Duration {
    gates
        .iter()
        .map(|g| match g {
            Gate::Check(c) => c.timeout,
            _ => Duration::ZERO,
        })
        .sum()
}

/// Shell that checks every gate once, printing per gate a record
/// `<prefix>gate<i>` with the check's exit status and stdout, and
/// `<prefix>err<i>` with its stderr. Needs the record helpers and a temp
/// file `$e`.
pub(crate) fn gates_body(gates: &[Gate], prefix: &str) -> String {
    let mut s = String::new();
    for (i, gate) in gates.iter().enumerate() {
        s.push_str(&format!(
            "o=$( {{ {check}}} 2>\"$e\" ); r=$?\n\
             err=; while IFS= read -r l; do err=\"$err$l\n\"; done < \"$e\"\n\
             out {prefix}gate{i} \"$r\" \"$o\"; out {prefix}err{i} 0 \"$err\"\n",
            check = check(gate)
        ));
    }
    s
}

/// Every gate checked in one command.
pub fn gates(gates: &[Gate], deadline: Duration) -> Script {
    Script::new(
        "the health checks",
        deadline + extra_time(gates),
        format!(
            "{}e=$(mktemp)\ntrap 'rm -f -- \"$e\"' EXIT\n{}",
            super::probe::RECORD_HELPERS,
            gates_body(gates, "")
        ),
    )
}

/// Reads what `gates` printed: per gate, who answered, or why it is not
/// healthy.
pub fn readings(gates: &[Gate], stdout: &[u8]) -> Vec<Result<Identity, String>> {
    readings_in(
        gates,
        &crate::facts::records(stdout).unwrap_or_default(),
        "",
    )
}

/// The readings among records, under `prefix` (see `gates_body`).
pub(crate) fn readings_in(
    gates: &[Gate],
    records: &BTreeMap<String, crate::facts::Record>,
    prefix: &str,
) -> Vec<Result<Identity, String>> {
    gates
        .iter()
        .enumerate()
        .map(|(i, gate)| {
            let answer = records
                .get(&format!("{prefix}gate{i}"))
                .ok_or("the health check gave no answer")?;
            let err = records
                .get(&format!("{prefix}err{i}"))
                .map(|r| r.out.clone())
                .unwrap_or_default();
            reading(gate, answer.code == 0, &answer.out, &err)
        })
        .collect()
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

fn properties(out: &str) -> BTreeMap<&str, &str> {
    out.lines().filter_map(|l| l.split_once('=')).collect()
}

fn unit_identity(unit: &str, props: &BTreeMap<&str, &str>) -> Identity {
    Identity {
        service: unit.to_string(),
        fields: UNIT_IDENTITY
            .iter()
            .map(|&k| (k, props.get(k).copied().unwrap_or_default().to_string()))
            .collect(),
        note: None,
    }
}

/// Whether the Mesos agent is registered with a master again, from what
/// `mesos_state` printed. An agent whose HTTP API needs authentication
/// passes on `/health` alone, with a note that says so.
fn mesos_registered(unit: &str, props: &BTreeMap<&str, &str>) -> Result<Option<String>, String> {
    let code = props.get("StateCode").copied().unwrap_or_default();
    let master = props.get("MasterHostname").copied().unwrap_or_default();
    match code {
        "200" if !master.is_empty() => Ok(None),
        "200" => Err(format!(
            "{unit} answers /health but is not registered with a master yet (/state names no master_hostname)"
        )),
        "401" | "403" => Ok(Some(format!(
            "{unit}'s HTTP API needs authentication ({code} on /state): only /health was checked, not that the agent is registered with a master"
        ))),
        "" | "000" => Err(format!("{unit} answers /health but /state does not answer")),
        other => Err(format!(
            "{unit} answers /health but /state answered {other}"
        )),
    }
}

/// One gate's verdict from its check's exit status and output.
pub fn reading(gate: &Gate, ok: bool, out: &[u8], err: &[u8]) -> Result<Identity, String> {
    let text = String::from_utf8_lossy(out);
    let props = properties(&text);
    let err_text = String::from_utf8_lossy(err);
    let unit = match gate {
        Gate::EtcdGateway { .. } => Some(ETCD_PROXY_UNIT),
        Gate::Docker { .. } => Some(DOCKER_UNIT),
        Gate::Mesos { unit, .. } => Some(unit.as_str()),
        Gate::Felix { port } => {
            return calico::felix_reading(*port, &text, &err_text)
                .map(|()| Identity::answered("Felix"));
        }
        Gate::Bgp(mesh) => {
            return calico::bgp_reading(mesh, ok, &text, &err_text)
                .map(|_| Identity::answered("BGP"));
        }
        Gate::Plugin if ok => {
            return calico::plugin_reading(&text).map(|()| Identity::answered("libnetwork"));
        }
        Gate::Check(c) => {
            return operator::reading(c, ok, &text, &err_text)
                .map(|()| Identity::answered(&format!("check {}", c.name)));
        }
        Gate::Container { .. } | Gate::Plugin => None,
    };
    if !ok {
        let why = tail(err);
        let state = props.get("ActiveState").copied().unwrap_or_default();
        return Err(match (unit, state) {
            (Some(unit), s) if !s.is_empty() && s != "active" => {
                let sub = props.get("SubState").copied().unwrap_or_default();
                if why.is_empty() {
                    format!("{unit} is {s} ({sub})")
                } else {
                    format!("{unit} is {s} ({sub}): {why}")
                }
            }
            _ if why.is_empty() => "the check failed".to_string(),
            _ => why,
        });
    }
    match gate {
        Gate::Docker { cluster_store } => {
            let got = cluster_store_in(out).unwrap_or_default();
            if let Some(want) = cluster_store
                && &got != want
            {
                return Err(format!(
                    "docker runs with cluster store {got:?}, not {want:?}"
                ));
            }
            Ok(unit_identity(DOCKER_UNIT, &props))
        }
        Gate::Mesos {
            unit, registered, ..
        } => {
            let mut id = unit_identity(unit, &props);
            if *registered {
                id.note = mesos_registered(unit, &props)?;
            }
            Ok(id)
        }
        Gate::EtcdGateway { .. } => Ok(unit_identity(unit.expect("a unit gate"), &props)),
        Gate::Container { name } => {
            let c: serde_json::Value = serde_json::from_slice(out)
                .map_err(|e| format!("cannot read docker inspect for {name}: {e}"))?;
            let state = &c["State"];
            if state["Restarting"].as_bool() == Some(true) {
                return Err(format!(
                    "{name} is restarting: it exited with {} and docker restarted it {} time(s)",
                    state["ExitCode"], c["RestartCount"]
                ));
            }
            if state["Running"].as_bool() != Some(true) {
                return Err(format!(
                    "{name} is {} (exit code {})",
                    state["Status"].as_str().unwrap_or("not running"),
                    state["ExitCode"]
                ));
            }
            let field = |k: &str| match &c[k] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => match &state[k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            Ok(Identity {
                service: name.clone(),
                fields: CONTAINER_IDENTITY.iter().map(|&k| (k, field(k))).collect(),
                note: None,
            })
        }
        Gate::Felix { .. } | Gate::Bgp(_) | Gate::Plugin | Gate::Check(_) => {
            unreachable!("answered before the unit checks")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::testing::{sh_with_path, stub};

    fn container_json(restarting: bool, running: bool, count: u32, started: &str) -> String {
        serde_json::json!({
            "Id": "c1", "RestartCount": count,
            "State": {"Running": running, "Restarting": restarting, "Status": if restarting {"restarting"} else if running {"running"} else {"exited"},
                      "ExitCode": if running && !restarting {0} else {1}, "StartedAt": started}
        })
        .to_string()
    }

    #[test]
    fn a_restarting_container_never_passes() {
        let node = Gate::Container {
            name: "calico-node".into(),
        };
        let up = reading(
            &node,
            true,
            container_json(false, true, 0, "t1").as_bytes(),
            b"",
        )
        .unwrap();
        assert_eq!(up.fields[1], ("RestartCount", "0".to_string()));
        assert_eq!(up.fields[2], ("StartedAt", "t1".to_string()));
        let e = reading(
            &node,
            true,
            container_json(true, true, 3, "t2").as_bytes(),
            b"",
        )
        .unwrap_err();
        assert!(
            e.contains("is restarting") && e.contains("3 time(s)"),
            "{e}"
        );
        let e = reading(
            &node,
            true,
            container_json(false, false, 0, "t1").as_bytes(),
            b"",
        )
        .unwrap_err();
        assert_eq!(e, "calico-node is exited (exit code 1)");
        // Between two crashes docker shows it running again: the identity
        // tells.
        let later = reading(
            &node,
            true,
            container_json(false, true, 4, "t9").as_bytes(),
            b"",
        )
        .unwrap();
        assert_eq!(
            up.changed(&later).unwrap(),
            "calico-node restarted (RestartCount 0 -> 4, StartedAt t1 -> t9)"
        );
        assert_eq!(up.changed(&up.clone()), None);
        let e = reading(
            &node,
            false,
            b"",
            b"Error: No such container: calico-node\n",
        )
        .unwrap_err();
        assert_eq!(e, "Error: No such container: calico-node");
    }

    #[test]
    fn units_are_read_from_systemctl_show_in_any_order() {
        let docker = Gate::Docker {
            cluster_store: Some("etcd://127.0.0.1:2379".into()),
        };
        let out = b"NRestarts=0\nActiveState=active\nSubState=running\nMainPID=42\nActiveEnterTimestampMonotonic=123\nClusterStore=\"etcd://127.0.0.1:2379\"\n";
        let id = reading(&docker, true, out, b"").unwrap();
        assert_eq!(
            id.fields,
            [
                ("MainPID", "42".to_string()),
                ("NRestarts", "0".to_string()),
                ("ActiveEnterTimestampMonotonic", "123".to_string())
            ]
        );
        let wrong = b"ActiveState=active\nClusterStore=\"\"\n";
        let e = reading(&docker, true, wrong, b"").unwrap_err();
        assert!(e.contains("not \"etcd://127.0.0.1:2379\""), "{e}");
        let down = b"ActiveState=activating\nSubState=auto-restart\n";
        let e = reading(&docker, false, down, b"dockerd: bad config\n").unwrap_err();
        assert_eq!(
            e,
            "docker is activating (auto-restart): dockerd: bad config"
        );
    }

    #[test]
    fn a_mesos_agent_put_back_by_a_revert_need_not_have_found_its_master() {
        let gate = |registered| Gate::Mesos {
            unit: "dcos-mesos-slave".into(),
            address: "10.0.0.11".into(),
            port: 5051,
            registered,
        };
        let unregistered = b"ActiveState=active\nMainPID=9\nNRestarts=0\nStateCode=200\n";
        let e = reading(&gate(true), true, unregistered, b"").unwrap_err();
        assert!(e.contains("not registered with a master yet"), "{e}");
        assert!(reading(&gate(true).relaxed(), true, unregistered, b"").is_ok());
        assert!(!check(&gate(false)).contains("/state"), "nothing to ask");
        let registered = b"ActiveState=active\nStateCode=200\nMasterHostname=master.mesos\n";
        assert!(reading(&gate(true), true, registered, b"").is_ok());
    }

    #[test]
    fn the_gateway_gate_presents_the_client_certificate_when_tls_is_on() {
        let bin = tempfile::tempdir().unwrap();
        let seen = bin.path().join("curl-args");
        stub(
            bin.path(),
            "systemctl",
            "printf 'ActiveState=active\\nSubState=running\\nMainPID=7\\nNRestarts=0\\nActiveEnterTimestampMonotonic=1\\n'",
        );
        stub(
            bin.path(),
            "curl",
            &format!("printf '%s\\n' \"$*\" > {}", seen.display()),
        );
        let tls = [Gate::EtcdGateway { tls: true }];
        let out = sh_with_path(
            &gates(&tls, Duration::from_secs(10)).text,
            b"",
            Some(bin.path()),
        );
        assert!(out.status.success(), "{out:?}");
        assert!(readings(&tls, &out.stdout)[0].is_ok());
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap(),
            format!(
                "-fsS --globoff --max-time 3 -o /dev/null --cacert {TLS_CA} --cert {TLS_CERT} \
                 --key {TLS_KEY} -- https://127.0.0.1:2379/v2/keys/\n"
            )
        );
        let plain = gates(&[Gate::EtcdGateway { tls: false }], Duration::from_secs(10));
        assert!(plain.text.contains("http://127.0.0.1:2379/v2/keys/"));
        assert!(!plain.text.contains("--cacert"));
    }

    #[test]
    fn all_gates_are_checked_in_one_script() {
        let bin = tempfile::tempdir().unwrap();
        stub(
            bin.path(),
            "docker",
            &format!("echo '{}'", container_json(false, true, 0, "t1")),
        );
        stub(
            bin.path(),
            "systemctl",
            "printf 'ActiveState=failed\\nSubState=failed\\nMainPID=0\\n'",
        );
        stub(bin.path(), "journalctl", "echo 'dockerd: invalid config'");
        let checks = [
            Gate::Container {
                name: "calico-node".into(),
            },
            Gate::Docker {
                cluster_store: None,
            },
            Gate::Mesos {
                unit: "dcos-mesos-slave".into(),
                address: "fd00::1".into(),
                port: 5051,
                registered: true,
            },
        ];
        let script = gates(&checks, Duration::from_secs(10));
        assert!(script.text.contains("http://[fd00::1]:5051/health"));
        let out = sh_with_path(&script.text, b"", Some(bin.path()));
        assert!(out.status.success());
        let verdicts = readings(&checks, &out.stdout);
        assert!(verdicts[0].is_ok(), "{verdicts:?}");
        assert_eq!(
            verdicts[1],
            Err("docker is failed (failed): dockerd: invalid config".to_string())
        );
        assert_eq!(
            verdicts[2],
            Err("dcos-mesos-slave is failed (failed): dockerd: invalid config".to_string())
        );
    }
}
