//! `rollout.checks`: the operator's own checks, each after one step.

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::check::Checker;
use crate::inventory::checks::{CheckProbe, OperatorCheck};
use crate::inventory::raw::RawCheck;
use crate::inventory::values::{self, InvalidValue};
use crate::step::StepName;

impl Checker<'_> {
    /// Every entry of `rollout.checks`, or none when one is invalid (its
    /// problem is recorded).
    pub(super) fn operator_checks(
        &mut self,
        raw: &Spanned<Vec<Spanned<RawCheck>>>,
    ) -> Vec<OperatorCheck> {
        let mut names = BTreeSet::new();
        let mut checks = Vec::new();
        for (n, entry) in raw.value.iter().enumerate() {
            let c = &entry.value;
            let name = match &c.name {
                Some(s) => self.check(s, "check name", check_name),
                None => Some(format!("check-{}", n + 1)),
            };
            if let (Some(name), Some(s)) = (&name, &c.name)
                && !names.insert(name.clone())
            {
                self.report(s.referenced, format!("two checks are named {name:?}"));
            }
            let after = match &c.after {
                Some(s) => self.check(s, "after", step),
                None => {
                    self.report(
                        entry.referenced,
                        "a check needs `after:`, the step it follows (etcd-proxy, docker, cni, libnetwork or node)",
                    );
                    None
                }
            };
            let probe = match (&c.command, &c.http) {
                (Some(cmd), None) => self
                    .check(cmd, "command", |s| non_empty("command", s))
                    .map(CheckProbe::Command),
                (None, Some(url)) => self.check(url, "http", http_url).map(CheckProbe::Http),
                (Some(_), Some(url)) => {
                    self.report(
                        url.referenced,
                        "a check has either `command` or `http`, not both",
                    );
                    None
                }
                (None, None) => {
                    self.report(entry.referenced, "a check needs `command` or `http`");
                    None
                }
            };
            let timeout = self.or_default(
                c.timeout.as_ref(),
                "timeout",
                values::parse_duration,
                || OperatorCheck::DEFAULT_TIMEOUT,
            );
            if let (Some(name), Some(after), Some(probe)) = (name, after, probe) {
                checks.push(OperatorCheck {
                    name,
                    after,
                    probe,
                    timeout,
                });
            }
        }
        checks
    }
}

/// Letters, digits, `-`, `_` and `.`: a name that reads well in a report.
fn check_name(s: &str) -> Result<String, InvalidValue> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(InvalidValue::new(
            "check name",
            s,
            "is not a name of letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(s.to_string())
}

fn step(s: &str) -> Result<StepName, InvalidValue> {
    StepName::parse(s).ok_or_else(|| {
        InvalidValue::new(
            "step",
            s,
            "is not a step: etcd-proxy, docker, cni, libnetwork or node",
        )
    })
}

fn non_empty(what: &str, s: &str) -> Result<String, InvalidValue> {
    if s.trim().is_empty() {
        return Err(InvalidValue::new(what, s, "is empty"));
    }
    if s.contains('\0') {
        return Err(InvalidValue::new(what, s, "contains a NUL character"));
    }
    Ok(s.to_string())
}

/// An absolute `http://` or `https://` URL with a host.
fn http_url(s: &str) -> Result<String, InvalidValue> {
    let bad = |problem: &str| InvalidValue::new("URL", s, problem);
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    Ok(s.to_string())
}
