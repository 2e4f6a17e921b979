//! The shell scripts behind each remote operation. Every value is quoted;
//! file contents arrive on stdin or from the stage area, never in argv.

use crate::desired::{STATE_DIR, backup_path, pending_path, stage_path};
use crate::shell::{Cmd, quote};
use crate::steps::{FileCheck, Gate};

/// Checks that `$tmp` holds exactly the expected bytes before anything
/// replaces a live file: a cut connection must never install half a file.
fn verify(sha256: &str, what: &str) -> String {
    format!(
        "got=$(sha256sum < \"$tmp\"); got=${{got%% *}}\n\
         if [ \"$got\" != {sha} ]; then echo {msg}\" has sha256 $got, expected \"{sha} >&2; exit 1; fi\n",
        sha = quote(sha256),
        msg = quote(&format!("refusing to install {what}: the received file")),
    )
}

/// Installs a file atomically: the bytes go to a temp file in the target's
/// folder, are checked against their hash, then renamed over the target.
/// The previous version is kept under the state folder first.
pub fn install(
    target: &str,
    mode: u32,
    sha256: &str,
    from_stage: bool,
    check: Option<FileCheck>,
) -> String {
    let (dir, name) = target.rsplit_once('/').expect("remote paths are absolute");
    let dir = if dir.is_empty() { "/" } else { dir };
    let backup = backup_path(target);
    let backup_dir = backup.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    let fill = if from_stage {
        format!("cat -- {} > \"$tmp\"\n", quote(&stage_path(sha256)))
    } else {
        "cat > \"$tmp\"\n".to_string()
    };
    let check = match check {
        None => String::new(),
        Some(FileCheck::Dockerd) => format!(
            "dockerd --validate --config-file \"$tmp\" >/dev/null 2>\"$tmp.why\" || \
             {{ echo {msg} \"$(tail -n 1 \"$tmp.why\")\" >&2; rm -f -- \"$tmp.why\"; exit 1; }}\n\
             rm -f -- \"$tmp.why\"\n",
            msg = quote(&format!(
                "dockerd refuses the new {target}, left unchanged:"
            )),
        ),
    };
    format!(
        "set -eu\n\
         mkdir -p -- {dir}\n\
         tmp=$(mktemp -- {template})\n\
         trap 'rm -f -- \"$tmp\"' EXIT\n\
         {fill}\
         {verify}\
         {check}\
         chmod {mode:o} -- \"$tmp\"\n\
         if [ -e {target} ]; then\n  \
           mkdir -p -- {backup_dir}\n  \
           cp -p -- {target} {backup_tmp}\n  \
           mv -f -- {backup_tmp} {backup}\n\
         fi\n\
         sync -- \"$tmp\" 2>/dev/null || sync\n\
         mv -f -- \"$tmp\" {target}\n\
         trap - EXIT\n",
        dir = quote(dir),
        template = quote(&format!("{dir}/.{name}.calico-rollout.XXXXXX")),
        verify = verify(sha256, target),
        target = quote(target),
        backup_dir = quote(backup_dir),
        backup_tmp = quote(&format!("{backup}.tmp")),
        backup = quote(&backup),
    )
}

/// Receives a binary on stdin into the stage area, named by its hash.
pub fn stage(sha256: &str) -> String {
    let dir = format!("{STATE_DIR}/stage");
    format!(
        "set -eu\n\
         mkdir -p -m 700 -- {dir}\n\
         tmp=$(mktemp -- {template})\n\
         trap 'rm -f -- \"$tmp\"' EXIT\n\
         cat > \"$tmp\"\n\
         {verify}\
         mv -f -- \"$tmp\" {dest}\n\
         trap - EXIT\n",
        dir = quote(&dir),
        template = quote(&format!("{dir}/.upload.XXXXXX")),
        verify = verify(sha256, "a staged upload"),
        dest = quote(&stage_path(sha256)),
    )
}

pub fn mark_pending(unit: &str) -> String {
    let path = pending_path(unit);
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    format!("mkdir -p -- {} && : > {}", quote(dir), quote(&path))
}

pub fn clear_pending(unit: &str) -> String {
    Cmd::new("rm")
        .arg("-f")
        .arg("--")
        .arg(pending_path(unit))
        .to_string()
}

/// What the unit's own processes logged last, on stderr: systemctl only
/// says "see journalctl", and the operator needs the daemon's own reason.
/// `_SYSTEMD_UNIT=` leaves out systemd's messages about the unit.
pub fn journal_tail(unit: &str) -> String {
    format!(
        "{} >&2 2>/dev/null || true",
        Cmd::new("journalctl")
            .arg(format!("_SYSTEMD_UNIT={unit}.service"))
            .arg("-n")
            .arg("3")
            .arg("--no-pager")
            .arg("-o")
            .arg("cat")
    )
}

/// Clears systemd's start limit first: docker.service allows three starts a
/// minute, and an earlier attempt must not make this one fail.
pub fn restart(unit: &str) -> String {
    format!(
        "{} >/dev/null 2>&1 || true\nif ! {}; then\n  {}\n  exit 1\nfi\n",
        Cmd::new("systemctl")
            .arg("reset-failed")
            .arg("--")
            .arg(unit),
        Cmd::new("systemctl").arg("restart").arg("--").arg(unit),
        journal_tail(unit),
    )
}

/// One check of a health gate. Exit 0 is needed but, for docker and the
/// containers, not enough: `gate_verdict` reads what the check printed.
pub fn gate(gate: &Gate) -> String {
    let active = |unit: &str| {
        Cmd::new("systemctl")
            .arg("is-active")
            .arg("--quiet")
            .arg("--")
            .arg(unit)
            .to_string()
    };
    let curl = |url: &str| {
        // --globoff: an IPv6 address in brackets is not a glob range.
        Cmd::new("curl")
            .arg("-fsS")
            .arg("--globoff")
            .arg("--max-time")
            .arg("3")
            .arg("-o")
            .arg("/dev/null")
            .arg("--")
            .arg(url)
            .to_string()
    };
    // On failure, a unit's journal says why better than the probe does.
    let or_journal = |check: String, unit: &str| {
        format!(
            "if ! {{ {check}; }}; then\n  {}\n  exit 1\nfi\n",
            journal_tail(unit)
        )
    };
    match gate {
        Gate::EtcdGateway => or_journal(
            format!(
                "{} && {}",
                active(crate::desired::ETCD_PROXY_UNIT),
                curl("http://127.0.0.1:2379/health")
            ),
            crate::desired::ETCD_PROXY_UNIT,
        ),
        Gate::Docker { .. } => or_journal(
            format!(
                "{} && {}",
                active(crate::desired::DOCKER_UNIT),
                Cmd::new("docker")
                    .arg("info")
                    .arg("--format")
                    .arg("{{json .}}")
            ),
            crate::desired::DOCKER_UNIT,
        ),
        Gate::Mesos {
            unit,
            address,
            port,
        } => {
            let host = if address.contains(':') {
                format!("[{address}]")
            } else {
                address.clone()
            };
            or_journal(
                format!(
                    "{} && {}",
                    active(unit),
                    curl(&format!("http://{host}:{port}/health"))
                ),
                unit,
            )
        }
        Gate::Container { name } => Cmd::new("docker")
            .arg("inspect")
            .arg("--type")
            .arg("container")
            .arg("--")
            .arg(name)
            .to_string(),
    }
}

/// Every gate of a host checked in one command, for the `min_healthy`
/// watch: one line per gate, `gate EXIT STDOUT STDERR` (base64), so one
/// round trip answers for all of them.
pub fn gates(gates: &[Gate]) -> String {
    let mut s = String::from("e=$(mktemp)\ntrap 'rm -f -- \"$e\"' EXIT\n");
    for gate in gates {
        s.push_str(&format!(
            "o=$( {{ {}\n}} 2>\"$e\" ); r=$?\n\
             printf 'gate %s %s %s\\n' \"$r\" \"$(printf '%s' \"$o\" | base64 | tr -d '\\n')\" \"$(base64 < \"$e\" | tr -d '\\n')\"\n",
            self::gate(gate)
        ));
    }
    s
}

/// Reads what `gates` printed into one verdict per gate, in order.
pub fn gate_verdicts(gates: &[Gate], stdout: &[u8]) -> Vec<Result<(), String>> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("gate "));
    gates
        .iter()
        .map(|gate| {
            let line = lines.next().ok_or("the health check gave no answer")?;
            let mut parts = line.splitn(4, ' ').skip(1);
            let code = parts.next().unwrap_or_default();
            let out =
                crate::facts::base64_decode(parts.next().unwrap_or_default()).unwrap_or_default();
            let err =
                crate::facts::base64_decode(parts.next().unwrap_or_default()).unwrap_or_default();
            if code == "0" {
                gate_verdict(gate, &out)
            } else {
                let tail = String::from_utf8_lossy(&err);
                let tail: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
                Err(if tail.is_empty() {
                    format!("check failed (exit {code})")
                } else {
                    tail[tail.len().saturating_sub(3)..].join(" | ")
                })
            }
        })
        .collect()
}

/// Whether a gate check that exited 0 shows a healthy service.
pub fn gate_verdict(gate: &Gate, stdout: &[u8]) -> Result<(), String> {
    match gate {
        Gate::Docker {
            cluster_store: Some(want),
        } => {
            let info: serde_json::Value = serde_json::from_slice(stdout)
                .map_err(|e| format!("cannot read docker info: {e}"))?;
            let got = info["ClusterStore"].as_str().unwrap_or_default();
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "docker runs with cluster store {got:?}, not {want:?}"
                ))
            }
        }
        Gate::Container { name } => {
            let entries: serde_json::Value = serde_json::from_slice(stdout)
                .map_err(|e| format!("cannot read docker inspect for {name}: {e}"))?;
            let state = &entries[0]["State"];
            match state["Running"].as_bool() {
                Some(true) => Ok(()),
                Some(false) => Err(format!(
                    "{name} is {}",
                    state["Status"].as_str().unwrap_or("not running")
                )),
                None => Err(format!("{name} does not exist")),
            }
        }
        _ => Ok(()),
    }
}

/// Takes back the install of `target`: the saved version goes back in
/// place (atomically), or the file goes when it did not exist before. A
/// unit file also reloads systemd, and a unit that is removed is stopped.
pub fn restore_file(target: &str, existed: bool) -> String {
    let (dir, name) = target.rsplit_once('/').expect("remote paths are absolute");
    let dir = if dir.is_empty() { "/" } else { dir };
    let unit = target
        .strip_prefix("/etc/systemd/system/")
        .and_then(|u| u.strip_suffix(".service"));
    let mut s = String::from("set -eu\n");
    if existed {
        let backup = quote(&backup_path(target));
        s.push_str(&format!(
            "[ -e {backup} ] || {{ echo {msg} >&2; exit 1; }}\n\
             tmp=$(mktemp -- {template})\n\
             trap 'rm -f -- \"$tmp\"' EXIT\n\
             cp -p -- {backup} \"$tmp\"\n\
             mv -f -- \"$tmp\" {target}\n\
             trap - EXIT\n",
            msg = quote(&format!("no saved copy of {target} to put back")),
            template = quote(&format!("{dir}/.{name}.calico-rollout.XXXXXX")),
            target = quote(target),
        ));
    } else {
        if let Some(unit) = unit {
            s.push_str(&format!(
                "{} >/dev/null 2>&1 || true\n",
                Cmd::new("systemctl")
                    .arg("disable")
                    .arg("--now")
                    .arg("--")
                    .arg(unit)
            ));
        }
        s.push_str(&format!("rm -f -- {}\n", quote(target)));
    }
    if unit.is_some() {
        s.push_str("systemctl daemon-reload\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs a script under the local sh, the way the agent would.
    fn sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn install_replaces_atomically_and_refuses_damaged_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("conf dir").join("it's.json");
        let target = target.to_str().unwrap();
        let new = b"{\"new\": true}\n";
        let sha = crate::desired::sha256_hex(new);

        // Installing somewhere the state folder cannot be written is fine
        // when there is nothing to back up yet.
        let out = sh(&install(target, 0o640, &sha, false, None), new);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(target).unwrap(), new);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);

        // A truncated transfer leaves the old file in place and no temp file.
        let out = sh(&install(target, 0o640, &sha, false, None), b"{\"ne");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to install"));
        assert_eq!(std::fs::read(target).unwrap(), new);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("conf dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn restore_puts_the_saved_copy_back_or_removes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("calico.cni");
        let target = target.to_str().unwrap();
        std::fs::write(target, "new").unwrap();
        let out = sh(&restore_file(target, false), b"");
        assert!(out.status.success());
        assert!(!std::path::Path::new(target).exists());

        // Without its saved copy, a file that existed is left alone, loudly.
        std::fs::write(target, "new").unwrap();
        let out = sh(&restore_file(target, true), b"");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no saved copy"));
        assert_eq!(std::fs::read(target).unwrap(), b"new");
    }

    #[test]
    fn all_gates_are_checked_in_one_script() {
        let dir = tempfile::tempdir().unwrap();
        // Stand-ins for the programs the gates call: docker answers with a
        // running container, systemctl says the unit is down.
        std::fs::write(
            dir.path().join("docker"),
            "#!/bin/sh\necho '[{\"State\": {\"Running\": true}}]'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("systemctl"), "#!/bin/sh\nexit 3\n").unwrap();
        std::fs::write(
            dir.path().join("journalctl"),
            "#!/bin/sh\necho 'dockerd: invalid config'\n",
        )
        .unwrap();
        for f in ["docker", "systemctl", "journalctl"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let checks = [
            Gate::Container {
                name: "calico-node".into(),
            },
            Gate::Docker {
                cluster_store: None,
            },
        ];
        let script = format!("PATH={}:$PATH\n{}", dir.path().display(), gates(&checks));
        let out = sh(&script, b"");
        assert!(out.status.success());
        let verdicts = gate_verdicts(&checks, &out.stdout);
        assert_eq!(verdicts[0], Ok(()));
        assert_eq!(verdicts[1], Err("dockerd: invalid config".to_string()));
    }

    #[test]
    fn gate_verdict_table() {
        let docker = Gate::Docker {
            cluster_store: Some("etcd://127.0.0.1:2379".into()),
        };
        assert!(gate_verdict(&docker, br#"{"ClusterStore": "etcd://127.0.0.1:2379"}"#).is_ok());
        let e = gate_verdict(&docker, br#"{"ClusterStore": ""}"#).unwrap_err();
        assert!(e.contains("not \"etcd://127.0.0.1:2379\""), "{e}");
        let node = Gate::Container {
            name: "calico-node".into(),
        };
        assert!(gate_verdict(&node, br#"[{"State": {"Running": true}}]"#).is_ok());
        let e = gate_verdict(
            &node,
            br#"[{"State": {"Running": false, "Status": "exited"}}]"#,
        )
        .unwrap_err();
        assert_eq!(e, "calico-node is exited");
        assert_eq!(
            gate_verdict(&node, b"[]").unwrap_err(),
            "calico-node does not exist"
        );
    }

    #[test]
    fn gate_scripts_quote_their_values() {
        let s = gate(&Gate::Mesos {
            unit: "dcos-mesos-slave".into(),
            address: "fd00::1".into(),
            port: 5051,
        });
        assert!(s.contains("http://[fd00::1]:5051/health"), "{s}");
        assert!(
            s.starts_with("if ! { systemctl is-active --quiet -- dcos-mesos-slave &&"),
            "{s}"
        );
        assert!(
            s.contains("journalctl '_SYSTEMD_UNIT=dcos-mesos-slave.service'"),
            "{s}"
        );
        assert!(s.contains("curl -fsS --globoff"), "{s}");
        let s = gate(&Gate::Container {
            name: "calico-node".into(),
        });
        assert_eq!(s, "docker inspect --type container -- calico-node");
    }
}
