//! Names: agents, zones, login users, environment variables and file names.

use super::InvalidValue;

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
