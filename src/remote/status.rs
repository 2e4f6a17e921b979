//! The `status` script: everything `calico-rollout status` shows about one
//! agent, read in one command that takes no lock and writes nothing (not
//! even a temp file). It is the lock check, the facts probe (which reads
//! BIRD's sessions), one single-shot check each of docker's cluster store,
//! the etcd gateway, the Mesos agent's health and Felix's readiness, and
//! one run of each of the operator's checks, reusing the health gates' own
//! checks.
//!
//! Each check prints two records, `<key>` (its exit status and stdout) and
//! `<key>_err` (its stderr); stderr is kept apart through a spare file
//! descriptor, so that no file is made on the agent.

use std::time::Duration;

use super::Script;
use super::gate::{self, Identity};
use super::probe::{RECORD_HELPERS, Reads, probe_body, root_check};
use crate::desired::Desired;
use crate::facts::{self, Facts, ProbeError, Record};
use crate::inventory::Agent;
use crate::layout::Layout;
use crate::lock::{self, LockState};
use crate::shell::quote;
use crate::steps::Gate;

/// What the status script read on one agent, besides the facts.
#[derive(Debug, Clone)]
pub struct Reading {
    pub facts: Facts,
    /// The agent's lock as the lock check saw it.
    pub lock: Result<LockState, String>,
    /// The cluster store `docker info` shows ("" when none is set).
    pub cluster_store: Result<String, String>,
    /// The gateway's health; `None` when this inventory runs no gateway.
    pub gateway: Option<Result<(), String>>,
    /// The Mesos agent's health, and the URL it was asked at.
    pub mesos: Result<(), String>,
    pub mesos_url: String,
    /// Felix's readiness; `None` when it was not asked (no calico-node
    /// managed, or its health endpoint is off).
    pub felix: Option<Result<(), String>>,
    /// Each of the operator's checks by name, in inventory order.
    pub checks: Vec<(String, Result<(), String>)>,
}

/// Felix's health gate, when calico-node's environment turns its endpoint on.
fn felix_gate(want: &Desired) -> Option<Gate> {
    let port = want
        .node
        .as_ref()?
        .node_checks
        .as_ref()?
        .felix
        .clone()
        .ok()?;
    Some(Gate::Felix { port })
}

fn check_gates(want: &Desired) -> Vec<Gate> {
    want.checks
        .iter()
        .map(|c| Gate::Check(Box::new(c.clone())))
        .collect()
}

/// The record key of the `i`th operator check: names are the operator's,
/// and not made to be shell words.
fn check_key(i: usize) -> String {
    format!("check{i}")
}

/// The status script for `agent`.
pub fn script(
    agent: &Agent,
    want: &Desired,
    layout: &Layout,
    verify: bool,
    deadline: Duration,
) -> Script {
    let docker = gate::check(&Gate::Docker {
        cluster_store: None,
    });
    let gateway = want
        .etcd_proxy
        .as_ref()
        .map(|_| {
            let tls = want.etcd_tls.is_some();
            single("gateway", &gate::check(&Gate::EtcdGateway { tls }))
        })
        .unwrap_or_default();
    // The address as the Mesos gate picks it (`steps::cni::mesos_address`):
    // what detect_ip printed, if it is an address, else the inventory's.
    let fallback = agent
        .mesos_address
        .clone()
        .unwrap_or_else(|| agent.address.clone());
    let port = agent.role.mesos_port();
    let mesos = gate::mesos_check_at(agent.role.mesos_unit(), "mh", port);
    let felix = felix_gate(want)
        .map(|g| single("felix", &gate::check(&g)))
        .unwrap_or_default();
    let checks = check_gates(want);
    let operator: String = checks
        .iter()
        .enumerate()
        .map(|(i, g)| single(&check_key(i), &gate::check(g)))
        .collect();
    Script::new(
        "reading the agent's status",
        // Each operator check runs under its own timeout, in turn.
        deadline + gate::extra_time(&checks),
        format!(
            "{root}{RECORD_HELPERS}\
             lk=$(sh -c {lock} 2>&1); out lock \"$?\" \"$lk\"\n\
             {probe}\
             {docker}\
             {gateway}\
             ma=$detected\n\
             case $ma in ''|*[!0-9A-Fa-f.:]*) ma={fallback} ;; esac\n\
             case $ma in *:*) mh=\"[$ma]\" ;; *) mh=$ma ;; esac\n\
             out mesos_url 0 \"http://$mh:{port}/health\"\n\
             {mesos}\
             {felix}\
             {operator}",
            root = root_check(),
            lock = quote(&super::lock::check(deadline).text),
            probe = probe_body(
                want,
                layout,
                Reads {
                    verify,
                    texts: false,
                },
            ),
            docker = single("docker", &docker),
            gateway = gateway,
            fallback = quote(&fallback),
            mesos = single("mesos", &mesos),
        ),
    )
}

/// Runs one check (which may `exit`: it runs in a subshell) and prints
/// its records. fd 3 carries its stderr to `err`, fd 4 the records past it.
fn single(key: &str, check: &str) -> String {
    format!(
        "{{ err=$( {{ o=$( {{ {check}}} 2>&3 ); out {key} \"$?\" \"$o\"; }} 3>&1 1>&4 ); \
         out {key}_err 0 \"$err\"; }} 4>&1\n"
    )
}

/// Reads what the status script for `want` printed. `exit` and `stderr`
/// are the command's own; a host whose facts cannot be read is an error, a check
/// that fails is a value.
pub fn read(
    agent: &Agent,
    want: &Desired,
    exit: Option<u32>,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Reading, ProbeError> {
    if let Some(e) = facts::probe_failure(exit, stderr) {
        return Err(e);
    }
    let records = facts::records(stdout)?;
    let facts = facts::from_records(&records)?;
    let lock = match records.get("lock") {
        None => Err("the lock check gave no answer".to_string()),
        Some(r) => lock::parse(&r.text()).map_err(|e| {
            if r.text().is_empty() {
                e.to_string()
            } else {
                r.text()
            }
        }),
    };
    let docker = check_answer(
        &records,
        "docker",
        &Gate::Docker {
            cluster_store: None,
        },
    );
    let cluster_store = docker.and_then(|_| {
        let out = records
            .get("docker")
            .map(|r| r.out.as_slice())
            .unwrap_or_default();
        gate::cluster_store_in(out).ok_or_else(|| "docker info shows no cluster store field".into())
    });
    // How a gateway check's answer reads does not depend on TLS.
    let gateway = records
        .contains_key("gateway")
        .then(|| check_answer(&records, "gateway", &Gate::EtcdGateway { tls: false }).map(|_| ()));
    let mesos_url = records
        .get("mesos_url")
        .map(Record::text)
        .unwrap_or_default();
    // Only the unit's name matters to the reading.
    let mesos_gate = Gate::Mesos {
        unit: agent.role.mesos_unit().into(),
        address: String::new(),
        port: 0,
        registered: true,
    };
    let mesos = check_answer(&records, "mesos", &mesos_gate).map(|_| ());
    let felix = felix_gate(want).map(|g| check_answer(&records, "felix", &g).map(|_| ()));
    let checks = check_gates(want)
        .iter()
        .zip(&want.checks)
        .enumerate()
        .map(|(i, (g, c))| {
            let answer = check_answer(&records, &check_key(i), g).map(|_| ());
            (c.name.clone(), answer)
        })
        .collect();
    Ok(Reading {
        facts,
        lock,
        cluster_store,
        gateway,
        mesos,
        mesos_url,
        felix,
        checks,
    })
}

/// One check's verdict, read as its gate reads it.
fn check_answer(
    records: &std::collections::BTreeMap<String, Record>,
    key: &str,
    gate: &Gate,
) -> Result<Identity, String> {
    let answer = records
        .get(key)
        .ok_or_else(|| format!("the {key} check gave no answer"))?;
    let err = records
        .get(&format!("{key}_err"))
        .map(|r| r.out.clone())
        .unwrap_or_default();
    gate::reading(gate, answer.code == 0, &answer.out, &err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{CheckProbe, OperatorCheck, Role};
    use crate::remote::probe::DETECT_IP;
    use crate::remote::testing::{sh_with_env, stub};
    use crate::steps::testing::{agent, desired};

    /// An agent whose tools log every call and whose health answers come
    /// from switches in `$STATE`.
    const AGENT: [(&str, &str); 6] = [
        ("id", "echo 0"),
        (
            "dockerd",
            "echo dockerd >> \"$STATE/calls\"; echo 'Docker version 20.10.24, build 297e128'",
        ),
        (
            "docker",
            r#"echo "docker $1" >> "$STATE/calls"
case "$1" in
  version) echo 20.10.24 ;;
  inspect) echo '[{"Id": "c1", "Name": "/calico-node", "Config": {"Image": "calico/node:v2.6.12"}, "State": {"Running": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}]' ;;
  exec) cat "$STATE/bird" 2>/dev/null ;;
  info) printf '"%s"\n' "$(cat "$STATE/store" 2>/dev/null)" ;;
esac"#,
        ),
        (
            "systemctl",
            r#"echo "systemctl $*" >> "$STATE/calls"
case "$*" in
  *calico-etcd-proxy.service*docker.service*) printf 'Id=docker.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\nId=dcos-mesos-slave.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n' ;;
  *"-- dcos-mesos-slave"*) [ -e "$STATE/mesos-down" ] && { printf 'ActiveState=failed\nSubState=failed\n'; exit 0; }; printf 'ActiveState=active\nMainPID=7\n' ;;
  *) printf 'ActiveState=active\nMainPID=5\n' ;;
esac"#,
        ),
        (
            "curl",
            r#"echo "curl $*" >> "$STATE/calls"
case "$*" in
  *2379*) [ -e "$STATE/gateway-down" ] && { echo 'curl: (7) Failed to connect to 127.0.0.1 port 2379' >&2; exit 7; } ;;
  */state) printf '{"id":"a1","master_hostname":"master.mesos"}\nStateCode=200\n' ;;
  *9099/readiness) [ -e "$STATE/felix-unready" ] && { printf 503; exit 0; }; printf 200 ;;
  *9099/liveness) printf 200 ;;
esac
exit 0"#,
        ),
        ("journalctl", "echo 'mesos-agent: Failed to bind'"),
    ];

    /// Runs the real status script under sh with the stand-ins first on
    /// PATH and the agent's state folder in `state`.
    fn status_in(state: &std::path::Path, who: &Agent) -> (Script, Result<Reading, ProbeError>) {
        status_of(state, who, &desired())
    }

    fn status_of(
        state: &std::path::Path,
        who: &Agent,
        want: &Desired,
    ) -> (Script, Result<Reading, ProbeError>) {
        let bin = stubs(state);
        let layout = Layout::at(state.join("var").to_str().unwrap());
        let script = script(who, want, &layout, false, Duration::from_secs(30));
        let out = sh_with_env(
            &script.text,
            b"",
            Some(&bin),
            &[("STATE", state.to_path_buf())],
        );
        let reading = read(
            who,
            want,
            out.status.code().map(|c| c as u32),
            &out.stdout,
            &out.stderr,
        );
        (script, reading)
    }

    fn stubs(state: &std::path::Path) -> std::path::PathBuf {
        let bin = state.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in AGENT {
            stub(&bin, name, body);
        }
        bin
    }

    fn calls(state: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(state.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Every path under `dir`, to tell that nothing was made.
    fn tree(dir: &std::path::Path) -> Vec<String> {
        let out = std::process::Command::new("find")
            .arg(dir)
            .output()
            .unwrap();
        let mut paths: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.ends_with("/calls"))
            .map(str::to_string)
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn one_command_reads_every_status_item_and_starts_each_tool_once() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join("store"), "etcd://127.0.0.1:2379").unwrap();
        stubs(state.path());
        let before = tree(state.path());
        let (_, reading) = status_in(state.path(), &agent(Role::Private));
        let r = reading.unwrap();
        assert_eq!(r.lock, Ok(LockState::Free));
        assert_eq!(r.cluster_store.as_deref(), Ok("etcd://127.0.0.1:2379"));
        assert_eq!(r.gateway, Some(Ok(())));
        assert_eq!(r.mesos, Ok(()));
        // No detect_ip here: the inventory's address, as the gate does.
        assert_eq!(r.mesos_url, "http://10.0.0.11:5051/health");
        assert_eq!(
            r.facts.containers["calico-node"].image,
            "calico/node:v2.6.12"
        );
        assert!(r.facts.unit("dcos-mesos-slave").loaded);
        assert_eq!(
            calls(state.path()),
            [
                "systemctl show",
                "docker version",
                "docker inspect",
                "docker inspect",
                "dockerd",
                "docker exec",
                "systemctl show",
                "docker info",
                "systemctl show",
                "curl -fsS",
                "systemctl show",
                "curl -fsS",
                "curl -sS",
                // curl's -w format carries a newline.
                "StateCode=%{http_code} --",
            ],
            "the probe's tools once, then one check each of docker, the gateway and Mesos (health, then registration)"
        );
        assert_eq!(tree(state.path()), before, "the script wrote nothing");
    }

    /// calico-node with Felix's endpoint on, and two operator checks.
    fn networking() -> Desired {
        let mut want = desired();
        want.node.as_mut().unwrap().node_checks = Some(crate::desired::NodeChecks {
            felix: Ok(9099),
            bgp: Ok(false),
        });
        let check = |name: &str, cmd: &str, secs| OperatorCheck {
            name: name.into(),
            after: crate::step::StepName::Node,
            probe: CheckProbe::Command(cmd.into()),
            timeout: Duration::from_secs(secs),
        };
        want.checks = vec![
            check("dns", "echo resolving; true", 5),
            // A name that is no shell word must not reach the shell.
            check(
                "app's $(reboot)",
                "echo starting; echo 'no route' >&2; exit 3",
                7,
            ),
        ];
        want
    }

    const BIRD: &str = "BIRD v0.3.3+birdv1.6.3 ready.\n\
        name     proto    table    state  since       info\n\
        Mesh_10_0_0_12 BGP      master   up     09:58:46    Established\n\
        Mesh_10_0_0_13 BGP      master   start  09:58:41    Active        Socket: Connection refused\n";

    #[test]
    fn felix_bird_and_the_operators_checks_are_read_in_the_same_command() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join("bird"), BIRD).unwrap();
        let want = networking();
        let (script, reading) = status_of(state.path(), &agent(Role::Private), &want);
        let r = reading.unwrap();
        assert_eq!(r.felix, Some(Ok(())));
        let sessions = r.facts.bgp.clone().unwrap().unwrap();
        assert_eq!(
            sessions.iter().map(|s| s.established()).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(
            r.checks,
            [
                ("dns".to_string(), Ok(())),
                (
                    "app's $(reboot)".to_string(),
                    Err("check app's $(reboot) failed (exit 3): starting | no route".into())
                ),
            ]
        );
        assert!(
            !script.text.contains("app's"),
            "names stay out of the script"
        );
        assert_eq!(
            script.deadline,
            Duration::from_secs(30 + 5 + 7),
            "each check's own timeout adds to the command's"
        );
        let birdcl = calls(state.path())
            .iter()
            .filter(|c| *c == "docker exec")
            .count();
        assert_eq!(birdcl, 1, "BIRD is asked once, by the facts probe");

        std::fs::write(state.path().join("felix-unready"), "").unwrap();
        let (_, reading) = status_of(state.path(), &agent(Role::Private), &want);
        assert_eq!(
            reading.unwrap().felix,
            Some(Err("Felix is not ready: /readiness answered 503".into()))
        );
    }

    #[test]
    fn with_felix_off_and_no_checks_neither_is_asked() {
        let state = tempfile::tempdir().unwrap();
        let (script, reading) = status_in(state.path(), &agent(Role::Private));
        let r = reading.unwrap();
        assert_eq!((r.felix, r.checks), (None, vec![]));
        assert!(!script.text.contains("9099"));
        assert_eq!(script.deadline, Duration::from_secs(30));
    }

    #[test]
    fn failing_checks_are_values_with_their_reasons() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join("gateway-down"), "").unwrap();
        std::fs::write(state.path().join("mesos-down"), "").unwrap();
        let mut public = agent(Role::Public);
        public.mesos_address = Some("fd00::7".into());
        let (script, reading) = status_in(state.path(), &public);
        let r = reading.unwrap();
        assert_eq!(
            r.gateway,
            Some(Err(
                "curl: (7) Failed to connect to 127.0.0.1 port 2379 | mesos-agent: Failed to bind"
                    .into()
            ))
        );
        assert_eq!(
            r.mesos,
            Err("dcos-mesos-slave-public is failed (failed): mesos-agent: Failed to bind".into())
        );
        assert_eq!(r.mesos_url, "http://[fd00::7]:5052/health");
        assert!(script.text.contains("dcos-mesos-slave-public.service"));
        // docker runs without a cluster store: read, and empty.
        assert_eq!(r.cluster_store.as_deref(), Ok(""));
    }

    #[test]
    fn a_held_lock_is_shown_and_the_host_still_read() {
        let state = tempfile::tempdir().unwrap();
        let lock_file = state.path().join("calico-rollout.lock");
        std::fs::write(
            &lock_file,
            "{\"owner\":\"laptop-1-2\",\"user\":\"alice\",\"host\":\"laptop\",\"pid\":1,\"since\":10,\"refreshed\":20}\n",
        )
        .unwrap();
        let who = agent(Role::Private);
        let (mut script, _) = status_in(state.path(), &who);
        // The same script, reading the lock where this test put it.
        script.text = script
            .text
            .replace(crate::lock::LOCK_PATH, lock_file.to_str().unwrap());
        let out = sh_with_env(
            &script.text,
            b"",
            Some(&state.path().join("bin")),
            &[("STATE", state.path().to_path_buf())],
        );
        let r = read(
            &who,
            &desired(),
            out.status.code().map(|c| c as u32),
            &out.stdout,
            &out.stderr,
        )
        .unwrap();
        let Ok(LockState::Held(holder)) = &r.lock else {
            panic!("{:?}", r.lock)
        };
        assert_eq!(
            (holder.owner.as_str(), holder.user.as_str()),
            ("laptop-1-2", "alice")
        );
        assert!(holder.stale, "no heartbeat since 1970");
        assert!(
            r.facts.units.contains_key("docker"),
            "read under another's lock"
        );
        assert_eq!(
            std::fs::read_to_string(&lock_file).unwrap().lines().count(),
            1,
            "the lock is left as it was"
        );
    }

    #[test]
    fn detect_ip_names_the_mesos_address_and_junk_does_not() {
        let state = tempfile::tempdir().unwrap();
        let who = agent(Role::Private);
        let (script, _) = status_in(state.path(), &who);
        let ip = state.path().join("bin/detect_ip");
        let text = script.text.replace(DETECT_IP, ip.to_str().unwrap());
        let url = |answer: &str| {
            stub(&state.path().join("bin"), "detect_ip", answer);
            let out = sh_with_env(
                &text,
                b"",
                Some(&state.path().join("bin")),
                &[("STATE", state.path().to_path_buf())],
            );
            read(&who, &desired(), Some(0), &out.stdout, &out.stderr)
                .unwrap()
                .mesos_url
        };
        assert_eq!(url("echo 172.18.0.5"), "http://172.18.0.5:5051/health");
        assert_eq!(url("echo '$(reboot)'"), "http://10.0.0.11:5051/health");
        assert_eq!(url("exit 1"), "http://10.0.0.11:5051/health");
    }

    #[test]
    fn a_host_that_is_not_root_cannot_be_read() {
        let who = agent(Role::Private);
        let out = read(
            &who,
            &desired(),
            Some(facts::NOT_ROOT),
            b"",
            b"not running as root\n",
        );
        assert!(matches!(out, Err(ProbeError::NotRoot(_))), "{out:?}");
        let cut = read(&who, &desired(), Some(0), b"lock 0 9\nlock free\n", b"");
        assert!(matches!(cut, Err(ProbeError::Failed(why)) if why.contains("lacks")));
    }
}
