//! Network values: etcd endpoints, ports, host names and IP addresses, and
//! Docker cluster store URLs.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use super::InvalidValue;

/// An etcd client URL: `http://host:port` or `https://host:port`. The port
/// defaults to 2379 when absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    tls: bool,
    /// Host name or IP address, without brackets.
    host: String,
    port: u16,
}

impl Endpoint {
    pub const DEFAULT_PORT: u16 = 2379;

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.host_port())
    }
}

impl FromStr for Endpoint {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| InvalidValue::new("etcd endpoint", s, problem);
        let (tls, rest) = if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("must not have a path (expected http://host:port)"));
        }
        if rest.contains('@') {
            return Err(bad("must not carry user information"));
        }
        let (host, port) = split_host_port(rest).map_err(|p| bad(&p))?;
        let port = match port {
            None => Endpoint::DEFAULT_PORT,
            Some(p) => {
                parse_port(p).ok_or_else(|| bad("has a port that is not between 1 and 65535"))?
            }
        };
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// Splits `host[:port]` / `[v6][:port]`, checking the host.
pub(super) fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if s.is_empty() {
        return Err("has no host".into());
    }
    if let Some(inner) = s.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err("has a '[' without a matching ']'".into());
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return Err(format!("has an invalid IPv6 address [{v6}]"));
        }
        return match after {
            "" => Ok((v6, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((v6, Some(port))),
                None => Err("has unexpected text after the IPv6 address".into()),
            },
        };
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if port.is_some_and(|p| p.contains(':')) {
        return Err("has an IPv6 address without brackets (write it as [address]:port)".into());
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !is_host(host) {
        return Err(format!(
            "has \"{host}\", which is not a valid host name or IP address"
        ));
    }
    Ok((host, port))
}

pub(super) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

/// A TCP port, 1..=65535, from its decimal text.
pub(crate) fn port(s: &str) -> Result<u16, InvalidValue> {
    parse_port(s).ok_or_else(|| InvalidValue::new("port", s, "is not a number between 1 and 65535"))
}

// ---------------------------------------------------------------------------
// Hosts

/// An IPv4 or IPv6 address, or an RFC 1123 host name.
pub(crate) fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_host_name(s)
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`
/// (not at either end), 1..=63 characters each, 253 in all; the last label
/// is not all digits (so `10.0.0.300` is a bad address, not a name).
pub(crate) fn is_host_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(label_ok)
        && !labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// An agent's address: an IP address or a host name.
pub(crate) fn address(s: &str) -> Result<String, InvalidValue> {
    if is_host(s) {
        return Ok(s.to_string());
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        && inner.parse::<Ipv6Addr>().is_ok()
    {
        return Ok(inner.to_string());
    }
    Err(InvalidValue::new(
        "address",
        s,
        "is not a valid host name or IP address",
    ))
}

// ---------------------------------------------------------------------------
// Docker cluster store

/// `etcd://`, `consul://` or `zk://` followed by `host:port[,host:port…]`
/// and an optional `/path`.
pub(crate) fn cluster_store(s: &str) -> Result<String, InvalidValue> {
    let bad = |problem: &str| InvalidValue::new("cluster store", s, problem);
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(bad("must start with etcd://, consul:// or zk://"));
    };
    if !matches!(scheme, "etcd" | "consul" | "zk") {
        return Err(bad("must start with etcd://, consul:// or zk://"));
    }
    let (hosts, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    if hosts.is_empty() {
        return Err(bad("has no host:port"));
    }
    for hp in hosts.split(',') {
        if hp.is_empty() {
            return Err(bad("has an empty entry in its host list"));
        }
        match split_host_port(hp) {
            Ok((_, Some(p))) if parse_port(p).is_some() => {}
            Ok((_, Some(_))) => {
                return Err(bad(&format!(
                    "has \"{hp}\", whose port is not between 1 and 65535"
                )));
            }
            Ok((_, None)) => return Err(bad(&format!("has \"{hp}\" without a port"))),
            Err(problem) => return Err(bad(&problem)),
        }
    }
    if let Some(p) = path
        && !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
    {
        return Err(bad(
            "has a path with characters other than letters, digits and / . _ -",
        ));
    }
    Ok(s.to_string())
}

/// Where an agent downloads a plugin from: `http://` or `https://`, with no
/// white space or shell-special characters (it is quoted anyway).
pub(crate) fn download_url(s: &str) -> Result<String, InvalidValue> {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return Err(InvalidValue::new(
            "url",
            s,
            "must start with http:// or https://",
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(InvalidValue::new("url", s, "has no host"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "'\"`\\<>{}|^".contains(*c))
    {
        return Err(InvalidValue::new(
            "url",
            s,
            format!("contains {c:?}; encode it (%XX)"),
        ));
    }
    Ok(s.to_string())
}

/// A sha256 as 64 hex digits, lowercased.
pub(crate) fn sha256(s: &str) -> Result<String, InvalidValue> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(InvalidValue::new(
            "sha256",
            s,
            "must be 64 hexadecimal digits",
        ))
    }
}
