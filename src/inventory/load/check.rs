//! The core of [`Checker`], which `load` runs over the raw inventory: it
//! checks one value at a time and keeps going after a bad one, so that every
//! problem in the file is reported at once, and it checks each local file
//! once however many settings name it.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::{Problem, escape_controls};
use crate::inventory::raw::Str;
use crate::inventory::values::{self, InvalidValue};

/// A value and where it was set (`None`: built-in default).
#[derive(Debug, Clone)]
pub(super) struct Setting<T> {
    pub(super) value: T,
    pub(super) at: Option<Location>,
}

pub(super) struct Checker<'a> {
    /// The inventory's text, for values whose source spelling serde does
    /// not keep (see [`RawBatch::One`](crate::inventory::raw::RawBatch::One)).
    pub(super) source: &'a str,
    base_dir: &'a Path,
    pub(super) home: Option<&'a Path>,
    pub(super) problems: Vec<Problem>,
    /// Local files already checked, with the check done, so that a shared
    /// setting is reported once.
    files_checked: HashSet<(PathBuf, FileCheck)>,
    pub(super) home_reported: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum FileCheck {
    Identity,
    KnownHostsStrict,
    KnownHostsAcceptNew,
    CniBinary,
    EtcdBinary,
    Templates,
}

impl<'a> Checker<'a> {
    pub(super) fn new(source: &'a str, base_dir: &'a Path, home: Option<&'a Path>) -> Self {
        Checker {
            source,
            base_dir,
            home,
            problems: Vec::new(),
            files_checked: HashSet::new(),
            home_reported: false,
        }
    }
}

impl Checker<'_> {
    pub(super) fn report(&mut self, at: Location, message: impl Into<String>) {
        self.problems
            .push(Problem::at(at, escape_controls(&message.into())));
    }

    /// Checks one value; on failure records a problem naming it `what`.
    pub(super) fn check<T>(
        &mut self,
        s: &Str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match parse(&s.value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(s.referenced, e.named(what).to_string());
                None
            }
        }
    }

    pub(super) fn setting<T>(
        &mut self,
        s: Option<&Str>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Option<Setting<T>> {
        let s = s?;
        self.check(s, what, parse).map(|value| Setting {
            value,
            at: Some(s.referenced),
        })
    }

    /// The checked value, or `default` when missing (or invalid: the
    /// problem is recorded, so the value is never used).
    pub(super) fn or_default<T>(
        &mut self,
        s: Option<&Str>,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
        default: impl FnOnce() -> T,
    ) -> T {
        s.and_then(|s| self.check(s, what, parse))
            .unwrap_or_else(default)
    }

    pub(super) fn flag(&mut self, s: Option<&Str>, what: &str, default: bool) -> bool {
        self.or_default(s, what, values::boolean, || default)
    }

    /// A local path: `~` and `~/…` expand with `$HOME`, relative paths
    /// resolve against the inventory's folder.
    pub(super) fn local_path(&self, raw: &str, what: &str) -> Result<PathBuf, InvalidValue> {
        let bad = |problem: &str| InvalidValue::new(what, raw, problem);
        if raw.is_empty() {
            return Err(bad("is empty"));
        }
        if raw.contains('\0') {
            return Err(bad("contains a NUL character"));
        }
        let rest = if raw == "~" {
            Some("")
        } else if let Some(rest) = raw.strip_prefix("~/") {
            Some(rest)
        } else if raw.starts_with('~') {
            return Err(bad(
                "uses ~user, which is not supported (write ~/… or a full path)",
            ));
        } else {
            None
        };
        match rest {
            Some(rest) => match self.home {
                Some(home) if rest.is_empty() => Ok(home.to_path_buf()),
                Some(home) => Ok(home.join(rest)),
                None => Err(bad("starts with ~ but $HOME is not set")),
            },
            None => Ok(self.base_dir.join(raw)),
        }
    }

    pub(super) fn located_result<T>(
        &mut self,
        parsed: Option<(&Str, Result<T, InvalidValue>)>,
    ) -> Option<Setting<T>> {
        match parsed? {
            (s, Ok(value)) => Some(Setting {
                value,
                at: Some(s.referenced),
            }),
            (s, Err(e)) => {
                self.report(s.referenced, e.to_string());
                None
            }
        }
    }

    /// Checks a local file or folder once per (path, check), reporting at `at`.
    pub(super) fn check_file(&mut self, path: &Path, check: FileCheck, at: Location) {
        if !self.files_checked.insert((path.to_path_buf(), check)) {
            return;
        }
        let shown = path.display();
        let meta = match fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.report(at, format!("cannot inspect {shown}: {e}"));
                return;
            }
        };
        let message = match (check, meta) {
            (FileCheck::Templates, None) => {
                Some(format!("templates folder {shown} does not exist"))
            }
            (FileCheck::Templates, Some(m)) if !m.is_dir() => {
                Some(format!("templates {shown} is not a folder"))
            }
            (FileCheck::Templates, Some(_)) => fs::read_dir(path)
                .err()
                .map(|e| format!("cannot read templates folder {shown}: {e}")),
            (FileCheck::KnownHostsAcceptNew, None) => None,
            (FileCheck::KnownHostsStrict, None) => Some(format!(
                "known_hosts file {shown} does not exist; strict host key checking needs it \
                 (or use accept-new)"
            )),
            (FileCheck::Identity, None) => Some(format!("identity_file {shown} does not exist")),
            (FileCheck::CniBinary, None) => Some(format!("CNI binary {shown} does not exist")),
            (FileCheck::EtcdBinary, None) => Some(format!(
                "etcd binary {shown} does not exist on this machine (a path is pushed to the \
                 agents; for one already on them, write {{on_agent: /usr/bin/etcd}})"
            )),
            (kind, Some(m)) => {
                let label = match kind {
                    FileCheck::Identity => "identity_file",
                    FileCheck::CniBinary => "CNI binary",
                    FileCheck::EtcdBinary => "etcd binary",
                    _ => "known_hosts file",
                };
                if !m.is_file() {
                    Some(format!("{label} {shown} is not a regular file"))
                } else if kind == FileCheck::Identity
                    && let Some(refusal) = crate::inventory::key_too_open(path, &m)
                {
                    Some(refusal)
                } else {
                    fs::File::open(path)
                        .err()
                        .map(|e| format!("cannot read {label} {shown}: {e}"))
                }
            }
        };
        if let Some(message) = message {
            self.report(at, message);
        }
    }
}
