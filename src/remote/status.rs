//! The `status` script: everything `calico-rollout status` shows about one
//! agent, read in one command that takes no lock and writes nothing (not
//! even a temp file). It is the lock check, the facts probe, and one
//! single-shot check each of docker's cluster store, the etcd gateway and
//! the Mesos agent's health, reusing the health gates' own checks.
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
    Script::new(
        "reading the agent's status",
        deadline,
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
             {mesos}",
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

/// Reads what the status script printed. `exit` and `stderr` are the
/// command's own; a host whose facts cannot be read is an error, a check
/// that fails is a value.
pub fn read(
    agent: &Agent,
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
    };
    let mesos = check_answer(&records, "mesos", &mesos_gate).map(|_| ());
    Ok(Reading {
        facts,
        lock,
        cluster_store,
        gateway,
        mesos,
        mesos_url,
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
    use crate::inventory::Role;
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
esac
exit 0"#,
        ),
        ("journalctl", "echo 'mesos-agent: Failed to bind'"),
    ];

    /// Runs the real status script under sh with the stand-ins first on
    /// PATH and the agent's state folder in `state`.
    fn status_in(state: &std::path::Path, who: &Agent) -> (Script, Result<Reading, ProbeError>) {
        let bin = stubs(state);
        let layout = Layout::at(state.join("var").to_str().unwrap());
        let script = script(who, &desired(), &layout, false, Duration::from_secs(30));
        let out = sh_with_env(
            &script.text,
            b"",
            Some(&bin),
            &[("STATE", state.to_path_buf())],
        );
        let reading = read(
            who,
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
            read(&who, Some(0), &out.stdout, &out.stderr)
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
        let out = read(&who, Some(facts::NOT_ROOT), b"", b"not running as root\n");
        assert!(matches!(out, Err(ProbeError::NotRoot(_))), "{out:?}");
        let cut = read(&who, Some(0), b"lock 0 9\nlock free\n", b"");
        assert!(matches!(cut, Err(ProbeError::Failed(why)) if why.contains("lacks")));
    }
}
