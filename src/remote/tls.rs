//! The TLS loopback check of preflight. Behind the gateway (a plain TCP
//! pass-through) every client talks TLS to 127.0.0.1:2379 and checks the
//! member's certificate against 127.0.0.1; this asks each member the way
//! they will, from the agent, with the run's own CA and client certificate,
//! before anything is installed.
//!
//! The files travel on stdin (the key is a secret: never in argv) into a
//! root-only temporary folder, under /run when it exists (memory, not
//! disk), removed when the script ends.

use std::time::Duration;

use super::Script;
use crate::desired::TlsDesired;
use crate::shell::quote;

/// The line between the CA and the client certificate and key on stdin.
const SPLIT: &str = "calico-rollout-tls-split";

/// What the check reads on stdin: the CA, [`SPLIT`], then the client
/// certificate and its key, which curl reads from one file.
pub fn payload(tls: &TlsDesired) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in tls.files.iter().enumerate() {
        out.extend_from_slice(&f.content);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        if i == 0 {
            out.extend_from_slice(SPLIT.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// Prints one line per member: `MEMBER CODE CURL-MESSAGE`.
pub fn loopback(members: &[String], deadline: Duration) -> Script {
    let mut checks = String::new();
    for m in members {
        let curl = format!(
            "curl -fsS --max-time 3 -o /dev/null --cacert \"$d/ca.pem\" --cert \"$d/client.pem\" \
             --connect-to {} -- https://127.0.0.1:2379/health",
            quote(&format!("127.0.0.1:2379:{m}"))
        );
        checks.push_str(&format!(
            "o=$({curl} 2>&1); r=$?\n\
             printf '%s %s %s\\n' {m} \"$r\" \"$(printf '%s\\n' \"$o\" | head -n 1)\"\n",
            m = quote(m),
        ));
    }
    Script::new(
        "checking that the etcd members' certificates hold for 127.0.0.1",
        deadline,
        format!(
            "umask 077\n\
             base=/tmp; [ -d /run ] && [ -w /run ] && base=/run\n\
             d=$(mktemp -d \"$base/calico-rollout-tls.XXXXXX\") || exit 1\n\
             trap 'rm -rf -- \"$d\"' EXIT\n\
             cat > \"$d/in\" || exit 1\n\
             sed '/^{SPLIT}$/,$d' \"$d/in\" > \"$d/ca.pem\"\n\
             sed '1,/^{SPLIT}$/d' \"$d/in\" > \"$d/client.pem\"\n\
             {checks}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::ManagedFile;
    use crate::facts::{LoopbackTls, parse_tls_loopback};
    use crate::remote::testing::{sh_with_path, stub};

    fn tls() -> TlsDesired {
        let f = |p: &str, c: &str| ManagedFile::new(p.parse().unwrap(), c, 0o644);
        TlsDesired {
            files: vec![
                f("/x/ca.pem", "CA1\nCA2"),
                f("/x/cert.pem", "CERT\n"),
                ManagedFile::secret("/x/key.pem".parse().unwrap(), "KEY\n", 0o600),
            ],
            restarts: None,
            loopback: vec!["etcd-1:2379".into(), "[fd00::1]:2379".into()],
        }
    }

    #[test]
    fn each_member_is_asked_with_the_files_from_stdin_which_are_then_removed() {
        let bin = tempfile::tempdir().unwrap();
        let seen = bin.path().join("seen");
        // A curl that records its arguments and the files it was given,
        // and fails for the second member as curl does for a wrong SAN.
        stub(
            bin.path(),
            "curl",
            &format!(
                "printf '%s\\n' \"$*\" >> {seen}\n\
                 while [ $# -gt 0 ]; do case $1 in --cacert) cat \"$2\" >> {seen}; stat -c %a \"$(dirname \"$2\")\" >> {seen};; --cert) cat \"$2\" >> {seen};; --connect-to) m=$2;; esac; shift; done\n\
                 case $m in *fd00*) echo \"curl: (60) SSL: no alternative certificate subject name matches target host name '127.0.0.1'\" >&2; exit 60;; esac\n",
                seen = seen.display()
            ),
        );
        let t = tls();
        let script = loopback(&t.loopback, Duration::from_secs(5));
        assert!(!script.text.contains("KEY"), "the key is not in the script");
        let out = sh_with_path(&script.text, &payload(&t), Some(bin.path()));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            parse_tls_loopback(&out.stdout),
            [
                LoopbackTls {
                    member: "etcd-1:2379".into(),
                    code: 0,
                    error: String::new()
                },
                LoopbackTls {
                    member: "[fd00::1]:2379".into(),
                    code: 60,
                    error: "curl: (60) SSL: no alternative certificate subject name matches \
                            target host name '127.0.0.1'"
                        .into()
                },
            ]
        );
        let seen = std::fs::read_to_string(&seen).unwrap();
        assert!(
            seen.starts_with("-fsS --max-time 3 -o /dev/null --cacert /run/calico-rollout-tls.")
                || seen.contains("--cacert /tmp/calico-rollout-tls."),
            "{seen}"
        );
        assert!(
            seen.contains(
                "--connect-to 127.0.0.1:2379:etcd-1:2379 -- https://127.0.0.1:2379/health"
            )
        );
        assert!(seen.contains("CA1\nCA2\n700\nCERT\nKEY\n"), "{seen}");
        let dir = seen
            .split_whitespace()
            .find_map(|w| w.strip_suffix("/ca.pem"))
            .unwrap();
        assert!(!std::path::Path::new(dir).exists(), "{dir} is removed");
    }
}
