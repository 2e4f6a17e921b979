//! libnetwork and node: keep a container running from the desired spec,
//! replacing one that runs another image or configuration.

use super::{Action, Change, Gate, Plan, Undo, differs, undo_install};
use crate::desired::{ContainerSpec, SPEC_LABEL, STATE_DIR};
use crate::facts::Facts;
use crate::shell::{Cmd, quote};

/// `docker run` for a spec. Environment values stay in the root-only env
/// file, so they never show in argv, `ps` or the report.
pub fn run_command(spec: &ContainerSpec) -> Cmd {
    Cmd::new("docker")
        .arg("run")
        .arg("-d")
        .arg("--name")
        .arg(spec.name)
        .arg("--env-file")
        .arg(spec.env_file.path.as_str())
        .arg("--label")
        .arg(format!("{SPEC_LABEL}={}", spec.spec_hash))
        .args(&spec.options)
        .arg(spec.image.as_str())
}

/// The name a replaced container is kept under, stopped, for revert and
/// rollback.
pub fn previous_name(name: &str) -> String {
    format!("{name}-previous")
}

/// Where a retired container's restart policy is kept: it is set to "no"
/// while retired, or a docker restart would start it beside its successor.
fn policy_file(name: &str) -> String {
    format!("{STATE_DIR}/previous/{name}.restart")
}

fn exists(name: &str) -> String {
    format!(
        "{} >/dev/null 2>&1",
        Cmd::new("docker")
            .arg("inspect")
            .arg("--type")
            .arg("container")
            .arg("--")
            .arg(name)
    )
}

fn remove(name: &str) -> String {
    format!(
        "{} >/dev/null",
        Cmd::new("docker").arg("rm").arg("-f").arg("--").arg(name)
    )
}

/// Retires the running container (stopped, renamed, never restarted by
/// docker) and starts one from `spec`.
fn replace_script(spec: &ContainerSpec) -> String {
    let name = spec.name;
    let prev = previous_name(name);
    let policy = policy_file(name);
    let policy_dir = format!("{STATE_DIR}/previous");
    format!(
        "set -e\n\
         if {prev_exists}; then {rm_prev}; fi\n\
         if {exists}; then\n  \
           policy=$({get_policy})\n  \
           mkdir -p -- {policy_dir} && printf '%s\\n' \"$policy\" > {policy}\n  \
           {stop} >/dev/null\n  \
           {no_restart} >/dev/null\n  \
           {rename}\n\
         fi\n\
         {run} >/dev/null\n",
        prev_exists = exists(&prev),
        rm_prev = remove(&prev),
        exists = exists(name),
        get_policy = Cmd::new("docker")
            .arg("inspect")
            .arg("--type")
            .arg("container")
            .arg("--format")
            .arg("{{.HostConfig.RestartPolicy.Name}}")
            .arg("--")
            .arg(name),
        policy_dir = quote(&policy_dir),
        policy = quote(&policy),
        stop = Cmd::new("docker").arg("stop").arg("--").arg(name),
        no_restart = Cmd::new("docker")
            .arg("update")
            .arg("--restart=no")
            .arg("--")
            .arg(name),
        rename = Cmd::new("docker").arg("rename").arg(name).arg(&prev),
        run = run_command(spec),
    )
}

/// Takes a replacement back: the new container goes, the retired one comes
/// back with its restart policy. Without a retired one, the new one goes.
pub fn restore_script(name: &str) -> String {
    let prev = previous_name(name);
    let policy = policy_file(name);
    format!(
        "set -e\n\
         if {exists}; then {rm}; fi\n\
         if {prev_exists}; then\n  \
           {rename}\n  \
           policy=$(cat -- {policy} 2>/dev/null || echo always)\n  \
           docker update --restart=\"$policy\" -- {name} >/dev/null\n  \
           {start} >/dev/null\n  \
           rm -f -- {policy}\n\
         fi\n",
        exists = exists(name),
        rm = remove(name),
        prev_exists = exists(&prev),
        rename = Cmd::new("docker").arg("rename").arg(&prev).arg(name),
        policy = quote(&policy),
        name = quote(name),
        start = Cmd::new("docker").arg("start").arg("--").arg(name),
    )
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
        change.apply.push(Action::install(&spec.env_file));
        change
            .undo
            .push(undo_install(facts, spec.env_file.path.as_str()));
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
            change.apply.push(Action::Run {
                what: format!("start {name}"),
                script: Cmd::new("docker")
                    .arg("start")
                    .arg("--")
                    .arg(name)
                    .to_string(),
            });
            change.gate = Some(Gate::Container { name: name.into() });
            None
        }
        Some(_) => None,
    };
    if let Some(summary) = start {
        change.summary.push(summary);
        change.apply.push(Action::ReplaceContainer {
            name: name.into(),
            script: replace_script(spec),
        });
        change.gate = Some(Gate::Container { name: name.into() });
        change.undo.insert(0, Undo::Container { name: name.into() });
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
    fn run_command_quotes_and_keeps_env_out_of_argv() {
        let want = desired();
        let node = want.node.as_ref().unwrap();
        let cmd = run_command(node).to_string();
        let argv = shlex::split(&cmd).unwrap();
        assert_eq!(&argv[..4], ["docker", "run", "-d", "--name"]);
        assert!(argv.contains(&"--env-file".to_string()));
        assert!(
            !cmd.contains("s3cret"),
            "env values never reach the command line: {cmd}"
        );
        assert_eq!(argv.last().unwrap(), "calico/node:v2.6.12");
    }

    #[test]
    fn table() {
        let want = desired();
        let node = want.node.as_ref();
        let converged = converged_facts(&want);
        let mut old_image = converged.clone();
        old_image.containers.insert(
            "calico-node".into(),
            Container {
                image: "calico/node:v2.6.11".into(),
                running: true,
                spec_hash: Some("old".into()),
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
        assert!(matches!(plan("node", None, &converged), Plan::Skipped(_)));
    }
}
