//! The facts probe: one script that reads everything the planners need,
//! printed one check a line as `KEY EXIT BASE64` for `facts::parse`.

use std::time::Duration;

use super::Script;
use crate::desired::{self, Desired};
use crate::facts::{NOT_ROOT, UNITS};
use crate::layout::Layout;
use crate::shell::{Cmd, quote};

/// DC/OS's own answer to "which address does this agent use".
pub const DETECT_IP: &str = "/opt/mesosphere/bin/detect_ip";

/// Prints the run history as `History::parse` reads it. Run ids are
/// checked before they become paths.
fn history_dump(layout: &Layout) -> String {
    format!(
        "history_dump() {{\n  \
           h={history}; r={runs}\n  \
           [ -f \"$h\" ] || return 0\n  \
           while IFS= read -r id; do\n    \
             case $id in ''|.*|-*|*[!A-Za-z0-9._-]*) continue ;; esac\n    \
             d=\"$r/$id\"\n    \
             [ -d \"$d\" ] || continue\n    \
             st=$(cat -- \"$d/state\" 2>/dev/null) || st=applying\n    \
             printf 'run %s %s\\n' \"$id\" \"$st\"\n    \
             for f in \"$d\"/[0-9]*.json; do\n      \
               [ -e \"$f\" ] || continue\n      \
               n=${{f##*/}}; n=${{n%.json}}\n      \
               u=0; [ -e \"$d/$n.undone\" ] && u=1\n      \
               printf 'change %s %s %s %s\\n' \"$id\" \"$n\" \"$u\" \"$(base64 < \"$f\" | tr -d '\\n')\"\n    \
             done\n    \
             for f in \"$d\"/*.restored; do\n      \
               [ -e \"$f\" ] || continue\n      \
               n=${{f##*/}}; printf 'restored %s %s\\n' \"$id\" \"${{n%.restored}}\"\n    \
             done\n  \
           done < \"$h\"\n\
         }}\n",
        history = quote(&layout.history_file()),
        runs = quote(&layout.runs_dir()),
    )
}

/// Builds the probe script for one agent.
pub fn probe(want: &Desired, layout: &Layout, deadline: Duration) -> Script {
    let mut files: Vec<String> = Vec::new();
    if let Some(p) = &want.etcd_proxy {
        files.push(p.unit_file.path.to_string());
    }
    if let Some(c) = &want.cni {
        files.extend(c.binaries.iter().map(|b| b.path.to_string()));
        files.push(c.config.path.to_string());
    }
    let containers: Vec<&desired::ContainerSpec> = [&want.libnetwork, &want.node]
        .into_iter()
        .flatten()
        .collect();
    for c in &containers {
        files.push(c.env_file.path.to_string());
    }
    let etcd_binary = want
        .etcd_proxy
        .as_ref()
        .map(|p| p.binary.to_string())
        .unwrap_or_else(|| "/usr/bin/etcd".into());

    let mut s = String::new();
    s.push_str(&format!(
        "[ \"$(id -u)\" = 0 ] || {{ echo 'not running as root: set ssh.become: true (sudo -n), or log in as root' >&2; exit {NOT_ROOT}; }}\n"
    ));
    // p: stdout and stderr together; q: stdout only.
    s.push_str("p() { k=$1; shift; o=$(\"$@\" 2>&1); r=$?; printf '%s %s %s\\n' \"$k\" \"$r\" \"$(printf '%s' \"$o\" | base64 | tr -d '\\n')\"; }\n");
    s.push_str("q() { k=$1; shift; o=$(\"$@\" 2>/dev/null); r=$?; printf '%s %s %s\\n' \"$k\" \"$r\" \"$(printf '%s' \"$o\" | base64 | tr -d '\\n')\"; }\n");
    // f: a file's exact bytes (command substitution would drop trailing
    // newlines, and the compare-and-swap of daemon.json needs every byte).
    s.push_str("f() { if [ -r \"$2\" ]; then o=$(base64 < \"$2\" | tr -d '\\n'); printf '%s 0 %s\\n' \"$1\" \"$o\"; else printf '%s 1 \\n' \"$1\"; fi; }\n");
    s.push_str(&history_dump(layout));
    let mut line = |key: &str, cmd: Cmd| s.push_str(&format!("{key} {cmd}\n"));
    line("p docker_version", Cmd::new("dockerd").arg("--version"));
    line(
        "p docker_answering",
        Cmd::new("docker")
            .arg("version")
            .arg("--format")
            .arg("{{.Server.Version}}"),
    );
    for unit in UNITS {
        line(
            &format!("q unit:{unit}"),
            Cmd::new("systemctl")
                .arg("cat")
                .arg("--")
                .arg(format!("{unit}.service")),
        );
    }
    // One line per unit, in order, unknown units included ("inactive").
    line(
        "q active",
        Cmd::new("systemctl").arg("is-active").arg("--").args(UNITS),
    );
    // Only the gateway's unit is enabled by a step.
    line(
        &format!("q enabled:{}", desired::ETCD_PROXY_UNIT),
        Cmd::new("systemctl")
            .arg("is-enabled")
            .arg("--")
            .arg(desired::ETCD_PROXY_UNIT),
    );
    if !files.is_empty() {
        line("q hashes", Cmd::new("sha256sum").arg("--").args(&files));
    }
    line(
        "p daemon_json_exists",
        Cmd::new("test").arg("-e").arg(desired::DAEMON_JSON_PATH),
    );
    line("f daemon_json", Cmd::new(desired::DAEMON_JSON_PATH));
    line(
        "q containers",
        Cmd::new("docker")
            .arg("inspect")
            .arg("--type")
            .arg("container")
            .arg("--")
            .arg(desired::LIBNETWORK_CONTAINER)
            .arg(desired::NODE_CONTAINER),
    );
    let images: Vec<String> = containers.iter().map(|c| c.image.to_string()).collect();
    if images.is_empty() {
        s.push_str("printf 'images 0 %s\\n' \"$(printf '[]' | base64)\"\n");
    } else {
        s.push_str(&format!(
            "q images {}\n",
            Cmd::new("docker")
                .arg("image")
                .arg("inspect")
                .arg("--")
                .args(&images)
        ));
    }
    let mut line = |key: &str, cmd: Cmd| s.push_str(&format!("{key} {cmd}\n"));
    line(
        "q staged",
        Cmd::new("ls").arg("-1").arg("--").arg(layout.stage_dir()),
    );
    line(
        "q pending",
        Cmd::new("ls").arg("-1").arg("--").arg(layout.pending_dir()),
    );
    line(
        "p etcd_binary",
        Cmd::new("test").arg("-x").arg(&etcd_binary),
    );
    line("q mesos_ip", Cmd::new(DETECT_IP));
    s.push_str("q history history_dump\n");
    Script::new("the facts probe", deadline, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Facts, ProbeError, parse};
    use crate::remote::testing::{sh_with_path, stub};
    use crate::steps::testing::desired;

    /// Runs the real probe script under sh, with stand-ins for the agent's
    /// programs first on PATH and the state folder in a temp dir.
    fn probe_with(stubs: &[(&str, &str)], state: &std::path::Path) -> Result<Facts, ProbeError> {
        let bin = tempfile::tempdir().unwrap();
        for (name, body) in stubs {
            stub(bin.path(), name, body);
        }
        let layout = Layout::at(state.to_str().unwrap());
        let script = probe(&desired(), &layout, Duration::from_secs(30));
        let out = sh_with_path(&script.text, b"", Some(bin.path()));
        parse(
            out.status.code().map(|c| c as u32),
            &out.stdout,
            &out.stderr,
        )
    }

    const AGENT: [(&str, &str); 5] = [
        ("id", "echo 0"),
        (
            "dockerd",
            "echo 'Docker version 20.10.24+dfsg1, build 297e128'",
        ),
        (
            "docker",
            r#"case "$1" in
  version) echo 20.10.24 ;;
  inspect) echo '[{"Id": "c1", "Name": "/calico-node", "Config": {"Image": "calico/node:v2.6.11", "Labels": {"org.projectcalico.rollout.spec": "abc"}}, "State": {"Running": true}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}]'; exit 1 ;;
  image) echo '[{"RepoTags": ["calico/node:v2.6.12"]}]'; echo 'Error: No such image: calico/libnetwork-plugin:v1.1.3' >&2; exit 1 ;;
esac"#,
        ),
        (
            "systemctl",
            r#"case "$1" in
  cat) case "$3" in docker.service|dcos-mesos-slave.service) echo "[Service]" ;; *) echo "No files found for $3." >&2; exit 1 ;; esac ;;
  is-active) echo active; echo active; echo activating; echo inactive; exit 3 ;;
  is-enabled) echo disabled; exit 1 ;;
esac"#,
        ),
        (
            "cat",
            r#"[ "$2" = /etc/docker/daemon.json ] && { echo '{"debug": true}'; exit 0; }; exec /bin/cat "$@""#,
        ),
    ];

    #[test]
    fn the_probe_reads_an_agent_in_one_script() {
        let state = tempfile::tempdir().unwrap();
        let facts = probe_with(&AGENT, state.path()).unwrap();
        assert_eq!(facts.docker_answering, Ok(()));
        let units: Vec<&String> = facts.unit_files.keys().collect();
        assert_eq!(units, ["dcos-mesos-slave", "docker"]);
        assert_eq!(facts.active["calico-etcd-proxy"], "active");
        assert_eq!(facts.active["dcos-mesos-slave"], "activating");
        assert_eq!(facts.active["dcos-mesos-slave-public"], "inactive");
        assert_eq!(facts.enabled["calico-etcd-proxy"], "disabled");
        // `test` is a shell builtin: existence checks see this machine's files.
        let daemon_json = std::fs::read("/etc/docker/daemon.json").ok();
        assert_eq!(facts.daemon_json, daemon_json);
        let node = &facts.containers["calico-node"];
        assert_eq!(
            (node.id.as_str(), node.image.as_str(), node.policy.as_str()),
            ("c1", "calico/node:v2.6.11", "always")
        );
        assert_eq!(node.spec_hash.as_deref(), Some("abc"));
        assert!(facts.images.contains("calico/node:v2.6.12"));
        assert!(!facts.images.contains("calico/libnetwork-plugin:v1.1.3"));
        assert!(facts.hashes.is_empty() && facts.staged.is_empty());
        assert!(facts.history.runs.is_empty());
        // No detect_ip on this machine: the gate falls back to the inventory.
        assert_eq!(facts.mesos_ip, None);
    }

    #[test]
    fn the_probe_reads_the_run_history() {
        let state = tempfile::tempdir().unwrap();
        let root = state.path();
        std::fs::create_dir_all(root.join("runs/r1")).unwrap();
        std::fs::create_dir_all(root.join("runs/r2")).unwrap();
        std::fs::write(root.join("history"), "r1\n../evil\nr2\ngone\n").unwrap();
        std::fs::write(root.join("runs/r1/state"), "applied").unwrap();
        std::fs::write(root.join("runs/r2/state"), "reverted").unwrap();
        std::fs::write(
            root.join("runs/r1/0001.json"),
            r#"{"step":"docker","undo":{"undo":"file","target":"/etc/docker/daemon.json","existed":true},"restart":"docker"}"#,
        )
        .unwrap();
        std::fs::write(root.join("runs/r1/0001.undone"), "").unwrap();
        std::fs::write(root.join("runs/r1/docker.restored"), "").unwrap();
        let facts = probe_with(&AGENT, root).unwrap();
        let runs: Vec<(&str, &str)> = facts
            .history
            .runs
            .iter()
            .map(|r| (r.run.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(runs, [("r1", "applied"), ("r2", "reverted")]);
        let r1 = &facts.history.runs[0];
        assert_eq!(r1.changes.len(), 1);
        assert!(r1.changes[0].undone && r1.taken_back());
    }

    #[test]
    fn files_are_read_to_the_last_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("daemon.json");
        std::fs::write(&file, "{}\n\n").unwrap();
        let script = probe(
            &desired(),
            &Layout::at("/nonexistent"),
            Duration::from_secs(5),
        )
        .text;
        let define = script.lines().find(|l| l.starts_with("f() ")).unwrap();
        let out = sh_with_path(
            &format!("{define}\nf one {}\nf two /nonexistent", file.display()),
            b"",
            None,
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let one: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(one[..2], ["one", "0"]);
        assert_eq!(crate::facts::base64_decode(one[2]).unwrap(), b"{}\n\n");
        assert_eq!(lines.next().unwrap(), "two 1 ");
    }

    #[test]
    fn the_probe_refuses_without_root() {
        let mut agent = AGENT.to_vec();
        agent[0] = ("id", "echo 1000");
        let state = tempfile::tempdir().unwrap();
        match probe_with(&agent, state.path()) {
            Err(ProbeError::NotRoot(why)) => assert!(why.contains("become"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn detect_ip_names_the_mesos_address() {
        let bin = tempfile::tempdir().unwrap();
        let ip = bin.path().join("detect_ip");
        stub(bin.path(), "detect_ip", "echo 172.18.0.5");
        let state = tempfile::tempdir().unwrap();
        let layout = Layout::at(state.path().to_str().unwrap());
        let script = probe(&desired(), &layout, Duration::from_secs(30))
            .text
            .replace(DETECT_IP, ip.to_str().unwrap());
        let mut stubs = AGENT.to_vec();
        stubs.retain(|(n, _)| *n != "cat");
        for (name, body) in &stubs {
            stub(bin.path(), name, body);
        }
        let out = sh_with_path(&script, b"", Some(bin.path()));
        let facts = parse(Some(0), &out.stdout, &out.stderr).unwrap();
        assert_eq!(facts.mesos_ip.as_deref(), Some("172.18.0.5"));
    }
}
