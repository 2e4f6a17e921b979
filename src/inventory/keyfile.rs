//! The rule OpenSSH applies before it uses a private key: a key file that
//! its owner's group or others can read is refused, never loaded.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// OpenSSH's refusal of a private key others can read, or `None` when the
/// file is fine. Like OpenSSH, only a file owned by the running user is
/// judged: root reading another user's key is that user's business.
pub fn key_too_open(path: &Path, meta: &Metadata) -> Option<String> {
    let mode = meta.mode() & 0o777;
    let owner_is_us = meta.uid() == current_uid();
    (owner_is_us && mode & 0o077 != 0).then(|| {
        let shown = path.display();
        format!(
            "permissions {mode:04o} for '{shown}' are too open: it is required that your \
             private key files are NOT accessible by others, so this key is refused \
             (chmod 600 {shown})"
        )
    })
}

/// This process's user id: std has no safe getuid, and `/proc/self` is
/// owned by it.
fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_others_can_read_are_refused_in_openssh_words() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();
        for (mode, refused) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let meta = std::fs::metadata(&key).unwrap();
            assert_eq!(key_too_open(&key, &meta).is_some(), refused, "{mode:o}");
        }
        let meta = std::fs::metadata(&key).unwrap();
        let said = key_too_open(&key, &meta).unwrap();
        assert!(
            said.starts_with(&format!(
                "permissions 0644 for '{}' are too open",
                key.display()
            )),
            "{said}"
        );
    }
}
