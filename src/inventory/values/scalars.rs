//! Booleans and durations, in the spellings the inventory accepts.

use std::time::Duration;

use super::InvalidValue;

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
