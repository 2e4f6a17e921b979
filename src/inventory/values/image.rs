//! [`ImageRef`]: a Docker image reference, checked against Docker's grammar.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::InvalidValue;

/// A docker image reference:
/// `[registry[:port]/]name[/more][:tag][@sha256:<64 hex>]`, with name
/// components in Docker's lowercase grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImageRef {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| InvalidValue::new("image", s, problem);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = d.strip_prefix("sha256:").is_some_and(|h| {
                h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
            if !ok {
                return Err(bad(
                    "has an invalid digest (expected @sha256: and 64 lowercase hex digits)",
                ));
            }
        }
        // A tag is a ':' after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = t.len() <= 128
                && t.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad(
                    "has an invalid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')",
                ));
            }
        }
        if name.is_empty() {
            return Err(bad("has no image name"));
        }
        if name.len() > 255 {
            return Err(bad("has a name longer than 255 characters"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (Some(first), path)
            }
            _ => (None, name),
        };
        if let Some(d) = domain
            && !is_registry(d)
        {
            return Err(bad(&format!("has an invalid registry \"{d}\"")));
        }
        for comp in path.split('/') {
            if !is_path_component(comp) {
                return Err(bad(&format!(
                    "has an invalid name component \"{comp}\" (lowercase letters and digits, separated by '.', '_', '__' or '-')"
                )));
            }
        }
        Ok(ImageRef(s.to_string()))
    }
}

/// `host[:port]` where host is a domain name, IPv4 address or `[IPv6]`.
fn is_registry(d: &str) -> bool {
    let (host, port) = if let Some(inner) = d.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return false;
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        h.parse::<Ipv4Addr>().is_ok()
            || (!h.is_empty()
                && h.split('.').all(|c| {
                    !c.is_empty()
                        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !c.starts_with('-')
                        && !c.ends_with('-')
                }))
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// Docker's path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > sep_start);
    }
}
