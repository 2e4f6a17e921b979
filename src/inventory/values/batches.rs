//! Batch sizes and failure budgets: a count of hosts or a share of them.

use std::fmt;
use std::str::FromStr;

use super::InvalidValue;

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
