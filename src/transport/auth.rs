//! Authentication, which never prompts. In order: the inventory's
//! `identity_file`, the keys in ssh-agent (`SSH_AUTH_SOCK`), and, only
//! without an `identity_file`, the default keys `~/.ssh/id_ed25519`,
//! `id_ecdsa`, `id_rsa`. A default key that others can read is skipped, as
//! OpenSSH does (an `identity_file` like that is refused at load).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use tracing::debug;

use super::TransportError;
use super::known_hosts;
use crate::inventory::SshSettings;

/// Tried, when they exist, only when no `identity_file` is set.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// OpenSSH's refusal of a key file others can read, if it is one.
fn too_open(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    crate::inventory::key_too_open(path, &meta)
}

/// A private key file, as far as we could read it.
enum LoadedKey {
    Usable(Box<PrivateKey>),
    /// Passphrase-protected; its public half when we could find it.
    Encrypted(Option<PublicKey>),
    Broken(String),
}

fn load_key(path: &Path) -> LoadedKey {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => LoadedKey::Usable(Box::new(key)),
        Err(e) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let encrypted = matches!(e, russh::keys::Error::KeyIsEncrypted)
                || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
                || text.contains("Proc-Type: 4,ENCRYPTED");
            if !encrypted {
                return LoadedKey::Broken(e.to_string());
            }
            // The public half: `<key>.pub`, or the clear part of an OpenSSH key.
            let mut pub_path = path.as_os_str().to_owned();
            pub_path.push(".pub");
            let public = russh::keys::load_public_key(PathBuf::from(pub_path))
                .ok()
                .or_else(|| {
                    russh::keys::ssh_key::PrivateKey::from_openssh(text.as_bytes())
                        .ok()
                        .map(|k| k.public_key().clone())
                });
            LoadedKey::Encrypted(public)
        }
    }
}

/// Lazily asks the server which RSA signature hash it wants (up to 1 s wait).
async fn rsa_hash<H: client::Handler>(
    handle: &Handle<H>,
    cache: &mut Option<Option<HashAlg>>,
) -> Result<Option<HashAlg>, TransportError> {
    if cache.is_none() {
        let best = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| TransportError::Ssh(format!("negotiating the RSA signature hash: {e}")))?;
        *cache = Some(best.flatten());
    }
    Ok(cache.flatten())
}

async fn try_private_key<H: client::Handler>(
    handle: &mut Handle<H>,
    user: &str,
    key: Box<PrivateKey>,
    rsa_cache: &mut Option<Option<HashAlg>>,
) -> Result<bool, TransportError> {
    let hash = if key.algorithm().is_rsa() {
        rsa_hash(handle, rsa_cache).await?
    } else {
        None
    };
    let key = PrivateKeyWithHashAlg::new(Arc::new(*key), hash);
    match handle.authenticate_publickey(user, key).await {
        Ok(result) => Ok(result.success()),
        Err(e) => {
            debug!("public key authentication failed: {e}");
            Ok(false)
        }
    }
}

/// Authenticates `settings.user`; returns what worked, for the log.
pub(super) async fn authenticate<H: client::Handler>(
    handle: &mut Handle<H>,
    settings: &SshSettings,
    addr: &str,
) -> Result<String, TransportError> {
    let user = settings.user.as_str();
    let mut tried: Vec<String> = Vec::new();
    let mut rsa_cache = None;
    // An explicit key that cannot be used without a passphrase: reported
    // as such if nothing else gets in.
    let mut key_problem: Option<TransportError> = None;
    let mut preferred_public: Option<PublicKey> = None;

    if let Some(path) = &settings.identity_file {
        let shown = path.display().to_string();
        // Checked at load too; this is for a file changed since.
        if let Some(refusal) = too_open(path) {
            return Err(TransportError::Key {
                path: shown,
                reason: refusal,
            });
        }
        match load_key(path) {
            LoadedKey::Usable(key) => {
                if try_private_key(handle, user, key, &mut rsa_cache).await? {
                    return Ok(format!("identity file {shown}"));
                }
                tried.push(format!("identity file {shown}"));
            }
            LoadedKey::Encrypted(public) => {
                preferred_public = public;
                tried.push(format!("identity file {shown} (passphrase-protected)"));
                key_problem = Some(TransportError::Key {
                    path: shown.clone(),
                    reason: format!(
                        "it is passphrase-protected and calico-rollout never prompts; \
                         load it into ssh-agent (`ssh-add {shown}`) and make sure \
                         SSH_AUTH_SOCK is set"
                    ),
                });
            }
            LoadedKey::Broken(reason) => {
                return Err(TransportError::Key {
                    path: shown,
                    reason,
                });
            }
        }
    }

    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match AgentClient::connect_env().await {
            Err(e) => tried.push(format!("ssh-agent (cannot connect: {e})")),
            Ok(mut agent) => match agent.request_identities().await {
                Err(e) => tried.push(format!("ssh-agent (cannot list keys: {e})")),
                Ok(identities) => {
                    let mut keys: Vec<PublicKey> = identities
                        .iter()
                        .map(|i| i.public_key().into_owned())
                        .collect();
                    // The configured key first: servers allow only a few attempts.
                    if let Some(wanted) = &preferred_public {
                        keys.sort_by_key(|k| k.key_data() != wanted.key_data());
                    }
                    for key in &keys {
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash(handle, &mut rsa_cache).await?
                        } else {
                            None
                        };
                        match handle
                            .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                            .await
                        {
                            Ok(result) if result.success() => {
                                return Ok(format!(
                                    "ssh-agent key {}",
                                    known_hosts::fingerprint(key)
                                ));
                            }
                            Ok(_) => {}
                            Err(e) => debug!("ssh-agent signing failed: {e}"),
                        }
                        if handle.is_closed() {
                            break;
                        }
                    }
                    tried.push(format!("ssh-agent ({} keys)", keys.len()));
                }
            },
        }
    } else {
        tried.push("ssh-agent (SSH_AUTH_SOCK not set)".into());
    }

    if settings.identity_file.is_none() {
        let ssh_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
        let mut found = false;
        for name in DEFAULT_KEYS.iter().filter(|_| ssh_dir.is_some()) {
            if handle.is_closed() {
                break;
            }
            let path = ssh_dir.as_ref().map(|d| d.join(name)).unwrap_or_default();
            if !path.exists() {
                continue;
            }
            found = true;
            let shown = path.display().to_string();
            if let Some(refusal) = too_open(&path) {
                tried.push(format!("{shown} (refused: {refusal})"));
                continue;
            }
            match load_key(&path) {
                LoadedKey::Usable(key) => {
                    if try_private_key(handle, user, key, &mut rsa_cache).await? {
                        return Ok(shown);
                    }
                    tried.push(shown);
                }
                LoadedKey::Encrypted(_) => tried.push(format!("{shown} (passphrase-protected)")),
                LoadedKey::Broken(reason) => tried.push(format!("{shown} (unreadable: {reason})")),
            }
        }
        if !found {
            tried.push(format!(
                "no default key in ~/.ssh ({})",
                DEFAULT_KEYS.join(", ")
            ));
        }
    }

    if handle.is_closed() {
        tried.push(format!(
            "then {addr} closed the connection (too many attempts? see sshd MaxAuthTries)"
        ));
    }
    if let Some(problem) = key_problem {
        return Err(problem);
    }
    Err(TransportError::Auth {
        user: user.to_string(),
        tried: tried.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ed25519 key encrypted with the passphrase "secret" (ssh-keygen).
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBVTxUWZE
IoDeooKqIEWYiaAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIENQdFTEfK23WOu6
uW9HWz5rEJQ7MO9uqr6j1xSbLM7IAAAAkNwWuA4RuToBSm6fhj0UmzBcV+yT9LZY7BBd7M
8e/icdbruLDVAMIu9IiD6EM8lEqf77o8Qb66sb3VJR0sLUmEHIlUOSTO7WymJcB8N7Tbyw
u7uQ4HQs3CAKKK5ktrHjgpZuLejlBE/9yp8mDKuqnGuJSZKH2kcwI4g06QIVlTRKOkqUvd
P73zhJwB8pvFOD4w==
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_KEY_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIENQdFTEfK23WOu6uW9HWz5rEJQ7MO9uqr6j1xSbLM7I";

    #[test]
    fn encrypted_keys_are_recognised_and_keep_their_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, ENCRYPTED_KEY).unwrap();
        let expected = PublicKey::from_openssh(ENCRYPTED_KEY_PUB).unwrap();
        match load_key(&path) {
            LoadedKey::Encrypted(Some(public)) => {
                assert_eq!(public.key_data(), expected.key_data())
            }
            _ => panic!("expected an encrypted key with its public half"),
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_key(&path), LoadedKey::Broken(_)));
    }
}
