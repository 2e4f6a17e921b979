//! Host certificates, judged as OpenSSH does against `@cert-authority`
//! lines in known_hosts: the certificate must be a host certificate, signed
//! by an authority listed for the host (port-aware patterns, as for keys),
//! valid now, and list the name that was dialled among its principals.
//! `@revoked` wins: a revoked authority, or a revoked certificate key, is
//! refused whatever else holds.
//!
//! Hashed host patterns are not matched on `@cert-authority` lines (OpenSSH
//! allows them; fleets that use authorities list plain patterns).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use russh::keys::{Certificate, PublicKey};

use super::TransportError;
use super::known_hosts::{Verdict, check_file, fingerprint, host_pattern, verify_host_key};
use crate::inventory::HostKeyChecking;

/// What the known_hosts file says about a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// Signed by a listed authority and valid for this host now.
    Trusted,
    /// No `@cert-authority` line covers the host: the certificate's plain
    /// key is checked instead.
    NoAuthority,
    /// Refused, and why, in words for the operator.
    Refused { reason: String, revoked: bool },
}

/// The verdict of the known_hosts file at `path` on `cert`, offered by
/// `host_name:port` at `now`.
pub fn check_certificate(
    path: &Path,
    host_name: &str,
    port: u16,
    cert: &Certificate,
    now: SystemTime,
) -> Result<CertVerdict, TransportError> {
    let entries = super::known_hosts::file_entries(path, host_name, port)?;
    Ok(judge(
        cert,
        (host_name, port),
        &entries.authorities,
        &entries.revoked,
        now,
    ))
}

/// The full decision on a certificate the host offered. Without an
/// authority for the host, its plain key is checked as any key would be.
/// A refused certificate whose plain key is recorded for the host is still
/// accepted, as OpenSSH does, unless something in it is revoked. Blocking
/// file I/O: run it off the async runtime.
pub fn verify_certificate(
    known_hosts: &Path,
    checking: HostKeyChecking,
    write_lock: &Mutex<()>,
    host_name: &str,
    port: u16,
    cert: &Certificate,
) -> Result<(), TransportError> {
    let plain = PublicKey::new(cert.public_key().clone(), "");
    match check_certificate(known_hosts, host_name, port, cert, SystemTime::now())? {
        CertVerdict::Trusted => {
            tracing::debug!(
                host = host_name,
                id = cert.key_id(),
                "host certificate trusted"
            );
            Ok(())
        }
        CertVerdict::NoAuthority => {
            verify_host_key(known_hosts, checking, write_lock, host_name, port, &plain)
        }
        CertVerdict::Refused { reason, revoked } => {
            if !revoked && check_file(known_hosts, host_name, port, &plain)? == Verdict::Known {
                return Ok(());
            }
            Err(TransportError::HostCertificate {
                host: host_pattern(host_name, port),
                reason,
                known_hosts: known_hosts.display().to_string(),
            })
        }
    }
}

fn judge(
    cert: &Certificate,
    (host_name, port): (&str, u16),
    authorities: &[PublicKey],
    revoked: &[PublicKey],
    now: SystemTime,
) -> CertVerdict {
    let refuse = |reason: String| CertVerdict::Refused {
        reason,
        revoked: false,
    };
    let ca = PublicKey::new(cert.signature_key().clone(), "");
    let own = PublicKey::new(cert.public_key().clone(), "");
    if let Some(which) = [(&ca, "its certificate authority"), (&own, "its key")]
        .into_iter()
        .find(|(k, _)| revoked.iter().any(|r| r.key_data() == k.key_data()))
    {
        return CertVerdict::Refused {
            reason: format!("{} {} is marked @revoked", which.1, fingerprint(which.0)),
            revoked: true,
        };
    }
    if authorities.is_empty() {
        return CertVerdict::NoAuthority;
    }
    if !cert.cert_type().is_host() {
        return refuse("it is a user certificate, not a host certificate".into());
    }
    if !authorities.iter().any(|a| a.key_data() == ca.key_data()) {
        return refuse(format!(
            "it is signed by {}, which is not a @cert-authority for {}",
            fingerprint(&ca),
            host_pattern(host_name, port)
        ));
    }
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let at =
        |t: u64| humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(t));
    if secs < cert.valid_after() {
        return refuse(format!("it is not valid before {}", at(cert.valid_after())));
    }
    if secs >= cert.valid_before() {
        return refuse(format!("it expired at {}", at(cert.valid_before())));
    }
    let ca_fp = ca.fingerprint(russh::keys::HashAlg::Sha256);
    if cert.validate_at(secs, [&ca_fp]).is_err() {
        return refuse("its signature does not verify".into());
    }
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return refuse("it lists no principals (host names)".into());
    }
    if !principals.iter().any(|p| p.eq_ignore_ascii_case(host_name)) {
        return refuse(format!(
            "it is for {}, not for {host_name}, the name dialled",
            principals.join(", ")
        ));
    }
    if let Some((name, _)) = cert.critical_options().iter().next() {
        return refuse(format!("it has the critical option {name}, unknown here"));
    }
    CertVerdict::Trusted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A CA, a host key signed by it, and a known_hosts file, made by
    /// ssh-keygen in a temporary folder.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Self {
            let pki = Pki {
                dir: tempfile::tempdir().unwrap(),
            };
            for name in ["ca", "other_ca", "host"] {
                pki.keygen(&["-q", "-N", "", "-t", "ed25519", "-f", name]);
            }
            pki
        }

        fn keygen(&self, args: &[&str]) {
            let out = Command::new("ssh-keygen")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ssh-keygen {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn public(&self, name: &str) -> String {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.pub")));
            let text = text.unwrap();
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        }

        /// Signs the host key; `extra` goes before the key (`-h`, `-n`, `-V`…).
        fn cert(&self, ca: &str, extra: &[&str]) -> Certificate {
            let mut args = vec!["-q", "-s", ca, "-I", "test-host"];
            args.extend_from_slice(extra);
            args.push("host.pub");
            self.keygen(&args);
            Certificate::read_file(&self.dir.path().join("host-cert.pub")).unwrap()
        }

        fn verdict(
            &self,
            known_hosts: &str,
            host: &str,
            port: u16,
            cert: &Certificate,
        ) -> CertVerdict {
            let path = self.dir.path().join("known_hosts");
            std::fs::write(&path, known_hosts).unwrap();
            check_certificate(&path, host, port, cert, SystemTime::now()).unwrap()
        }
    }

    fn reason(v: CertVerdict) -> String {
        match v {
            CertVerdict::Refused { reason, .. } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_host_certificate_from_a_listed_authority_is_trusted() {
        let pki = Pki::new();
        let cert = pki.cert("ca", &["-h", "-n", "agent-1,10.0.0.11"]);
        let kh = format!("@cert-authority agent-*,10.0.0.* {}\n", pki.public("ca"));
        assert_eq!(pki.verdict(&kh, "agent-1", 22, &cert), CertVerdict::Trusted);
        assert_eq!(
            pki.verdict(&kh, "10.0.0.11", 22, &cert),
            CertVerdict::Trusted
        );
        // Patterns are port-aware, as for keys.
        let kh = format!("@cert-authority [agent-1]:2222 {}\n", pki.public("ca"));
        assert_eq!(
            pki.verdict(&kh, "agent-1", 2222, &cert),
            CertVerdict::Trusted
        );
        assert_eq!(
            pki.verdict(&kh, "agent-1", 22, &cert),
            CertVerdict::NoAuthority
        );
    }

    #[test]
    fn the_dialled_name_must_be_a_principal() {
        let pki = Pki::new();
        let cert = pki.cert("ca", &["-h", "-n", "agent-1"]);
        let kh = format!("@cert-authority * {}\n", pki.public("ca"));
        assert_eq!(
            reason(pki.verdict(&kh, "agent-2", 22, &cert)),
            "it is for agent-1, not for agent-2, the name dialled"
        );
        let cert = pki.cert("ca", &["-h"]);
        assert_eq!(
            reason(pki.verdict(&kh, "agent-1", 22, &cert)),
            "it lists no principals (host names)"
        );
    }

    #[test]
    fn only_a_listed_authority_signs_for_the_host() {
        let pki = Pki::new();
        let cert = pki.cert("other_ca", &["-h", "-n", "agent-1"]);
        let kh = format!("@cert-authority * {}\n", pki.public("ca"));
        let said = reason(pki.verdict(&kh, "agent-1", 22, &cert));
        assert!(
            said.ends_with("which is not a @cert-authority for agent-1"),
            "{said}"
        );
        // An authority for other hosts only says nothing about this one.
        let kh = format!("@cert-authority *.prod {}\n", pki.public("other_ca"));
        assert_eq!(
            pki.verdict(&kh, "agent-1", 22, &cert),
            CertVerdict::NoAuthority
        );
    }

    #[test]
    fn user_certificates_are_not_host_certificates() {
        let pki = Pki::new();
        let cert = pki.cert("ca", &["-n", "agent-1"]);
        let kh = format!("@cert-authority * {}\n", pki.public("ca"));
        assert_eq!(
            reason(pki.verdict(&kh, "agent-1", 22, &cert)),
            "it is a user certificate, not a host certificate"
        );
    }

    #[test]
    fn certificates_are_valid_only_in_their_window() {
        let pki = Pki::new();
        let kh = format!("@cert-authority * {}\n", pki.public("ca"));
        let expired = pki.cert("ca", &["-h", "-n", "agent-1", "-V", "20200101:20210101"]);
        assert_eq!(
            reason(pki.verdict(&kh, "agent-1", 22, &expired)),
            "it expired at 2021-01-01T00:00:00Z"
        );
        let future = pki.cert("ca", &["-h", "-n", "agent-1", "-V", "+52w:+53w"]);
        let said = reason(pki.verdict(&kh, "agent-1", 22, &future));
        assert!(said.starts_with("it is not valid before "), "{said}");
    }

    #[test]
    fn a_refused_certificate_falls_back_to_a_recorded_key_unless_revoked() {
        let pki = Pki::new();
        let cert = pki.cert("ca", &["-h", "-n", "agent-1"]);
        let path = pki.dir.path().join("known_hosts");
        let lock = Mutex::new(());
        let verify = |text: String| {
            std::fs::write(&path, text).unwrap();
            verify_certificate(&path, HostKeyChecking::Strict, &lock, "agent-2", 22, &cert)
        };
        let trust = format!("@cert-authority * {}\n", pki.public("ca"));
        let err = verify(trust.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "host certificate of agent-2 refused: it is for agent-1, not for agent-2"
            ),
            "{err}"
        );
        verify(format!("{trust}agent-2 {}\n", pki.public("host"))).unwrap();
        let revoked = format!(
            "{trust}agent-2 {}\n@revoked * {}\n",
            pki.public("host"),
            pki.public("ca")
        );
        assert!(verify(revoked).is_err());
        // No authority: the plain key decides, as before certificates.
        let err = verify(String::new()).unwrap_err();
        assert!(
            matches!(err, TransportError::HostKeyUnknown { .. }),
            "{err}"
        );
    }

    #[test]
    fn revoked_authorities_and_keys_win() {
        let pki = Pki::new();
        let cert = pki.cert("ca", &["-h", "-n", "agent-1"]);
        let trust = format!("@cert-authority * {}\n", pki.public("ca"));
        for revoked in ["ca", "host"] {
            let kh = format!("{trust}@revoked * {}\n", pki.public(revoked));
            match pki.verdict(&kh, "agent-1", 22, &cert) {
                CertVerdict::Refused { reason, revoked } => {
                    assert!(revoked);
                    assert!(reason.ends_with("is marked @revoked"), "{reason}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        let said = reason(pki.verdict(
            &format!("{trust}@revoked * {}\n", pki.public("ca")),
            "agent-1",
            22,
            &cert,
        ));
        assert!(
            said.starts_with("its certificate authority SHA256:"),
            "{said}"
        );
    }
}
