//! What a change does to a file or a container, as `plan` shows it: JSON
//! files key by key, other text files as a unified diff, containers by
//! image, options and environment keys. Environment values are secrets:
//! [`Diff::masked`] takes them out before anything is printed.

use serde::Serialize;
use serde_json::{Map, Value};

/// Lines of context around each change of a unified diff.
const CONTEXT_LINES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Diff {
    /// A JSON document compared key by key (daemon.json, calico.cni).
    Json {
        path: String,
        /// The file does not exist yet.
        created: bool,
        keys: Vec<KeyChange>,
        /// Keys (nested ones counted one by one) that stay as they are.
        unchanged: usize,
    },
    /// Any other text file, as `diff -u` would print it.
    Text {
        path: String,
        created: bool,
        unified: String,
    },
    /// A container that is started or replaced.
    Container {
        name: String,
        /// The image it runs now, when one runs.
        from_image: Option<String>,
        to_image: String,
        options_added: Vec<String>,
        options_removed: Vec<String>,
        /// The running container does not say which options it was started
        /// with (it was not started by calico-rollout).
        options_unknown: bool,
        env: Vec<KeyChange>,
    },
}

/// One key of a JSON document or an environment, and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// A dotted path for nested JSON keys (`ipam.type`).
    pub key: String,
    pub change: KeyChangeKind,
    /// Compact JSON for JSON files; the raw value for environment keys.
    /// `None` once masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// The values were taken out (`--show-secrets` keeps them).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChangeKind {
    Added,
    Changed,
    Removed,
}

impl KeyChange {
    fn new(key: String, old: Option<String>, new: Option<String>) -> Self {
        let change = match (&old, &new) {
            (None, _) => KeyChangeKind::Added,
            (_, None) => KeyChangeKind::Removed,
            _ => KeyChangeKind::Changed,
        };
        KeyChange {
            key,
            change,
            old,
            new,
            masked: false,
        }
    }
}

impl Diff {
    /// A JSON file: `old` is what the agent has (none when it has no such
    /// file). Content that is not a JSON object falls back to a text diff.
    pub fn json(path: &str, old: Option<&[u8]>, new: &[u8]) -> Diff {
        let object = |bytes: &[u8]| match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        let empty = |bytes: &[u8]| bytes.iter().all(u8::is_ascii_whitespace);
        let old_map = match old {
            None => Some(Map::new()),
            Some(bytes) if empty(bytes) => Some(Map::new()),
            Some(bytes) => object(bytes),
        };
        match (old_map, object(new)) {
            (Some(old_map), Some(new_map)) => {
                let mut keys = Vec::new();
                let mut unchanged = 0;
                compare(&old_map, &new_map, "", &mut keys, &mut unchanged);
                Diff::Json {
                    path: path.to_string(),
                    created: old.is_none(),
                    keys,
                    unchanged,
                }
            }
            _ => Diff::text(path, old, new),
        }
    }

    /// A text file, as a unified diff of lines.
    pub fn text(path: &str, old: Option<&[u8]>, new: &[u8]) -> Diff {
        let old_text = old.map(String::from_utf8_lossy).unwrap_or_default();
        let new_text = String::from_utf8_lossy(new);
        let (from, to) = match old {
            Some(_) => (format!("{path} (on the agent)"), format!("{path} (new)")),
            None => ("/dev/null".to_string(), format!("{path} (new)")),
        };
        let unified = similar::TextDiff::from_lines(old_text.as_ref(), new_text.as_ref())
            .unified_diff()
            .context_radius(CONTEXT_LINES)
            .header(&from, &to)
            .to_string();
        Diff::Text {
            path: path.to_string(),
            created: old.is_none(),
            unified,
        }
    }

    /// Environment files (`KEY=VALUE` lines), key by key.
    pub fn env(old: Option<&[u8]>, new: &[u8]) -> Vec<KeyChange> {
        let parse = |bytes: &[u8]| -> Vec<(String, String)> {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = old.map(parse).unwrap_or_default();
        let new = parse(new);
        let find = |list: &[(String, String)], key: &str| {
            list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let mut changes: Vec<KeyChange> = new
            .iter()
            .filter(|(k, v)| find(&old, k).as_ref() != Some(v))
            .map(|(k, v)| KeyChange::new(k.clone(), find(&old, k), Some(v.clone())))
            .collect();
        changes.extend(
            old.iter()
                .filter(|(k, _)| find(&new, k).is_none())
                .map(|(k, v)| KeyChange::new(k.clone(), Some(v.clone()), None)),
        );
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        changes
    }

    /// The same diff with every environment value taken out.
    pub fn masked(&self) -> Diff {
        let mut diff = self.clone();
        if let Diff::Container { env, .. } = &mut diff {
            for key in env {
                key.old = None;
                key.new = None;
                key.masked = true;
            }
        }
        diff
    }
}

/// Options as sets: `docker run` takes them in any order. A flag and the
/// word after it (`-v /a:/a`) are one option.
pub fn options_diff(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let (old, new) = (options(old), options(new));
    let added = new.iter().filter(|o| !old.contains(o)).cloned().collect();
    let removed = old.iter().filter(|o| !new.contains(o)).cloned().collect();
    (added, removed)
}

/// `docker run` words as options: the image is not among them, so a word
/// that is not a flag is the value of the flag before it.
pub fn options(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in words {
        match out.last_mut() {
            Some(flag)
                if !w.starts_with('-') && flag.starts_with('-') && !flag.contains([' ', '=']) =>
            {
                flag.push(' ');
                flag.push_str(w);
            }
            _ => out.push(w.clone()),
        }
    }
    out
}

/// Walks two objects, recursing where both sides hold an object, so that
/// one changed nested key does not show as the whole subtree.
fn compare(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<KeyChange>,
    unchanged: &mut usize,
) {
    let path = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    for (k, new_value) in new {
        match old.get(k) {
            Some(old_value) if old_value == new_value => *unchanged += 1,
            Some(Value::Object(o)) if new_value.is_object() => {
                let n = new_value.as_object().expect("checked");
                compare(o, n, &path(k), out, unchanged);
            }
            old_value => out.push(KeyChange::new(
                path(k),
                old_value.map(Value::to_string),
                Some(new_value.to_string()),
            )),
        }
    }
    for (k, old_value) in old {
        if !new.contains_key(k) {
            out.push(KeyChange::new(path(k), Some(old_value.to_string()), None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_keys(d: &Diff) -> (Vec<(String, KeyChangeKind)>, usize) {
        match d {
            Diff::Json {
                keys, unchanged, ..
            } => (
                keys.iter().map(|k| (k.key.clone(), k.change)).collect(),
                *unchanged,
            ),
            other => panic!("expected a JSON diff, got {other:?}"),
        }
    }

    #[test]
    fn json_names_added_changed_and_removed_keys_and_counts_the_rest() {
        let old =
            br#"{"debug": false, "log-opts": {"max-size": "10m", "max-file": "3"}, "old": 1}"#;
        let new = br#"{"debug": false, "log-opts": {"max-size": "50m", "max-file": "3"},
                       "cluster-store": "etcd://127.0.0.1:2379"}"#;
        let d = Diff::json("/etc/docker/daemon.json", Some(old), new);
        let (keys, unchanged) = json_keys(&d);
        assert_eq!(
            keys,
            [
                ("log-opts.max-size".to_string(), KeyChangeKind::Changed),
                ("cluster-store".to_string(), KeyChangeKind::Added),
                ("old".to_string(), KeyChangeKind::Removed),
            ]
        );
        assert_eq!(unchanged, 2, "debug and log-opts.max-file");
        let Diff::Json { keys, created, .. } = &d else {
            unreachable!()
        };
        assert!(!created);
        assert_eq!(keys[1].new.as_deref(), Some(r#""etcd://127.0.0.1:2379""#));
        assert_eq!(keys[0].old.as_deref(), Some(r#""10m""#));
    }

    #[test]
    fn json_of_a_new_or_empty_file_adds_every_key() {
        for old in [None, Some(&b"\n"[..])] {
            let (keys, unchanged) = json_keys(&Diff::json("/x.json", old, br#"{"a": 1, "b": 2}"#));
            assert_eq!(keys.len(), 2);
            assert!(keys.iter().all(|(_, c)| *c == KeyChangeKind::Added));
            assert_eq!(unchanged, 0);
        }
    }

    #[test]
    fn a_file_that_is_not_json_is_diffed_as_text() {
        let d = Diff::json("/x.json", Some(b"{ broken"), b"{\"a\": 1}\n");
        let Diff::Text { unified, .. } = d else {
            panic!("{d:?}")
        };
        assert!(unified.contains("-{ broken"), "{unified}");
        assert!(unified.contains("+{\"a\": 1}"), "{unified}");
    }

    #[test]
    fn text_is_a_unified_diff_with_headers() {
        let old = b"[Unit]\nDescription=gateway\n[Service]\nExecStart=/usr/bin/etcd gateway start --endpoints=http://a:2379\n";
        let new = b"[Unit]\nDescription=gateway\n[Service]\nExecStart=/usr/bin/etcd gateway start --endpoints=http://b:2379\n";
        let Diff::Text {
            unified, created, ..
        } = Diff::text("/etc/systemd/system/x.service", Some(old), new)
        else {
            panic!()
        };
        assert!(!created);
        assert!(unified.starts_with("--- /etc/systemd/system/x.service (on the agent)\n+++ "));
        assert!(
            unified.contains("-ExecStart=/usr/bin/etcd gateway start --endpoints=http://a:2379")
        );
        assert!(
            unified.contains("+ExecStart=/usr/bin/etcd gateway start --endpoints=http://b:2379")
        );
        assert!(unified.contains(" [Service]"), "context lines are kept");
        let Diff::Text { unified, .. } = Diff::text("/new", None, b"one\n") else {
            panic!()
        };
        assert!(unified.starts_with("--- /dev/null\n"), "{unified}");
    }

    #[test]
    fn env_changes_by_key_and_masking_takes_every_value_out() {
        let old = b"A=1\nB=secret-old\nGONE=x\n";
        let new = b"A=1\nB=secret-new\nNEW=y\n";
        let env = Diff::env(Some(old), new);
        let got: Vec<(&str, KeyChangeKind)> =
            env.iter().map(|k| (k.key.as_str(), k.change)).collect();
        assert_eq!(
            got,
            [
                ("B", KeyChangeKind::Changed),
                ("GONE", KeyChangeKind::Removed),
                ("NEW", KeyChangeKind::Added)
            ]
        );
        let d = Diff::Container {
            name: "calico-node".into(),
            from_image: None,
            to_image: "calico/node:v3".into(),
            options_added: vec![],
            options_removed: vec![],
            options_unknown: false,
            env,
        };
        let shown = format!(
            "{:?}{}",
            d.masked(),
            serde_json::to_string(&d.masked()).unwrap()
        );
        for secret in ["secret-old", "secret-new", "=x", "\"y\""] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("\"masked\":true"));
        assert!(
            format!("{d:?}").contains("secret-new"),
            "unmasked keeps them"
        );
    }

    #[test]
    fn options_compare_as_sets() {
        let old: Vec<String> = ["--net=host", "--privileged", "-v", "/a:/a", "-v", "/c:/c"]
            .map(String::from)
            .into();
        let new: Vec<String> = ["-v", "/c:/c", "--privileged", "--net=host", "-v=/b:/b"]
            .map(String::from)
            .into();
        assert_eq!(
            options_diff(&old, &new),
            (vec!["-v=/b:/b".to_string()], vec!["-v /a:/a".to_string()])
        );
    }
}
