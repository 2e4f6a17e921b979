//! Reading `cluster.yaml` into an [`Inventory`]: YAML shape first (serde,
//! unknown keys rejected), then every value, then the rules that tie values
//! together (agent names are unique; with `rollout.by: zone` every agent has
//! a `zone`), then the local files it names. Nothing here opens a network
//! connection.
//!
//! This file holds the entry point, the errors and the wording of YAML
//! errors. The value checks live in [`check::Checker`], one file per part of
//! the inventory: `sections` (etcd, docker, cni, containers, templates),
//! `tls` (etcd.tls and its files), `rollout` and `agents` (with their SSH
//! settings).

mod agents;
mod check;
mod checks;
mod rollout;
mod sections;
mod ssh_config;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};
use sha2::{Digest, Sha256};
use thiserror::Error;

use self::check::Checker;
use super::Inventory;
use super::raw::RawInventory;

/// One located message about the inventory file. `line` and `column` are
/// 1-based; 0 means the position is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Problem {
    fn at(loc: Location, message: impl Into<String>) -> Self {
        Problem {
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        }
    }

    /// `file:line:col: message`.
    fn render(&self, path: &Path) -> String {
        if self.line == 0 {
            format!("{}: {}", path.display(), self.message)
        } else {
            format!(
                "{}:{}:{}: {}",
                path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// Why an inventory could not be loaded. Every message names the file, and
/// all but `Read` the line and column.
#[derive(Debug, Error)]
pub enum InventoryError {
    /// The file could not be read at all.
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Not YAML, or YAML of the wrong shape (unknown key, a list where a
    /// value belongs, …). Only the first such problem is known.
    #[error("{}", problem.render(path))]
    Yaml { path: PathBuf, problem: Problem },
    /// Well-formed YAML with bad values or missing files: all of them, one
    /// per line, in file order.
    #[error("{}", render_all(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

#[cfg(test)]
impl InventoryError {
    /// The located problems (none for `Read`).
    pub fn problems(&self) -> &[Problem] {
        match self {
            InventoryError::Read { .. } => &[],
            InventoryError::Yaml { problem, .. } => std::slice::from_ref(problem),
            InventoryError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_all(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.render(path))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates the inventory at `path`. `~` expands with `$HOME`;
/// relative local paths resolve against the inventory's folder.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    load_with_home(path, home.as_deref())
}

fn load_with_home(path: &Path, home: Option<&Path>) -> Result<Inventory, InventoryError> {
    let bytes = fs::read(path).map_err(|error| InventoryError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let yaml_error = |problem| InventoryError::Yaml {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, column) = line_col(&bytes[..e.valid_up_to()]);
        yaml_error(Problem {
            line,
            column,
            message: "the file is not valid UTF-8 text".into(),
        })
    })?;
    let raw: Spanned<RawInventory> =
        serde_saphyr::from_str(text).map_err(|e| yaml_error(yaml_problem(&e)))?;

    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base_dir = std::path::absolute(&folder).unwrap_or(folder);
    let mut checker = Checker::new(text, &base_dir, home);
    let parts = checker.inventory(&raw);
    let mut problems = checker.problems;
    match parts {
        Some(parts) if problems.is_empty() => Ok(parts.into_inventory(path, hash)),
        _ => {
            problems.sort_by_key(|p| (p.line, p.column));
            problems.dedup();
            Err(InventoryError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }
}

/// 1-based line and column (in characters) just after `prefix`.
fn line_col(prefix: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() as u64 + 1;
    let last = text.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() as u64 + 1)
}

// ---------------------------------------------------------------------------
// YAML errors

fn yaml_problem(err: &serde_saphyr::Error) -> Problem {
    let message = escape_controls(&yaml_message(err));
    match err.location() {
        Some(loc) => Problem::at(loc, message),
        None => Problem {
            line: 0,
            column: 0,
            message,
        },
    }
}

/// serde-saphyr's user-facing wording, with the shape errors this file can
/// run into reworded for an operator.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    match err {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => yaml_message(error),
        E::SerdeUnknownField {
            field, expected, ..
        } => format!("unknown field `{field}`, expected {}", one_of(expected)),
        E::SerdeMissingField { field, .. } => format!("missing required key `{field}`"),
        E::Unexpected { expected, .. } => match *expected {
            "mapping start" | "empty mapping start" => {
                "expected a mapping (`key: value` entries) here".into()
            }
            "sequence start" => "expected a list here".into(),
            "string scalar" | "scalar" | "str expected" => {
                "expected a single value here, not a list or a mapping".into()
            }
            _ => UserMessageFormatter.format_message(err).into_owned(),
        },
        E::NullIntoString { .. } => "expected a value here, found nothing (null)".into(),
        _ => UserMessageFormatter.format_message(err).into_owned(),
    }
}

/// serde's wording for a list of allowed keys.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "no keys here".into(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => format!(
            "one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
