//! libnetwork and node: keep a container running from the desired spec,
//! replacing one that runs another image or configuration. The image is
//! pulled while staging, so nothing is stopped for an image that cannot be
//! had.

use super::{Action, Change, Gate, Plan, differs};
use crate::desired::ContainerSpec;
use crate::diff::{Diff, options, options_diff};
use crate::facts::{Facts, normalize_image};

/// What starting `spec` changes against the container the host runs now.
/// Environment changes need the env file's contents: without them (apply
/// does not read them) the list is empty.
fn container_diff(spec: &ContainerSpec, facts: &Facts) -> Diff {
    let running = facts.containers.get(spec.name);
    let (options_added, options_removed, options_unknown) =
        match running.map(|c| c.options.as_deref()) {
            None => (options(&spec.options), Vec::new(), false),
            Some(Some(old)) => {
                let (added, removed) = options_diff(old, &spec.options);
                (added, removed, false)
            }
            Some(None) => (Vec::new(), Vec::new(), true),
        };
    let env = match facts.text(spec.env_file.path.as_str()) {
        Some(old) => Diff::env(old, &spec.env_file.content),
        None => Vec::new(),
    };
    Diff::Container {
        name: spec.name.to_string(),
        from_image: running.map(|c| c.image.clone()),
        to_image: spec.image.to_string(),
        options_added,
        options_removed,
        options_unknown,
        env,
    }
}

pub fn plan(section: &str, want: Option<&ContainerSpec>, facts: &Facts) -> Plan {
    let Some(spec) = want else {
        return Plan::Skipped(format!("{section}.enabled is false"));
    };
    if let Err(e) = &facts.docker_answering {
        return Plan::Refused(format!("docker is not answering: {e}"));
    }
    let mut change = Change::default();
    let env_changed = differs(facts, &spec.env_file);
    if env_changed {
        change.apply.push(Action::install(&spec.env_file, facts));
    }
    let name = spec.name;
    let start = match facts.containers.get(name) {
        None => Some(format!("start {name} ({})", spec.image)),
        Some(c) if c.spec_hash.as_deref() != Some(&spec.spec_hash) => {
            Some(if c.image != spec.image.as_str() {
                format!("replace {name}: {} -> {}", c.image, spec.image)
            } else {
                format!("replace {name}: its configuration changed ({})", spec.image)
            })
        }
        Some(c) if !c.running => {
            change.summary.push(format!("start the stopped {name}"));
            change
                .apply
                .push(Action::StartContainer { name: name.into() });
            change.gate = Some(Gate::Container { name: name.into() });
            None
        }
        Some(_) => None,
    };
    if start.is_some() || env_changed {
        change.diffs.push(container_diff(spec, facts));
    }
    if let Some(summary) = start {
        change.summary.push(summary);
        if !facts.images.contains(&normalize_image(spec.image.as_str())) {
            change.stage.push(Action::Pull {
                image: spec.image.to_string(),
            });
        }
        change
            .apply
            .push(Action::ReplaceContainer(Box::new(spec.clone())));
        change.gate = Some(Gate::Container { name: name.into() });
    } else if env_changed && change.gate.is_none() {
        // The container already runs this spec; only the file drifted.
        change
            .summary
            .push(format!("rewrite {}", spec.env_file.path));
    }
    Plan::from_change(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Container;
    use crate::steps::testing::{converged_facts, desired, fresh_facts};

    #[test]
    fn table() {
        let want = desired();
        let node = want.node.as_ref();
        let converged = converged_facts(&want);
        let mut old_image = converged.clone();
        old_image.images.remove("calico/node:v2.6.12");
        old_image.containers.insert(
            "calico-node".into(),
            Container {
                id: "c1".into(),
                image: "calico/node:v2.6.11".into(),
                running: true,
                policy: "always".into(),
                spec_hash: Some("old".into()),
                ..Container::default()
            },
        );
        let mut stopped = converged.clone();
        stopped.containers.get_mut("calico-node").unwrap().running = false;
        let mut docker_down = converged.clone();
        docker_down.docker_answering = Err("Cannot connect to the Docker daemon".into());

        let summary = |p: Plan| match p {
            Plan::Change(c) => c.summary.join("; "),
            other => panic!("expected a change, got {other:?}"),
        };
        assert_eq!(plan("node", node, &converged), Plan::Ok);
        assert_eq!(
            summary(plan("node", node, &fresh_facts())),
            "start calico-node (calico/node:v2.6.12)"
        );
        assert_eq!(
            summary(plan("node", node, &old_image)),
            "replace calico-node: calico/node:v2.6.11 -> calico/node:v2.6.12"
        );
        assert_eq!(
            summary(plan("node", node, &stopped)),
            "start the stopped calico-node"
        );
        assert!(matches!(plan("node", node, &docker_down), Plan::Refused(_)));

        // The new image is pulled while staging, unless docker has it.
        let Plan::Change(c) = plan("node", node, &old_image) else {
            panic!()
        };
        assert_eq!(
            c.stage,
            [Action::Pull {
                image: "calico/node:v2.6.12".into()
            }]
        );
        let mut pulled = old_image.clone();
        pulled.images.insert("calico/node:v2.6.12".into());
        let Plan::Change(c) = plan("node", node, &pulled) else {
            panic!()
        };
        assert!(c.stage.is_empty());
        assert!(matches!(c.apply[..], [Action::ReplaceContainer(_)]));
        assert!(matches!(plan("node", None, &converged), Plan::Skipped(_)));
    }

    #[test]
    fn a_replacement_says_what_changes_in_image_options_and_environment() {
        let want = desired();
        let spec = want.node.as_ref().unwrap();
        let mut facts = converged_facts(&want);
        let running = facts.containers.get_mut("calico-node").unwrap();
        running.image = "calico/node:v2.6.11".into();
        running.spec_hash = Some("old".into());
        running.options = Some(vec!["--net=host".into(), "--privileged".into()]);
        facts.texts = Some(
            [(
                spec.env_file.path.to_string(),
                b"ETCD_ENDPOINTS=http://old:2379\nSTALE=1\n".to_vec(),
            )]
            .into(),
        );
        facts.hashes.remove(spec.env_file.path.as_str());
        let Plan::Change(c) = plan("node", Some(spec), &facts) else {
            panic!()
        };
        let [
            Diff::Container {
                from_image,
                options_added,
                options_removed,
                env,
                ..
            },
        ] = &c.diffs[..]
        else {
            panic!("{:?}", c.diffs)
        };
        assert_eq!(from_image.as_deref(), Some("calico/node:v2.6.11"));
        assert_eq!(options_removed, &["--privileged"]);
        assert!(options_added.contains(&"--restart=always".to_string()));
        let keys: Vec<&str> = env.iter().map(|k| k.key.as_str()).collect();
        assert!(
            keys.contains(&"ETCD_ENDPOINTS") && keys.contains(&"STALE"),
            "{keys:?}"
        );

        // Without the file's contents (apply), no environment is claimed.
        facts.texts = None;
        let Plan::Change(c) = plan("node", Some(spec), &facts) else {
            panic!()
        };
        assert!(matches!(&c.diffs[..], [Diff::Container { env, .. }] if env.is_empty()));
    }
}
