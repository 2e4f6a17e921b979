//! The `rollout:` section: the batch ramp, the canary batch, grouping by
//! zone, the failure budget and the health timing.

use serde_saphyr::{Location, Spanned};

use super::check::Checker;
use crate::inventory::raw::{RawBatch, RawInventory};
use crate::inventory::values::{self, InvalidValue};
use crate::inventory::{BatchSize, FailureBudget, RolloutConfig};

impl Checker<'_> {
    /// The `rollout:` section, and where `by: zone` was set, if it was.
    pub(super) fn rollout(&mut self, raw: &RawInventory) -> (RolloutConfig, Option<Location>) {
        let defaults = RolloutConfig::default();
        let Some(r) = &raw.rollout else {
            return (defaults, None);
        };
        let r = &r.value;
        let batch = r
            .batch
            .as_ref()
            .and_then(|b| self.batch(b))
            .unwrap_or_else(|| defaults.batch.clone());
        let by_zone_at = match &r.by {
            Some(s) => self
                .check(s, "by", grouping)
                .and_then(|by_zone| by_zone.then_some(s.referenced)),
            None => None,
        };
        let rollout = RolloutConfig {
            batch,
            canary: self.or_default(r.canary.as_ref(), "canary", count, || defaults.canary),
            by_zone: by_zone_at.is_some(),
            max_failures: self.or_default(
                r.max_failures.as_ref(),
                "max_failures",
                |s| s.parse::<FailureBudget>(),
                || defaults.max_failures,
            ),
            min_healthy: self.or_default(
                r.min_healthy.as_ref(),
                "min_healthy",
                values::parse_wait,
                || defaults.min_healthy,
            ),
            health_timeout: self.or_default(
                r.health_timeout.as_ref(),
                "health_timeout",
                values::parse_duration,
                || defaults.health_timeout,
            ),
            command_timeout: self.or_default(
                r.command_timeout.as_ref(),
                "command_timeout",
                values::parse_duration,
                || defaults.command_timeout,
            ),
            pull_timeout: self.or_default(
                r.pull_timeout.as_ref(),
                "pull_timeout",
                values::parse_duration,
                || defaults.pull_timeout,
            ),
            revert: self.flag(r.revert.as_ref(), "revert", defaults.revert),
            min_bgp_peers: self.or_default(
                r.min_bgp_peers.as_ref(),
                "min_bgp_peers",
                count,
                || defaults.min_bgp_peers,
            ),
            checks: r
                .checks
                .as_ref()
                .map(|c| self.operator_checks(c))
                .unwrap_or_default(),
        };
        (rollout, by_zone_at)
    }

    /// `batch:` as a one-entry ramp, or the list it is.
    fn batch(&mut self, raw: &Spanned<RawBatch>) -> Option<Vec<BatchSize>> {
        let parse = |s: &str| s.parse::<BatchSize>();
        match &raw.value {
            RawBatch::One { text, typed } => {
                let text = if *typed {
                    self.source_text(raw.defined).unwrap_or(text)
                } else {
                    text
                };
                match parse(text) {
                    Ok(size) => Some(vec![size]),
                    Err(e) => {
                        self.report(raw.referenced, e.named("batch").to_string());
                        None
                    }
                }
            }
            RawBatch::Ramp(entries) if entries.is_empty() => {
                self.report(
                    raw.referenced,
                    "`batch` is an empty list; give a batch size such as 10 or \"20%\", \
                     or a ramp such as [1, 5, \"25%\"]",
                );
                None
            }
            RawBatch::Ramp(entries) => {
                let sizes: Vec<Option<BatchSize>> = entries
                    .iter()
                    .map(|s| self.check(s, "batch", parse))
                    .collect();
                sizes.into_iter().collect()
            }
        }
    }

    /// The text of the value at `at` as written in the file, for a plain
    /// scalar that YAML read as a number or a boolean.
    fn source_text(&self, at: Location) -> Option<&str> {
        let span = at.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let text = self.source.get(start..start.checked_add(len)?)?.trim();
        (!text.is_empty()).then_some(text)
    }
}

/// `by:`: `true` for `zone`, `false` for `host`.
fn grouping(s: &str) -> Result<bool, InvalidValue> {
    match s {
        "host" => Ok(false),
        "zone" => Ok(true),
        _ => Err(InvalidValue::new("by", s, "is not `host` or `zone`")),
    }
}

/// A non-negative whole number.
fn count(s: &str) -> Result<usize, InvalidValue> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse()
            .map_err(|_| InvalidValue::new("number", s, "is too large"))
    } else {
        Err(InvalidValue::new(
            "number",
            s,
            "is not a whole number (0 or more)",
        ))
    }
}
