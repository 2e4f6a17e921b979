//! `etcd.tls`: the CA and client certificate and key that every etcd
//! client on the agents uses. The three files are read here, once: each
//! must be PEM of the right kind, and the key must be as private as
//! OpenSSH wants a private key to be.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::check::Checker;
use crate::inventory::raw::{RawTls, Str};
use crate::inventory::{Endpoint, EtcdTls, TlsFile};

/// What each of the three files must hold.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Ca,
    Cert,
    Key,
}

impl Kind {
    fn key_name(self) -> &'static str {
        match self {
            Kind::Ca => "ca",
            Kind::Cert => "cert",
            Kind::Key => "key",
        }
    }

    fn wants(self) -> &'static str {
        match self {
            Kind::Ca => "one or more PEM certificates (-----BEGIN CERTIFICATE-----)",
            Kind::Cert => "a PEM certificate (-----BEGIN CERTIFICATE-----)",
            Kind::Key => "a PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)",
        }
    }

    fn accepts(self, label: &str) -> bool {
        match self {
            Kind::Ca | Kind::Cert => label == "CERTIFICATE",
            Kind::Key => matches!(label, "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"),
        }
    }
}

impl Checker<'_> {
    /// `etcd.tls`, or `None` (with the problems recorded) when absent or bad.
    pub(super) fn etcd_tls(&mut self, raw: &Spanned<RawTls>) -> Option<EtcdTls> {
        let t = &raw.value;
        let ca = self.tls_file(t.ca.as_ref(), Kind::Ca, raw.referenced);
        let cert = self.tls_file(t.cert.as_ref(), Kind::Cert, raw.referenced);
        let key = self.tls_file(t.key.as_ref(), Kind::Key, raw.referenced);
        Some(EtcdTls {
            ca: ca?,
            cert: cert?,
            key: key?,
        })
    }

    fn tls_file(&mut self, s: Option<&Str>, kind: Kind, section: Location) -> Option<TlsFile> {
        let name = kind.key_name();
        let Some(s) = s else {
            self.report(
                section,
                format!(
                    "`tls` needs `{name}`: `ca`, `cert` and `key` go together (the CA that \
                     signed the etcd members' certificates, and the client certificate and key)"
                ),
            );
            return None;
        };
        let at = s.referenced;
        let path = match self.local_path(&s.value, &format!("etcd.tls {name}")) {
            Ok(p) => p,
            Err(e) => {
                self.report(at, e.to_string());
                return None;
            }
        };
        let shown = path.display();
        let content = match fs::read(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.report(at, format!("etcd.tls {name} file {shown} does not exist"));
                return None;
            }
            Err(e) => {
                self.report(at, format!("cannot read etcd.tls {name} file {shown}: {e}"));
                return None;
            }
        };
        if let Kind::Key = kind
            && let Some(mode) = too_open(&path)
        {
            // OpenSSH's words, so that the fix is the familiar one.
            self.report(
                at,
                format!(
                    "permissions {mode:04o} for '{shown}' are too open: the etcd client key must \
                     not be readable by group or others (chmod 600 '{shown}')"
                ),
            );
            return None;
        }
        if let Err(why) = check_pem(&content, kind) {
            self.report(
                at,
                format!(
                    "etcd.tls {name} file {shown} {why}; it must hold {}",
                    kind.wants()
                ),
            );
            return None;
        }
        Some(TlsFile {
            path,
            content: Arc::from(content),
        })
    }

    /// http:// endpoints with `tls`, https:// ones without it: every client
    /// on the agent gets the same settings, so they cannot be mixed.
    pub(super) fn endpoint_tls(&mut self, ep: &Endpoint, at: Location, tls: bool) -> bool {
        let message = match (ep.is_tls(), tls) {
            (true, false) => format!(
                "etcd endpoint {ep} uses TLS, but `etcd` has no `tls`: add \
                 `tls: {{ca: …, cert: …, key: …}}` (the CA file, and the client certificate and \
                 key that Docker, Calico and the CNI plugin present)"
            ),
            (false, true) => format!(
                "etcd endpoint {ep} is plain http://, but `etcd.tls` is set: every client \
                 talks TLS with those files, so list https:// endpoints (or remove `tls`)"
            ),
            _ => return true,
        };
        self.report(at, message);
        false
    }
}

/// The key file's permission bits when group or others may read it.
fn too_open(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Checks that `content` is PEM with at least one block, every block of
/// the kind wanted. Text outside the blocks (openssl's comments) is allowed.
/// The error never quotes the file: it may be a key.
fn check_pem(content: &[u8], kind: Kind) -> Result<(), String> {
    let text = std::str::from_utf8(content).map_err(|_| "is not text".to_string())?;
    let mut blocks = 0;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let Some(end_at) = block.find("-----END ") else {
            return Err("has a PEM block that never ends".into());
        };
        let tail = &block[end_at + "-----END ".len()..];
        let Some(close) = tail.find("-----") else {
            return Err("has a PEM block that never ends".into());
        };
        let len = end_at + "-----END ".len() + close + "-----".len();
        let (label, _) = pem_rfc7468::decode_vec(&block.as_bytes()[..len])
            .map_err(|e| format!("has a PEM block that does not decode ({e})"))?;
        if !kind.accepts(label) {
            return Err(format!("holds a {label:?} PEM block"));
        }
        blocks += 1;
        rest = &block[len..];
    }
    if blocks == 0 {
        return Err("is not PEM".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_checked_for_their_kind() {
        // "hello" in base64: the decoder checks the armour, not the DER.
        let cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
        assert_eq!(check_pem(cert.as_bytes(), Kind::Ca), Ok(()));
        let bundle = format!("subject=CN = x\n{cert}{cert}");
        assert_eq!(check_pem(bundle.as_bytes(), Kind::Ca), Ok(()));
        assert_eq!(check_pem(key.as_bytes(), Kind::Key), Ok(()));
        let wrong = check_pem(key.as_bytes(), Kind::Cert).unwrap_err();
        assert_eq!(wrong, "holds a \"PRIVATE KEY\" PEM block");
        assert_eq!(check_pem(b"not pem", Kind::Ca).unwrap_err(), "is not PEM");
        let cut = &cert[..40];
        assert!(check_pem(cut.as_bytes(), Kind::Ca).is_err());
        let bad = cert.replace("aGVsbG8=", "!!!!");
        assert!(
            check_pem(bad.as_bytes(), Kind::Ca)
                .unwrap_err()
                .contains("does not decode")
        );
    }
}
