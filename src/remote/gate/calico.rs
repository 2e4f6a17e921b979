//! The gates that prove Calico works, not only that its containers run:
//! Felix answers ready, BIRD's BGP sessions are Established, and the
//! libnetwork plugin answers on both of its sockets as Docker calls it.

use crate::bgp::{self, Session};
use crate::desired::{LIBNETWORK_SOCKETS, NODE_CONTAINER};
use crate::remote::bird;
use crate::shell::{Cmd, quote};
use crate::steps::Mesh;

/// `/liveness` and `/readiness` on Felix's health port, their status
/// codes printed as `Liveness=` and `Readiness=`.
pub(super) fn felix_check(port: u16) -> String {
    let code = |path: &str| {
        Cmd::new("curl")
            .arg("-sS")
            .arg("--max-time")
            .arg("3")
            .arg("-o")
            .arg("/dev/null")
            .arg("-w")
            .arg("%{http_code}")
            .arg("--")
            .arg(format!("http://127.0.0.1:{port}/{path}"))
            .to_string()
    };
    format!(
        "l=$({}); printf 'Liveness=%s\\n' \"$l\"\n\
         y=$({}); printf 'Readiness=%s\\n' \"$y\"\n\
         [ \"$l\" = 200 ] && [ \"$y\" = 200 ]\n",
        code("liveness"),
        code("readiness"),
    )
}

/// Felix's verdict from the codes `felix_check` printed.
pub(super) fn felix_reading(port: u16, out: &str, err: &str) -> Result<(), String> {
    let code = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    let (live, ready) = (code("Liveness="), code("Readiness="));
    match (live.as_str(), ready.as_str()) {
        ("200", "200") => Ok(()),
        ("000" | "", _) => Err(format!(
            "Felix's health endpoint on port {port} does not answer{}",
            reason(err)
        )),
        ("200", ready) => Err(format!("Felix is not ready: /readiness answered {ready}")),
        (live, _) => Err(format!("Felix is not live: /liveness answered {live}")),
    }
}

/// BIRD's table, read inside the calico-node container.
pub(super) fn bgp_check(mesh: &Mesh) -> String {
    format!(
        "timeout -k 1 10 {}\n",
        bird::show_protocols(NODE_CONTAINER, mesh.ipv6)
    )
}

/// The sessions read, when they are what `mesh` waits for; otherwise
/// which peers are still down and how.
pub fn bgp_reading(mesh: &Mesh, ok: bool, out: &str, err: &str) -> Result<Vec<Session>, String> {
    let sessions = match bgp::parse(out) {
        Ok(s) => s,
        Err(_) if !ok && !err.trim().is_empty() => {
            return Err(format!("cannot read BIRD's sessions: {}", last_line(err)));
        }
        Err(e) => return Err(format!("cannot read BIRD's sessions: {e}")),
    };
    let verdict = mesh.verdict(&sessions);
    verdict.map(|()| sessions)
}

impl Mesh {
    /// Passes when every session Established before is Established again,
    /// and at least `at_least` are (or all BIRD has, when it has fewer: the
    /// first node of a mesh has no peer yet).
    pub fn verdict(&self, sessions: &[Session]) -> Result<(), String> {
        let mut down: Vec<String> = Vec::new();
        for name in &self.before {
            match sessions.iter().find(|s| &s.name == name) {
                Some(s) if s.established() => {}
                Some(s) => down.push(s.describe()),
                None => down.push(format!(
                    "{} (no longer configured)",
                    Session {
                        name: name.clone(),
                        state: String::new(),
                        info: String::new(),
                    }
                    .peer()
                )),
            }
        }
        if !down.is_empty() {
            return Err(format!(
                "waiting for {} BGP peer{}: {}",
                down.len(),
                if down.len() == 1 { "" } else { "s" },
                down.join(", ")
            ));
        }
        let up = sessions.iter().filter(|s| s.established()).count();
        let need = self.at_least.min(sessions.len());
        if up < need {
            let others: Vec<String> = sessions
                .iter()
                .filter(|s| !s.established())
                .map(Session::describe)
                .collect();
            return Err(format!(
                "{up} of {} BGP sessions Established, {need} needed: {}",
                sessions.len(),
                others.join(", ")
            ));
        }
        Ok(())
    }
}

/// `Plugin.Activate` and the driver's capabilities on each of the
/// plugin's sockets, POSTed as Docker calls them, printed as
/// `<Key>=<answer>`.
pub(super) fn plugin_check() -> String {
    plugin_check_at(&LIBNETWORK_SOCKETS)
}

fn plugin_check_at(sockets: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (socket, driver) in sockets {
        // curl alone would blame "localhost port 80" for a missing socket.
        s.push_str(&format!(
            "[ -S {sock} ] || {{ echo {missing} >&2; exit 1; }}\n",
            sock = quote(socket),
            missing = quote(&format!("{socket}: no such socket")),
        ));
        for (key, path) in [
            (format!("{driver}.Activate"), "Plugin.Activate".to_string()),
            (
                format!("{driver}.Caps"),
                format!("{driver}.GetCapabilities"),
            ),
        ] {
            let curl = Cmd::new("curl")
                .arg("-fsS")
                .arg("--max-time")
                .arg("3")
                .arg("--unix-socket")
                .arg(socket)
                .arg("-H")
                .arg("Accept: application/vnd.docker.plugins.v1.2+json")
                .arg("-d")
                .arg("{}")
                .arg("--")
                .arg(format!("http://localhost/{path}"));
            // curl's exit status says what went wrong better than its
            // text: 7, a socket nobody listens on (a plugin that stopped
            // leaves its sockets); 28, a plugin that never answers.
            s.push_str(&format!(
                "a=$({curl} 2>/dev/null); c=$?\n\
                 case $c in 0) ;; \
                 7) echo {refused} >&2; exit 1 ;; \
                 28) echo {silent} >&2; exit 1 ;; \
                 *) echo {failed}\" (curl exit $c)\" >&2; exit 1 ;; esac\n\
                 printf '%s=%s\\n' {key} \"$a\"\n",
                refused = quote(&format!(
                    "{socket}: nothing listens on it (the plugin is not running)"
                )),
                silent = quote(&format!("{socket}: POST /{path} got no answer within 3s")),
                failed = quote(&format!("{socket}: POST /{path} failed")),
                key = quote(&key),
            ));
        }
    }
    s
}

/// The plugin's verdict from what `plugin_check` printed.
pub(super) fn plugin_reading(out: &str) -> Result<(), String> {
    for (socket, driver) in LIBNETWORK_SOCKETS {
        let answer = |key: String| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        };
        let activate = answer(format!("{driver}.Activate"))
            .ok_or_else(|| format!("{socket}: Plugin.Activate gave no JSON answer"))?;
        let implements = activate["Implements"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !implements.iter().any(|d| d.as_str() == Some(driver)) {
            return Err(format!(
                "{socket}: Plugin.Activate does not name {driver} in Implements (it answered {activate})"
            ));
        }
        let caps = answer(format!("{driver}.Caps"))
            .ok_or_else(|| format!("{socket}: {driver}.GetCapabilities gave no JSON answer"))?;
        if !caps.is_object() {
            return Err(format!(
                "{socket}: {driver}.GetCapabilities answered {caps}"
            ));
        }
    }
    Ok(())
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn reason(err: &str) -> String {
    match last_line(err) {
        "" => String::new(),
        l => format!(" ({l})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, info: &str) -> Session {
        Session {
            name: name.into(),
            state: if info == "Established" { "up" } else { "start" }.into(),
            info: info.into(),
        }
    }

    #[test]
    fn a_mesh_passes_when_every_session_up_before_is_up_again() {
        let mesh = Mesh {
            before: vec!["Mesh_10_0_0_12".into(), "Mesh_10_0_0_13".into()],
            at_least: 1,
            ipv6: false,
        };
        let both = [
            session("Mesh_10_0_0_12", "Established"),
            session("Mesh_10_0_0_13", "Established"),
            session("Mesh_10_0_0_14", "Active Socket: Connection refused"),
        ];
        assert_eq!(mesh.verdict(&both), Ok(()));
        let one = [
            session("Mesh_10_0_0_12", "Connect"),
            session("Mesh_10_0_0_13", "Established"),
        ];
        assert_eq!(
            mesh.verdict(&one).unwrap_err(),
            "waiting for 1 BGP peer: 10.0.0.12 Connect"
        );
        let gone = [session("Mesh_10_0_0_13", "Established")];
        assert_eq!(
            mesh.verdict(&gone).unwrap_err(),
            "waiting for 1 BGP peer: 10.0.0.12 (no longer configured)"
        );
    }

    #[test]
    fn a_fresh_node_needs_min_bgp_peers_or_every_peer_it_has() {
        let fresh = Mesh {
            before: vec![],
            at_least: 2,
            ipv6: false,
        };
        let table = [
            session("Mesh_10_0_0_12", "Established"),
            session("Mesh_10_0_0_13", "Active Socket: Connection refused"),
            session("Mesh_10_0_0_14", "Connect"),
        ];
        assert_eq!(
            fresh.verdict(&table).unwrap_err(),
            "1 of 3 BGP sessions Established, 2 needed: \
             10.0.0.13 Active (Socket: Connection refused), 10.0.0.14 Connect"
        );
        // The first node of a mesh has no peer to wait for.
        assert_eq!(fresh.verdict(&[]), Ok(()));
        let one = [session("Mesh_10_0_0_12", "Established")];
        assert_eq!(fresh.verdict(&one), Ok(()));
    }

    #[test]
    fn felix_must_be_live_and_ready() {
        assert_eq!(
            felix_reading(9099, "Liveness=200\nReadiness=200\n", ""),
            Ok(())
        );
        assert_eq!(
            felix_reading(9099, "Liveness=200\nReadiness=503\n", ""),
            Err("Felix is not ready: /readiness answered 503".into())
        );
        assert_eq!(
            felix_reading(9099, "Liveness=000\nReadiness=000\n", "curl: (7) Failed to connect\n"),
            Err("Felix's health endpoint on port 9099 does not answer (curl: (7) Failed to connect)".into())
        );
    }

    /// Runs the plugin check against sockets in a temporary folder.
    fn check_plugin(dir: &std::path::Path) -> (bool, String, String) {
        let net = dir.join("calico.sock").display().to_string();
        let ipam = dir.join("calico-ipam.sock").display().to_string();
        let out = crate::remote::testing::sh(
            &plugin_check_at(&[(&net, "NetworkDriver"), (&ipam, "IpamDriver")]),
            b"",
        );
        (
            out.status.success(),
            crate::remote::testing::stdout(&out),
            crate::remote::testing::stderr(&out),
        )
    }

    /// A plugin on `path` that answers every request with its driver.
    fn serve(path: std::path::PathBuf, driver: &'static str) {
        use std::io::{Read, Write};
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let mut req = [0u8; 4096];
                let n = conn.read(&mut req).unwrap_or(0);
                let req = String::from_utf8_lossy(&req[..n]);
                let body = if req.contains("Plugin.Activate") {
                    format!("{{\"Implements\": [\"{driver}\"]}}")
                } else {
                    "{\"Scope\": \"global\"}".to_string()
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    #[test]
    fn a_missing_or_stale_socket_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let (ok, _, err) = check_plugin(dir.path());
        assert!(!ok);
        assert!(err.trim().ends_with("calico.sock: no such socket"), "{err}");

        // A plugin that stopped leaves its socket behind, and nobody listens.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join("calico.sock")).unwrap());
        let (ok, _, err) = check_plugin(dir.path());
        assert!(!ok);
        assert!(
            err.trim()
                .ends_with("calico.sock: nothing listens on it (the plugin is not running)"),
            "{err}"
        );
    }

    #[test]
    fn a_plugin_that_answers_on_both_sockets_passes() {
        let dir = tempfile::tempdir().unwrap();
        serve(dir.path().join("calico.sock"), "NetworkDriver");
        serve(dir.path().join("calico-ipam.sock"), "IpamDriver");
        let (ok, out, err) = check_plugin(dir.path());
        assert!(ok, "{err}");
        assert_eq!(plugin_reading(&out), Ok(()), "{out}");
    }

    #[test]
    fn the_plugin_must_name_its_driver_on_each_socket() {
        let good = "NetworkDriver.Activate={\"Implements\": [\"NetworkDriver\"]}\n\
                    NetworkDriver.Caps={\"Scope\":\"global\"}\n\
                    IpamDriver.Activate={\"Implements\": [\"IpamDriver\"]}\n\
                    IpamDriver.Caps={\"RequiresMACAddress\":false}\n";
        assert_eq!(plugin_reading(good), Ok(()));
        let wrong = good.replace("[\"IpamDriver\"]", "[\"NetworkDriver\"]");
        let e = plugin_reading(&wrong).unwrap_err();
        assert!(
            e.starts_with(
                "/run/docker/plugins/calico-ipam.sock: Plugin.Activate does not name IpamDriver"
            ),
            "{e}"
        );
    }
}
