//! Host-key trust: the server's key is checked against an OpenSSH
//! `known_hosts` file, the way `StrictHostKeyChecking` `yes` / `accept-new`
//! would.
//!
//! - A recorded key that matches is accepted.
//! - Any *other* key recorded for the host, whatever its algorithm, means the
//!   key changed: refused. (russh's own check calls a key of a different
//!   algorithm "unknown", which `accept-new` would then happily add.)
//! - A key listed under `@revoked` for the host is refused.
//! - An unknown host is refused (`strict`) or recorded (`accept-new`).
//! - A host certificate is judged by the `@cert-authority` lines for the
//!   host (see [`super::host_certs`]); without one, as its plain key.
//!
//! Plain host patterns (comma lists, `*`/`?` wildcards, `!` negation,
//! `[host]:port`) are matched here. Hashed entries (`|1|salt|hash`, what
//! `HashKnownHosts yes` writes) are matched by russh's
//! `known_host_keys_path`, whose keys are merged with ours.
//!
//! New keys are appended atomically (temp file in the same directory, fsync,
//! rename), under one process-wide lock, so parallel connections never lose
//! each other's lines.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{Algorithm, HashAlg, PublicKey};
use tracing::{debug, info};

use super::TransportError;
use crate::inventory::HostKeyChecking;

/// The name a host is recorded under: `address` for port 22, `[address]:port`
/// otherwise. Lower-cased, as OpenSSH does before matching or hashing.
pub fn host_pattern(address: &str, port: u16) -> String {
    let host = address.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The OpenSSH-style fingerprint of a key: `SHA256:` and unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// What a known_hosts file says about a host and the key it offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The offered key is recorded for the host.
    Known,
    /// Nothing is recorded for the host.
    Unknown,
    /// Other keys (of any algorithm) are recorded for the host, not this one.
    Changed,
    /// The offered key is marked `@revoked` for the host.
    Revoked,
}

/// A key recorded for the host, as found in the file.
#[derive(Debug, Clone)]
enum Recorded {
    Key(PublicKey),
    /// A matching line whose key does not parse (an algorithm this build does
    /// not know). It still says "the host has a key", so it counts as a
    /// different key.
    Unparsed,
}

/// The entries of a known_hosts text that concern one host.
#[derive(Debug, Default)]
pub(super) struct HostEntries {
    recorded: Vec<Recorded>,
    pub(super) revoked: Vec<PublicKey>,
    /// `@cert-authority` keys whose (plain) patterns match the host.
    pub(super) authorities: Vec<PublicKey>,
    /// The text has hashed entries, which only russh can match.
    has_hashed: bool,
}

/// Collects the plain-pattern entries for `host` (a [`host_pattern`]) from a
/// known_hosts text.
fn entries_for_host(text: &str, host: &str) -> HostEntries {
    let mut out = HostEntries::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let Some(mut hosts) = fields.next() else {
            continue;
        };
        let mut marker = None;
        if hosts.starts_with('@') {
            marker = Some(hosts);
            match fields.next() {
                Some(h) => hosts = h,
                None => continue,
            }
        }
        if hosts.contains("|1|") {
            out.has_hashed = true;
        }
        if !hosts_match(hosts, host) {
            continue;
        }
        let (_key_type, blob) = (fields.next(), fields.next());
        let key = blob.and_then(|b| russh::keys::parse_public_key_base64(b).ok());
        match (marker, key) {
            (Some("@revoked"), Some(key)) => out.revoked.push(key),
            (Some("@cert-authority"), Some(key)) => out.authorities.push(key),
            (Some(_), _) => {} // unknown marker, or an unreadable revoked key
            (None, Some(key)) => out.recorded.push(Recorded::Key(key)),
            (None, None) => out.recorded.push(Recorded::Unparsed),
        }
    }
    out
}

/// OpenSSH `match_hostfile_patterns` for plain patterns: some pattern
/// matches, and no negated (`!`) pattern does. Hashed patterns never match
/// here.
fn hosts_match(patterns: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns.split(',') {
        if pattern.starts_with("|1|") {
            continue;
        }
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob_match(&pattern.to_ascii_lowercase(), &host) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` matches any run of characters, `?` exactly one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The decision for `offered` given the recorded entries.
fn decide(offered: &PublicKey, recorded: &[Recorded], revoked: &[PublicKey]) -> Verdict {
    let same = |k: &PublicKey| k.key_data() == offered.key_data();
    if revoked.iter().any(same) {
        Verdict::Revoked
    } else if recorded
        .iter()
        .any(|r| matches!(r, Recorded::Key(k) if same(k)))
    {
        Verdict::Known
    } else if recorded.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Changed
    }
}

fn file_error(path: &Path, reason: impl ToString) -> TransportError {
    TransportError::KnownHostsFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The entries of the known_hosts file at `path` for `address:port`,
/// hashed ones included. A missing file knows no host; any other read
/// failure is an error.
pub(super) fn file_entries(
    path: &Path,
    address: &str,
    port: u16,
) -> Result<HostEntries, TransportError> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(file_error(path, e)),
    };
    let host = host_pattern(address, port);
    let mut entries = entries_for_host(&text, &host);
    if entries.has_hashed {
        // russh matches hashed names (HMAC-SHA1) as well as exact plain ones;
        // plain ones are then simply counted twice.
        let hashed = russh::keys::known_hosts::known_host_keys_path(
            &address.to_ascii_lowercase(),
            port,
            path,
        )
        .map_err(|e| file_error(path, format!("cannot read hashed entries: {e}")))?;
        entries
            .recorded
            .extend(hashed.into_iter().map(|(_, k)| Recorded::Key(k)));
    }
    Ok(entries)
}

/// The verdict of the known_hosts file at `path` on the key that
/// `address:port` offered.
pub fn check_file(
    path: &Path,
    address: &str,
    port: u16,
    offered: &PublicKey,
) -> Result<Verdict, TransportError> {
    let entries = file_entries(path, address, port)?;
    Ok(decide(offered, &entries.recorded, &entries.revoked))
}

/// The algorithms of the keys recorded for `address:port`, so that the key
/// exchange can ask the server for one of those. Read errors yield nothing
/// here; the host-key check proper reports them.
pub fn recorded_algorithms(path: &Path, address: &str, port: u16) -> Vec<Algorithm> {
    let Ok(entries) = file_entries(path, address, port) else {
        return Vec::new();
    };
    entries
        .recorded
        .iter()
        .filter_map(|r| match r {
            Recorded::Key(k) => Some(k.algorithm()),
            Recorded::Unparsed => None,
        })
        .collect()
}

/// Whether a `@cert-authority` line covers `address:port`: then the server
/// is asked for its host certificate. Read errors say no here.
pub fn has_authority(path: &Path, address: &str, port: u16) -> bool {
    file_entries(path, address, port).is_ok_and(|e| !e.authorities.is_empty())
}

/// The known_hosts line recording `key` for `host`: `host key-type base64`.
pub fn known_hosts_line(host: &str, key: &PublicKey) -> Result<String, TransportError> {
    let mut key = key.clone();
    key.set_comment("");
    let openssh = key
        .to_openssh()
        .map_err(|e| TransportError::Ssh(format!("cannot encode host key: {e}")))?;
    Ok(format!("{host} {}", openssh.trim_end()))
}

/// Appends `line` to the file at `path` atomically: the current content and
/// the line go to a temporary file in the same directory, which is fsynced
/// and renamed over the original. The file's mode (and, when allowed, its
/// owner) is kept; a new file gets mode 0600 and a new directory 0700. A
/// symlinked file is updated at its target. Callers serialise writers.
pub fn append_line_atomically(path: &Path, line: &str) -> io::Result<()> {
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;

    let (mut content, meta) = match fs::read(&target) {
        Ok(bytes) => (bytes, Some(fs::metadata(&target)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(e),
    };
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    content.extend_from_slice(line.trim_end().as_bytes());
    content.push(b'\n');

    // tempfile makes the file 0600 in the same folder, and removes it if
    // anything below fails.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(&content)?;
    if let Some(meta) = &meta {
        let file = tmp.as_file();
        file.set_permissions(meta.permissions())?;
        if meta.uid() != file.metadata()?.uid() || meta.gid() != file.metadata()?.gid() {
            // Best effort: only root can give a file away.
            let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
        }
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    // Make the rename itself durable.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The full host-key decision for one connection: checks `offered` against
/// `known_hosts` and, under `accept-new`, records an unknown host's key.
/// `write_lock` serialises every known_hosts update of the process. This is
/// blocking file I/O: run it off the async runtime.
pub fn verify_host_key(
    known_hosts: &Path,
    checking: HostKeyChecking,
    write_lock: &Mutex<()>,
    address: &str,
    port: u16,
    offered: &PublicKey,
) -> Result<(), TransportError> {
    let host = host_pattern(address, port);
    let fp = fingerprint(offered);
    let refuse_changed = || TransportError::HostKeyChanged {
        host: host.clone(),
        fingerprint: fp.clone(),
        known_hosts: known_hosts.display().to_string(),
    };
    // Under accept-new, check and append under the lock, so two connections
    // to one host cannot both record a key.
    let _guard = match checking {
        HostKeyChecking::AcceptNew => Some(
            write_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ),
        HostKeyChecking::Strict => None,
    };
    match check_file(known_hosts, address, port, offered)? {
        Verdict::Known => {
            debug!(host = %host, fingerprint = %fp, "host key matches known_hosts");
            Ok(())
        }
        Verdict::Changed | Verdict::Revoked => Err(refuse_changed()),
        Verdict::Unknown => match checking {
            HostKeyChecking::Strict => Err(TransportError::HostKeyUnknown {
                host,
                fingerprint: fp,
                known_hosts: known_hosts.display().to_string(),
            }),
            HostKeyChecking::AcceptNew => {
                let line = known_hosts_line(&host, offered)?;
                append_line_atomically(known_hosts, &line)
                    .map_err(|e| file_error(known_hosts, format!("cannot record host key: {e}")))?;
                info!(
                    "recorded new host key for {host} ({fp}) in {}",
                    known_hosts.display()
                );
                Ok(())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    // Three throwaway public keys (generated with ssh-keygen for these tests).
    const ED_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAeHVx7os8NFN/HW4kd1qAnw2Lv6BwBATVu0LyeKytqG";
    const ED_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAeE9C7YuWQdc8Rqu4FCrKOMoTmNzi7kn2UZH24pPaaf";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCj2JakOwCNI3+kjX9KvpOCAAJY+yjxZLC0qdflcWvyeBeaFDgrRX/eA64XZQ7lg4T1X386im0FUt63qID3GD0Y=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    /// The verdict of a known_hosts text (plain patterns only).
    fn check_text(text: &str, host: &str, offered: &PublicKey) -> Verdict {
        let entries = entries_for_host(text, host);
        decide(offered, &entries.recorded, &entries.revoked)
    }

    #[test]
    fn host_pattern_brackets_non_default_ports() {
        assert_eq!(host_pattern("10.0.0.5", 22), "10.0.0.5");
        assert_eq!(host_pattern("10.0.0.5", 2222), "[10.0.0.5]:2222");
        assert_eq!(
            host_pattern("Agent-1.Example.COM", 22),
            "agent-1.example.com"
        );
        assert_eq!(host_pattern("::1", 2200), "[::1]:2200");
    }

    #[test]
    fn fingerprint_is_openssh_sha256() {
        // As printed by `ssh-keygen -lf` for these keys.
        assert_eq!(
            fingerprint(&key(ED_A)),
            "SHA256:c6MVU5i53yLqrklAiYwhxx+9bG5E1PJK3YysrCO50i4"
        );
        assert_eq!(
            fingerprint(&key(ECDSA)),
            "SHA256:8ENt/sAoBdTYjXqt6oeO+pKz9oVwaSi1/qtEaVElrBE"
        );
    }

    #[test]
    fn known_key_matches_on_its_pattern_only() {
        let text = format!("# comment\n\n[10.0.0.5]:2222 {ED_A}\n10.0.0.6,agent6 {ED_B} c\n");
        let a = key(ED_A);
        assert_eq!(check_text(&text, "[10.0.0.5]:2222", &a), Verdict::Known);
        assert_eq!(check_text(&text, "10.0.0.5", &a), Verdict::Unknown);
        assert_eq!(check_text(&text, "agent6", &key(ED_B)), Verdict::Known);
        assert_eq!(check_text(&text, "10.0.0.6", &a), Verdict::Changed);
    }

    #[test]
    fn a_key_of_another_algorithm_for_a_known_host_is_a_change() {
        // The host is known by its ed25519 key; an ecdsa key is offered.
        let text = format!("10.0.0.7 {ED_A}\n");
        assert_eq!(check_text(&text, "10.0.0.7", &key(ECDSA)), Verdict::Changed);
        // ...and russh alone would have called that unknown.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, &text).unwrap();
        assert!(!russh::keys::check_known_hosts_path("10.0.0.7", 22, &key(ECDSA), &path).unwrap());
        assert_eq!(
            check_file(&path, "10.0.0.7", 22, &key(ECDSA)).unwrap(),
            Verdict::Changed
        );
    }

    #[test]
    fn recorded_algorithms_of_a_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, format!("[h]:2222 {ECDSA}\nh {ED_A}\n")).unwrap();
        let algs = recorded_algorithms(&path, "h", 2222);
        assert_eq!(algs, vec![key(ECDSA).algorithm()]);
        assert!(recorded_algorithms(&path, "other", 22).is_empty());
        assert!(recorded_algorithms(&dir.path().join("missing"), "h", 22).is_empty());
    }

    #[test]
    fn unparseable_key_for_the_host_counts_as_a_change() {
        let text = "10.0.0.8 ssh-future AAAAnotakey\n";
        assert_eq!(check_text(text, "10.0.0.8", &key(ED_A)), Verdict::Changed);
    }

    #[test]
    fn one_matching_line_wins_over_other_keys() {
        let text = format!("h {ECDSA}\nh {ED_A}\n");
        assert_eq!(check_text(&text, "h", &key(ED_A)), Verdict::Known);
    }

    #[test]
    fn wildcards_negation_tabs_and_markers() {
        let text = format!(
            "*.prod,!bad.prod\t{ED_A}\n@cert-authority * {ED_B}\n@revoked old.prod {ED_A}\n"
        );
        let a = key(ED_A);
        assert_eq!(check_text(&text, "web.prod", &a), Verdict::Known);
        assert_eq!(check_text(&text, "bad.prod", &a), Verdict::Unknown);
        assert_eq!(check_text(&text, "WEB.PROD", &a), Verdict::Known);
        assert_eq!(check_text(&text, "web.test", &key(ED_B)), Verdict::Unknown);
        // A CA is an authority for the host, never a key recorded for it.
        assert_eq!(entries_for_host(&text, "web.test").authorities.len(), 1);
        assert_eq!(check_text(&text, "old.prod", &a), Verdict::Revoked);
        assert!(glob_match("10.0.?.*", "10.0.1.55"));
        assert!(!glob_match("10.0.?.*", "10.0.11.5"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn hashed_entries_are_matched() {
        // From russh's own test: example.com hashed, port 22.
        let line = "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, line).unwrap();
        let recorded =
            key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF");
        assert_eq!(
            check_file(&path, "example.com", 22, &recorded).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check_file(&path, "example.com", 22, &key(ECDSA)).unwrap(),
            Verdict::Changed
        );
        assert_eq!(
            check_file(&path, "example.org", 22, &key(ECDSA)).unwrap(),
            Verdict::Unknown
        );
    }

    #[test]
    fn missing_file_is_empty_and_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert_eq!(
            check_file(&missing, "h", 22, &key(ED_A)).unwrap(),
            Verdict::Unknown
        );
        // A directory cannot be read as a file, even by root.
        let err = check_file(dir.path(), "h", 22, &key(ED_A)).unwrap_err();
        assert!(
            matches!(err, TransportError::KnownHostsFile { .. }),
            "{err}"
        );
    }

    #[test]
    fn atomic_append_keeps_lines_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, format!("# mine\nother {ED_B}")).unwrap(); // no final newline
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let line = known_hosts_line("[10.0.0.5]:2222", &key(ED_A)).unwrap();
        assert_eq!(line, format!("[10.0.0.5]:2222 {ED_A}"));
        append_line_atomically(&path, &line).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("# mine\nother {ED_B}\n{line}\n"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_append_creates_file_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/.ssh/known_hosts");
        append_line_atomically(&path, "h ssh-ed25519 AAAA").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "h ssh-ed25519 AAAA\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
    }

    #[test]
    fn atomic_append_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        let link = dir.path().join("link");
        fs::write(&real, "a ssh-ed25519 AAAA\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        append_line_atomically(&link, "b ssh-ed25519 BBBB").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            "a ssh-ed25519 AAAA\nb ssh-ed25519 BBBB\n"
        );
    }

    #[test]
    fn accept_new_records_then_strict_accepts_and_changes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        let lock = Mutex::new(());
        let a = key(ED_A);
        let err =
            verify_host_key(&path, HostKeyChecking::Strict, &lock, "h", 2222, &a).unwrap_err();
        assert!(
            matches!(err, TransportError::HostKeyUnknown { .. }),
            "{err}"
        );
        verify_host_key(&path, HostKeyChecking::AcceptNew, &lock, "h", 2222, &a).unwrap();
        verify_host_key(&path, HostKeyChecking::Strict, &lock, "h", 2222, &a).unwrap();
        // Accepting again does not add a second line.
        verify_host_key(&path, HostKeyChecking::AcceptNew, &lock, "h", 2222, &a).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        for other in [key(ED_B), key(ECDSA)] {
            for mode in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew] {
                let err = verify_host_key(&path, mode, &lock, "h", 2222, &other).unwrap_err();
                match err {
                    TransportError::HostKeyChanged {
                        host,
                        fingerprint: fp,
                        ..
                    } => {
                        assert_eq!(host, "[h]:2222");
                        assert_eq!(fp, fingerprint(&other));
                    }
                    e => panic!("expected a change, got {e}"),
                }
            }
        }
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
