//! Small validated value types used by the inventory, and the checks behind
//! them. Every constructor validates, so a value of one of these types is
//! always well formed, whoever built it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

/// Why a string is not a valid value of some kind. Renders as
/// `<what> "<value>" <problem>`, e.g.
/// `remote path "opt/cni" must be absolute (start with /)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    what: String,
    value: String,
    problem: String,
}

impl InvalidValue {
    pub(crate) fn new(what: &str, value: &str, problem: impl Into<String>) -> Self {
        InvalidValue {
            what: what.to_string(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// The same problem, described as a value of `what` (for example the
    /// inventory key it was read from).
    pub(crate) fn named(mut self, what: &str) -> Self {
        self.what = what.to_string();
        self
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.what, self.value, self.problem)
    }
}

impl std::error::Error for InvalidValue {}

// ---------------------------------------------------------------------------
// BatchSize

/// How many agents one rollout batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// A fixed number of agents (at least 1).
    Count(usize),
    /// A share of all agents, 1..=100.
    Percent(u8),
}

impl BatchSize {
    /// The number of agents per batch for `total` agents: never 0, never
    /// more than `total` (when `total` is not 0). A percentage rounds down.
    pub fn hosts_per_batch(&self, total: usize) -> usize {
        let n = match *self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(p) => total.saturating_mul(usize::from(p)) / 100,
        };
        n.min(total).max(1)
    }
}

impl FromStr for BatchSize {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| InvalidValue::new("batch size", s, problem);
        if let Some(num) = s.strip_suffix('%') {
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("is not a whole number or a percentage like \"20%\""));
            }
            match num.parse::<u8>() {
                Ok(p @ 1..=100) => Ok(BatchSize::Percent(p)),
                _ => Err(bad("must be a percentage between 1% and 100%")),
            }
        } else {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("is not a whole number or a percentage like \"20%\""));
            }
            match s.parse::<usize>() {
                Ok(0) => Err(bad("must be at least 1")),
                Ok(n) => Ok(BatchSize::Count(n)),
                Err(_) => Err(bad("is too large")),
            }
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Count(n) => write!(f, "{n}"),
            BatchSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

// ---------------------------------------------------------------------------
// FailureBudget

/// How many hosts may fail before the rollout stops (`rollout.max_failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureBudget {
    /// A fixed number of hosts (0 or more).
    Count(usize),
    /// A share of the selected hosts, 0..=100.
    Percent(u8),
}

impl Default for FailureBudget {
    /// No failure is tolerated.
    fn default() -> Self {
        FailureBudget::Count(0)
    }
}

impl FailureBudget {
    /// The number of failed hosts tolerated when `selected` hosts take part
    /// (more than this stops the rollout). A percentage rounds down: 10% of
    /// 12 hosts is 1, 0% is 0, 100% is all of them.
    pub fn allowed(&self, selected: usize) -> usize {
        match *self {
            FailureBudget::Count(n) => n,
            FailureBudget::Percent(p) => selected.saturating_mul(usize::from(p)) / 100,
        }
    }
}

impl FromStr for FailureBudget {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| InvalidValue::new("failure budget", s, problem);
        let shape = "is not a whole number (0 or more) or a percentage like \"10%\"";
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if let Some(num) = s.strip_suffix('%') {
            if !digits(num) {
                return Err(bad(shape));
            }
            match num.parse::<u8>() {
                Ok(p @ 0..=100) => Ok(FailureBudget::Percent(p)),
                _ => Err(bad("must be a percentage between 0% and 100%")),
            }
        } else {
            if !digits(s) {
                return Err(bad(shape));
            }
            s.parse::<usize>()
                .map(FailureBudget::Count)
                .map_err(|_| bad("is too large"))
        }
    }
}

impl fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureBudget::Count(n) => write!(f, "{n}"),
            FailureBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

// ---------------------------------------------------------------------------
// Endpoint

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
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
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

fn parse_port(s: &str) -> Option<u16> {
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
// Names

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`: agent names and zones.
fn label(s: &str, what: &str) -> Result<String, InvalidValue> {
    let ok = s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::new(
            what,
            s,
            "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Agent name: `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
pub(crate) fn agent_name(s: &str) -> Result<String, InvalidValue> {
    label(s, "agent name")
}

/// A DC/OS fault domain zone such as `us-east-1a`:
/// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
pub(crate) fn zone(s: &str) -> Result<String, InvalidValue> {
    label(s, "zone")
}

/// Login name: `[a-z_][a-z0-9_-]*[$]?`, at most 32 characters.
pub(crate) fn user_name(s: &str) -> Result<String, InvalidValue> {
    let body = s.strip_suffix('$').unwrap_or(s);
    let ok = s.len() <= 32
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::new(
            "user",
            s,
            "is not a valid user name (lowercase letters, digits, '_' or '-', starting with a letter or '_', at most 32)",
        ))
    }
}

/// Environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn env_key(s: &str) -> Result<String, InvalidValue> {
    let ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::new(
            "environment variable name",
            s,
            "must be letters, digits and '_', not starting with a digit",
        ))
    }
}

/// Environment variable value: anything on one line, without NUL.
pub(crate) fn env_value(s: &str) -> Result<String, InvalidValue> {
    if s.contains(['\n', '\r', '\0']) {
        Err(InvalidValue::new(
            "environment value",
            s,
            "must not contain a line break or NUL",
        ))
    } else {
        Ok(s.to_string())
    }
}

/// A plain file name (no folder part): letters, digits, `.`, `_`, `-`.
pub(crate) fn file_name(s: &str) -> Result<String, InvalidValue> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidValue::new(
            "file name",
            s,
            "must be a plain file name (letters, digits, '.', '_', '-')",
        ))
    }
}

// ---------------------------------------------------------------------------
// Booleans and durations

/// `true`/`false` (also `yes`/`no`, `on`/`off`, any case).
pub(crate) fn boolean(s: &str) -> Result<bool, InvalidValue> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(InvalidValue::new("value", s, "is not true or false")),
    }
}

/// A duration such as `10s`, `500ms`, `2m`, `1m30s` or `1h`: one or more
/// whole numbers, each followed by a unit (`ms`, `s`, `m`, `h`). Never zero.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, InvalidValue> {
    match parse_wait(s)? {
        Duration::ZERO => Err(InvalidValue::new("duration", s, "must be longer than zero")),
        d => Ok(d),
    }
}

/// A duration in the same form as [`parse_duration`] that may be zero
/// (`0s`: do not wait).
pub(crate) fn parse_wait(s: &str) -> Result<Duration, InvalidValue> {
    let bad = |problem: &str| InvalidValue::new("duration", s, problem);
    let shape = "is not a duration like 10s, 500ms, 2m or 1m30s";
    let mut rest = s;
    let mut total_ms: u64 = 0;
    if rest.is_empty() {
        return Err(bad(shape));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad(shape));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad("is too long"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad(shape)),
        };
        rest = &rest[unit_len..];
        total_ms = n
            .checked_mul(factor)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| bad("is too long"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

// ---------------------------------------------------------------------------
// RemotePath

/// An absolute path on an agent, made only of `[A-Za-z0-9/._+-]`, without
/// `.` or `..` components or empty ones; a trailing `/` is dropped.
/// Safe to paste into a shell command unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePath(String);

impl RemotePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/name`. `name` is a relative path in the same alphabet (usually
    /// a file name); anything else is a programming error and panics.
    pub fn join(&self, name: &str) -> RemotePath {
        let joined = if self.0 == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.0)
        };
        match joined.parse() {
            Ok(p) if !name.starts_with('/') => p,
            _ => panic!("RemotePath::join: {name:?} is not a relative path component"),
        }
    }
}

impl FromStr for RemotePath {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| InvalidValue::new("remote path", s, problem);
        if !s.starts_with('/') {
            return Err(bad("must be absolute (start with /)"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-')))
        {
            return Err(bad(&format!(
                "contains {c:?}; only letters, digits and / . _ + - are allowed"
            )));
        }
        let trimmed = if s.len() > 1 {
            s.strip_suffix('/').unwrap_or(s)
        } else {
            s
        };
        if trimmed.len() > 1 {
            for comp in trimmed[1..].split('/') {
                match comp {
                    "" => return Err(bad("contains an empty component (//)")),
                    "." | ".." => {
                        return Err(bad(&format!("must not contain a {comp:?} component")));
                    }
                    _ => {}
                }
            }
        }
        Ok(RemotePath(trimmed.to_string()))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------
// ImageRef

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_parsing() {
        let ok = [
            ("1", BatchSize::Count(1)),
            ("10", BatchSize::Count(10)),
            ("20%", BatchSize::Percent(20)),
            ("100%", BatchSize::Percent(100)),
            ("1%", BatchSize::Percent(1)),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<BatchSize>(), Ok(want), "{s}");
            assert_eq!(want.to_string(), s);
        }
        for s in [
            "0",
            "0%",
            "101%",
            "-1",
            "",
            "%",
            "1.5",
            "20 %",
            "ten",
            "99999999999999999999999",
        ] {
            assert!(s.parse::<BatchSize>().is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn hosts_per_batch() {
        let cases = [
            (BatchSize::Count(10), 100, 10),
            (BatchSize::Count(10), 3, 3),
            (BatchSize::Count(1), 0, 1),
            (BatchSize::Percent(20), 100, 20),
            (BatchSize::Percent(20), 9, 1),
            (BatchSize::Percent(20), 14, 2),
            (BatchSize::Percent(100), 7, 7),
            (BatchSize::Percent(1), 0, 1),
            (BatchSize::Percent(50), 3, 1),
        ];
        for (b, total, want) in cases {
            assert_eq!(b.hosts_per_batch(total), want, "{b} of {total}");
        }
    }

    #[test]
    fn failure_budgets() {
        let ok = [
            ("0", FailureBudget::Count(0)),
            ("2", FailureBudget::Count(2)),
            ("0%", FailureBudget::Percent(0)),
            ("10%", FailureBudget::Percent(10)),
            ("100%", FailureBudget::Percent(100)),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<FailureBudget>(), Ok(want), "{s}");
            assert_eq!(want.to_string(), s);
        }
        for s in [
            "",
            "-1",
            "150%",
            "101%",
            "%",
            "1.5",
            "10 %",
            "two",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(
                s.parse::<FailureBudget>().is_err(),
                "{s:?} should be rejected"
            );
        }
        assert_eq!(
            "150%".parse::<FailureBudget>().unwrap_err().to_string(),
            "failure budget \"150%\" must be a percentage between 0% and 100%"
        );
        assert_eq!(FailureBudget::default(), FailureBudget::Count(0));
        // (budget, selected hosts, failures allowed)
        let cases = [
            (FailureBudget::Count(0), 12, 0),
            (FailureBudget::Count(2), 12, 2),
            (FailureBudget::Count(2), 0, 2),
            (FailureBudget::Percent(10), 12, 1),
            (FailureBudget::Percent(10), 9, 0),
            (FailureBudget::Percent(10), 20, 2),
            (FailureBudget::Percent(0), 50, 0),
            (FailureBudget::Percent(50), 5, 2),
            (FailureBudget::Percent(100), 7, 7),
            (FailureBudget::Percent(100), 0, 0),
        ];
        for (b, selected, want) in cases {
            assert_eq!(b.allowed(selected), want, "{b} of {selected}");
        }
    }

    #[test]
    fn endpoints() {
        let ok = [
            (
                "http://10.0.0.5:2379",
                "http://10.0.0.5:2379",
                "10.0.0.5:2379",
            ),
            (
                "https://etcd.example.com:4001",
                "https://etcd.example.com:4001",
                "etcd.example.com:4001",
            ),
            ("http://10.0.0.5", "http://10.0.0.5:2379", "10.0.0.5:2379"),
            (
                "http://10.0.0.5:2379/",
                "http://10.0.0.5:2379",
                "10.0.0.5:2379",
            ),
            (
                "http://[fd00::5]:2379",
                "http://[fd00::5]:2379",
                "[fd00::5]:2379",
            ),
            (
                "http://[fd00::5]",
                "http://[fd00::5]:2379",
                "[fd00::5]:2379",
            ),
            (
                "http://localhost:2379",
                "http://localhost:2379",
                "localhost:2379",
            ),
        ];
        for (s, display, hp) in ok {
            let e: Endpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(e.to_string(), display);
            assert_eq!(e.host_port(), hp);
        }
        for s in [
            "10.0.0.5:2379",
            "etcd://10.0.0.5:2379",
            "http://",
            "http://:2379",
            "http://10.0.0.5:0",
            "http://10.0.0.5:65536",
            "http://10.0.0.5:port",
            "http://10.0.0.300:2379",
            "http://fd00::5:2379",
            "http://10.0.0.5:2379/v2",
            "http://user@10.0.0.5:2379",
            "http://bad_host:2379",
            "HTTP://10.0.0.5:2379",
        ] {
            assert!(s.parse::<Endpoint>().is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn images() {
        for s in [
            "calico/node:v2.6.12",
            "calico/libnetwork-plugin:v1.1.3",
            "busybox",
            "library/busybox:latest",
            "quay.io/calico/node:v3.0.0",
            "localhost:5000/calico/node",
            "localhost/calico",
            "10.0.0.1:5000/a/b/c:tag_1.2-x",
            "Registry.Example.com/x",
            "a__b/c-d--e.f",
            "calico/node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "calico/node:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            s.parse::<ImageRef>().unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        for s in [
            "",
            "Calico",
            "calico/Node:v1",
            "calico//node",
            "calico/node:",
            "calico/node:-bad",
            "calico/node:v1 ",
            "calico/node@sha256:abc",
            "calico/node@md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "-calico/node",
            "calico_/node",
            "calico/node/",
            "reg:port/x",
            ":tag",
        ] {
            assert!(s.parse::<ImageRef>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn remote_paths() {
        let ok = [
            ("/usr/bin/etcd", "/usr/bin/etcd"),
            ("/opt/mesosphere/active/cni/", "/opt/mesosphere/active/cni"),
            ("/", "/"),
            ("/a/b+c/d-e_f.g", "/a/b+c/d-e_f.g"),
        ];
        for (s, want) in ok {
            let p: RemotePath = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.as_str(), want);
        }
        for s in [
            "usr/bin", "", "/a/../b", "/a/./b", "/..", "/a//b", "/a b", "/a;b", "~/x", "/a/$x",
        ] {
            assert!(s.parse::<RemotePath>().is_err(), "{s:?} should be rejected");
        }
        let dir: RemotePath = "/opt/cni/".parse().unwrap();
        assert_eq!(dir.join("calico").as_str(), "/opt/cni/calico");
        let root: RemotePath = "/".parse().unwrap();
        assert_eq!(root.join("x").as_str(), "/x");
    }

    #[test]
    #[should_panic(expected = "not a relative path component")]
    fn remote_path_join_rejects_traversal() {
        let dir: RemotePath = "/opt".parse().unwrap();
        let _ = dir.join("../etc");
    }

    #[test]
    fn durations() {
        let ok = [
            ("10s", 10_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1s500ms", 1_500),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in [
            "", "10", "s", "1.5s", "10 s", "-1s", "0s", "10sec", "1d", "m1",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} should be rejected");
        }
        // A wait may be zero, and is otherwise read the same way.
        for (s, ms) in ok.into_iter().chain([("0s", 0), ("0ms", 0), ("0m0s", 0)]) {
            assert_eq!(parse_wait(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "0", "-1s", "1.5s", "10 s", "1d"] {
            assert!(parse_wait(s).is_err(), "{s:?} should be rejected");
        }
        assert_eq!(
            parse_duration("0s").unwrap_err().to_string(),
            "duration \"0s\" must be longer than zero"
        );
    }

    #[test]
    fn hosts_and_names() {
        for s in [
            "10.0.0.11",
            "fd00::11",
            "agent-1.example.com",
            "localhost",
            "a",
        ] {
            assert!(address(s).is_ok(), "{s}");
        }
        assert_eq!(address("[fd00::1]").unwrap(), "fd00::1");
        for s in [
            "10.0.0.300",
            "",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "1.2.3",
            "x y",
            "a.b.",
        ] {
            assert!(address(s).is_err(), "{s:?} should be rejected");
        }
        for s in ["agent-1", "A.b_c-d", "1"] {
            assert!(agent_name(s).is_ok(), "{s}");
        }
        for s in ["", "-a", ".a", "a b", &"a".repeat(64)] {
            assert!(agent_name(s).is_err(), "{s:?} should be rejected");
        }
        for s in ["us-east-1a", "eu_west.2", "Z", &"a".repeat(63)] {
            assert_eq!(zone(s).as_deref(), Ok(s), "{s}");
        }
        for s in [
            "",
            "-a",
            "_a",
            "us east",
            "us/east",
            "zone:1",
            &"a".repeat(64),
        ] {
            assert!(zone(s).is_err(), "{s:?} should be rejected");
        }
        for s in ["core", "root", "_svc", "a-b_c9", "machine$"] {
            assert!(user_name(s).is_ok(), "{s}");
        }
        for s in ["", "Core", "9a", "a b", "a$b", &"a".repeat(33)] {
            assert!(user_name(s).is_err(), "{s:?} should be rejected");
        }
        assert!(env_key("CALICO_X1").is_ok());
        assert!(env_key("_x").is_ok());
        for s in ["", "1X", "A-B", "A B"] {
            assert!(env_key(s).is_err(), "{s:?} should be rejected");
        }
        assert!(env_value("bird, with spaces = ok").is_ok());
        assert!(env_value("a\nb").is_err());
        assert!(env_value("a\0b").is_err());
        assert!(file_name("calico-ipam").is_ok());
        for s in ["", ".", "..", "a/b", "a b"] {
            assert!(file_name(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn cluster_stores() {
        for s in [
            "etcd://127.0.0.1:2379",
            "etcd://10.0.0.5:2379,10.0.0.6:2379",
            "consul://consul.local:8500/calico",
            "zk://[fd00::1]:2181,zk2:2181/path/x",
        ] {
            assert!(cluster_store(s).is_ok(), "{s}: {:?}", cluster_store(s));
        }
        for s in [
            "",
            "http://10.0.0.5:2379",
            "etcd://",
            "etcd://10.0.0.5",
            "etcd://10.0.0.5:2379,",
            "etcd://10.0.0.5:99999",
            "etcd://bad host:1",
            "etcd://h:1/pa th",
        ] {
            assert!(cluster_store(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn messages_read_well() {
        let e = "10.0.0.300".parse::<Endpoint>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "etcd endpoint \"10.0.0.300\" must start with http:// or https://"
        );
        let e = address("10.0.0.300").unwrap_err().named("agent address");
        assert_eq!(
            e.to_string(),
            "agent address \"10.0.0.300\" is not a valid host name or IP address"
        );
    }
}
