//! [`RemotePath`]: an absolute path on an agent that is safe to use in a
//! shell command.

use std::fmt;
use std::str::FromStr;

use super::InvalidValue;

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
