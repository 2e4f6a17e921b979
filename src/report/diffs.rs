//! Plan's diffs as people read them: a JSON file's keys with `+`, `~` and
//! `-`, a text file's unified diff, a container's image, options and
//! environment keys. Values are printed only when the diff kept them.

use crate::diff::{Diff, KeyChange, KeyChangeKind};

/// The lines of one diff, without indentation.
pub fn diff_lines(diff: &Diff) -> Vec<String> {
    match diff {
        Diff::Json {
            path,
            created,
            keys,
            unchanged,
        } => {
            let mut lines = vec![if *created {
                format!("{path} (a new file):")
            } else {
                format!("{path}:")
            }];
            lines.extend(keys.iter().map(json_key));
            if *unchanged > 0 {
                lines.push(format!(
                    "  ({unchanged} {} unchanged)",
                    if *unchanged == 1 { "key" } else { "keys" }
                ));
            }
            lines
        }
        Diff::Text { unified, .. } => unified.lines().map(str::to_string).collect(),
        Diff::Container {
            name,
            from_image,
            to_image,
            options_added,
            options_removed,
            options_unknown,
            env,
        } => {
            let mut lines = vec![match from_image {
                None => format!("{name}: a new container from {to_image}"),
                Some(from) if from == to_image => format!("{name}: {to_image} (same image)"),
                Some(from) => format!("{name}: image {from} -> {to_image}"),
            }];
            lines.extend(options_added.iter().map(|o| format!("  + option {o}")));
            lines.extend(options_removed.iter().map(|o| format!("  - option {o}")));
            if *options_unknown {
                lines.push(
                    "  options: the running container does not record them (not started by calico-rollout)"
                        .into(),
                );
            }
            lines.extend(env.iter().map(env_key));
            lines
        }
    }
}

fn json_key(k: &KeyChange) -> String {
    let v = |v: &Option<String>| v.as_deref().unwrap_or("?").to_string();
    match k.change {
        KeyChangeKind::Added => format!("  + {}: {}", k.key, v(&k.new)),
        KeyChangeKind::Changed => format!("  ~ {}: {} -> {}", k.key, v(&k.old), v(&k.new)),
        KeyChangeKind::Removed => format!("  - {} (was {})", k.key, v(&k.old)),
    }
}

fn env_key(k: &KeyChange) -> String {
    let sign = match k.change {
        KeyChangeKind::Added => '+',
        KeyChangeKind::Changed => '~',
        KeyChangeKind::Removed => '-',
    };
    if k.masked {
        let what = match k.change {
            KeyChangeKind::Removed => "",
            _ => " (value hidden; --show-secrets shows it)",
        };
        return format!("  {sign} env {}{what}", k.key);
    }
    match (k.change, &k.old, &k.new) {
        (KeyChangeKind::Changed, Some(old), Some(new)) => {
            format!("  ~ env {}: {old} -> {new}", k.key)
        }
        (_, _, Some(new)) => format!("  {sign} env {}={new}", k.key),
        (_, Some(old), None) => format!("  - env {} (was {old})", k.key),
        _ => format!("  {sign} env {}", k.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_diff_names_each_key_and_counts_the_rest() {
        let d = Diff::json(
            "/etc/docker/daemon.json",
            Some(br#"{"debug": false, "storage-driver": "overlay2"}"#),
            br#"{"debug": false, "storage-driver": "overlay2", "cluster-store": "etcd://127.0.0.1:2379"}"#,
        );
        assert_eq!(
            diff_lines(&d),
            [
                "/etc/docker/daemon.json:",
                r#"  + cluster-store: "etcd://127.0.0.1:2379""#,
                "  (2 keys unchanged)",
            ]
        );
    }

    #[test]
    fn a_container_diff_hides_masked_values() {
        let env = Diff::env(Some(b"A=1\nB=old\n"), b"A=2\nC=new\n");
        let d = Diff::Container {
            name: "calico-node".into(),
            from_image: Some("calico/node:v2.6.11".into()),
            to_image: "calico/node:v2.6.12".into(),
            options_added: vec!["--net=host".into()],
            options_removed: vec![],
            options_unknown: false,
            env,
        };
        assert_eq!(
            diff_lines(&d),
            [
                "calico-node: image calico/node:v2.6.11 -> calico/node:v2.6.12",
                "  + option --net=host",
                "  ~ env A: 1 -> 2",
                "  - env B (was old)",
                "  + env C=new",
            ]
        );
        let masked = diff_lines(&d.masked()).join("\n");
        assert!(!masked.contains("old") && !masked.contains("new") && !masked.contains(": 1"));
        assert!(masked.contains("~ env A (value hidden; --show-secrets shows it)"));
        assert!(masked.contains("- env B\n"), "{masked}");
    }
}
