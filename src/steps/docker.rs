//! docker: merge the managed keys into /etc/docker/daemon.json and restart
//! docker, refusing whatever would keep dockerd from starting again.

use serde_json::{Map, Value};

use std::sync::Arc;

use super::{
    Action, Change, Expect, FileCheck, Gate, Install, Plan, Restart, Source, Undo, pending_restart,
};
use crate::desired::{DAEMON_JSON_PATH, DOCKER_UNIT, DockerDesired, sha256_hex};
use crate::diff::Diff;
use crate::facts::{Facts, Version};

/// Keys Docker 23.0 removed: dockerd 23+ refuses to start with any of them.
const REMOVED_IN_23: [&str; 3] = ["cluster-store", "cluster-advertise", "cluster-store-opts"];

/// A daemon.json that needs writing, and the managed keys that differ.
#[derive(Debug)]
pub struct Merged {
    pub bytes: Vec<u8>,
    pub changed_keys: Vec<String>,
}

/// Merges `managed` into the agent's daemon.json. Every other key, and the
/// order of keys, is kept. Returns `None` when every managed key already has
/// its value (compared as JSON, not as bytes, so a file formatted
/// differently is not rewritten and docker not restarted).
pub fn merge_daemon_json(
    existing: Option<&[u8]>,
    managed: &Map<String, Value>,
) -> Result<Option<Merged>, String> {
    let mut doc = match existing {
        None => Map::new(),
        Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(format!("{DAEMON_JSON_PATH} is not a JSON object")),
            Err(e) => return Err(format!("{DAEMON_JSON_PATH} is not valid JSON ({e})")),
        },
    };
    let changed_keys: Vec<String> = managed
        .iter()
        .filter(|(k, v)| doc.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    if changed_keys.is_empty() {
        return Ok(None);
    }
    for (k, v) in managed {
        doc.insert(k.clone(), v.clone());
    }
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(doc)).expect("JSON serializes");
    bytes.push(b'\n');
    Ok(Some(Merged {
        bytes,
        changed_keys,
    }))
}

/// dockerd flags whose daemon.json key is not their own long name.
const FLAG_KEYS: [(&str, &str); 20] = [
    ("-H", "hosts"),
    ("--host", "hosts"),
    ("-D", "debug"),
    ("-G", "group"),
    ("-l", "log-level"),
    ("-b", "bridge"),
    ("-p", "pidfile"),
    ("-g", "data-root"),
    ("--graph", "data-root"),
    ("--log-opt", "log-opts"),
    ("--label", "labels"),
    ("--insecure-registry", "insecure-registries"),
    ("--registry-mirror", "registry-mirrors"),
    ("--storage-opt", "storage-opts"),
    ("--exec-opt", "exec-opts"),
    ("--add-runtime", "runtimes"),
    ("--authorization-plugin", "authorization-plugins"),
    ("--cluster-store-opt", "cluster-store-opts"),
    ("--dns-opt", "dns-opts"),
    ("--default-ulimit", "default-ulimits"),
];

/// The daemon.json key a word of dockerd's command line sets, if it is a
/// flag: `-H fd://` sets `hosts`, `--log-opt=…` sets `log-opts`.
fn key_of_flag(word: &str) -> Option<&str> {
    if !word.starts_with('-') {
        return None;
    }
    let name = word.split('=').next().unwrap_or(word);
    // A short flag may carry its value: `-Hfd://`.
    let short = (!name.starts_with("--") && name.len() > 2).then(|| &name[..2]);
    let name = short.unwrap_or(name);
    FLAG_KEYS
        .iter()
        .find(|(flag, _)| *flag == name)
        .map(|(_, key)| *key)
        .or_else(|| name.strip_prefix("--"))
}

/// The flag by which dockerd's own command line in the docker unit sets
/// `key`, if it does.
fn flag_in_unit<'a>(unit_file: &'a str, key: &str) -> Option<&'a str> {
    unit_file
        .lines()
        .filter(|l| l.trim_start().starts_with("ExecStart="))
        .flat_map(|l| l.split_whitespace())
        .find(|w| key_of_flag(w) == Some(key))
        .map(|w| w.split('=').next().unwrap_or(w))
}

pub fn plan(want: Option<&DockerDesired>, facts: &Facts) -> Plan {
    let Some(want) = want else {
        return Plan::Skipped("docker.enabled is false: the docker daemon is left alone".into());
    };
    if REMOVED_IN_23.iter().any(|k| want.managed.contains_key(*k)) {
        match &facts.docker_version {
            Err(e) => {
                return Plan::Refused(format!(
                    "cannot tell the Docker version ({e}); {DAEMON_JSON_PATH} left untouched"
                ));
            }
            Ok(v) if *v >= Version(23, 0, 0) => {
                return Plan::Refused(format!(
                    "Docker {v} refuses to start with cluster-store in daemon.json (removed in Docker 23.0); \
                     {DAEMON_JSON_PATH} left untouched. Set docker.enabled: false for this cluster, \
                     or run Docker 20.10 on the agents"
                ));
            }
            Ok(_) => {}
        }
    }
    let unit_file = format!("ExecStart={}", facts.unit(DOCKER_UNIT).exec_start);
    if let Some((key, flag)) = want
        .managed
        .keys()
        .find_map(|k| flag_in_unit(&unit_file, k).map(|f| (k, f)))
    {
        return Plan::Refused(format!(
            "the docker unit already passes {flag} to dockerd (daemon.json's {key:?}); dockerd refuses a setting given both \
             as a flag and in daemon.json. Remove the flag, or set docker.enabled: false"
        ));
    }
    let merged = match merge_daemon_json(facts.daemon_json.as_deref(), &want.managed) {
        Ok(m) => m,
        Err(e) => return Plan::Refused(format!("{e}: fix it by hand; it was left untouched")),
    };
    let mut change = Change::default();
    if let Some(Merged {
        bytes,
        changed_keys,
    }) = merged
    {
        change.summary.push(format!(
            "set {} in {DAEMON_JSON_PATH}",
            changed_keys.join(", ")
        ));
        change.diffs.push(Diff::json(
            DAEMON_JSON_PATH,
            facts.daemon_json.as_deref(),
            &bytes,
        ));
        change.apply.push(Action::Install(Box::new(Install {
            target: DAEMON_JSON_PATH.parse().expect("valid path"),
            sha256: sha256_hex(&bytes),
            source: Source::Bytes(bytes.into()),
            mode: 0o644,
            // dockerd can check a file before it has to start on it from
            // 23.0; older ones are covered by the refusals above.
            check: matches!(&facts.docker_version, Ok(v) if *v >= Version(23, 0, 0))
                .then_some(FileCheck::Dockerd),
            // Written only if it still is what the merge started from.
            expect: match &facts.daemon_json {
                Some(bytes) => Expect::Sha256(sha256_hex(bytes)),
                None => Expect::Absent,
            },
            pending: Some(DOCKER_UNIT.into()),
            tmp_dir: None,
            remerge: Some(Arc::new(want.managed.clone())),
            undo: Undo::File {
                target: DAEMON_JSON_PATH.into(),
                existed: facts.daemon_json.is_some(),
                tmp_dir: None,
            },
        })));
    }
    // The cluster store's TLS files are read only when dockerd starts.
    let reads_changed = want.reads.iter().any(|f| super::differs(facts, f));
    if !change.apply.is_empty() || reads_changed || pending_restart(facts, DOCKER_UNIT) {
        change
            .summary
            .push(if change.apply.is_empty() && reads_changed {
                "restart docker (its etcd TLS files change)".into()
            } else {
                "restart docker".into()
            });
        change.restart = Some(Restart {
            unit: DOCKER_UNIT.into(),
            gate: Gate::Docker {
                cluster_store: want
                    .managed
                    .get("cluster-store")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        });
        Plan::Change(Box::new(change))
    } else {
        Plan::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::testing::{converged_facts, desired, fresh_facts};
    use serde_json::json;

    fn flag_set_in_unit(unit_file: &str, key: &str) -> bool {
        flag_in_unit(unit_file, key).is_some()
    }

    fn managed() -> Map<String, Value> {
        json!({"cluster-store": "etcd://127.0.0.1:2379"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn flags_are_read_as_the_keys_they_set() {
        let unit = "[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/c.sock \
                    --log-opt max-size=10m -D --insecure-registry=r:5000 $DOCKER_OPTS\n";
        for key in [
            "hosts",
            "containerd",
            "log-opts",
            "debug",
            "insecure-registries",
        ] {
            assert!(flag_set_in_unit(unit, key), "{key}");
        }
        for key in ["cluster-store", "log-level", "max-size", "registry-mirrors"] {
            assert!(!flag_set_in_unit(unit, key), "{key}");
        }
        assert!(flag_set_in_unit(
            "ExecStart=/usr/bin/dockerd -Hunix:///x\n",
            "hosts"
        ));
        assert!(!flag_set_in_unit("# ExecStart=dockerd -H x\n", "hosts"));
    }

    #[test]
    fn merge_keeps_every_other_key_in_order() {
        let existing =
            br#"{"debug": false, "log-opts": {"max-size": "50m"}, "storage-driver": "overlay2"}"#;
        let out = merge_daemon_json(Some(existing), &managed())
            .unwrap()
            .unwrap();
        assert_eq!(out.changed_keys, ["cluster-store"]);
        let text = String::from_utf8(out.bytes).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc,
            json!({"debug": false, "log-opts": {"max-size": "50m"}, "storage-driver": "overlay2",
                   "cluster-store": "etcd://127.0.0.1:2379"})
        );
        let order: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(
            order,
            ["debug", "log-opts", "storage-driver", "cluster-store"]
        );
        assert!(text.ends_with("}\n"));
    }

    /// The agent's daemon.json, and whether a merge rewrites it (or why not).
    type Case = (Option<&'static [u8]>, Result<bool, &'static str>);

    #[test]
    fn merge_table() {
        let cases: [Case; 6] = [
            (None, Ok(true)),
            (Some(b""), Ok(true)),
            (
                Some(br#"{"cluster-store":"etcd://127.0.0.1:2379"}"#),
                Ok(false),
            ),
            (
                Some(b"{\n    \"cluster-store\" : \"etcd://127.0.0.1:2379\", \"debug\": true }"),
                Ok(false),
            ),
            (Some(br#"{"cluster-store":"zk://old:2181"}"#), Ok(true)),
            (Some(b"{ not json"), Err("not valid JSON")),
        ];
        for (input, want) in cases {
            let got = merge_daemon_json(input, &managed());
            match (got, want) {
                (Ok(out), Ok(changes)) => assert_eq!(out.is_some(), changes, "{input:?}"),
                (Err(e), Err(msg)) => assert!(e.contains(msg), "{e}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(merge_daemon_json(Some(b"[1]"), &managed()).is_err());
    }

    #[test]
    fn plan_table() {
        let want = desired();
        let d = want.docker.as_ref();
        let fresh = fresh_facts();
        let mut new_docker = fresh_facts();
        new_docker.docker_version = Ok(Version(24, 0, 7));
        let mut flag = fresh_facts();
        flag.units.get_mut(DOCKER_UNIT).unwrap().exec_start =
            "{ path=/usr/bin/dockerd ; argv[]=/usr/bin/dockerd --cluster-store=etcd://x:2379 ; ignore_errors=no }".into();
        let mut broken = fresh_facts();
        broken.daemon_json = Some(b"{oops".to_vec());
        let mut pending = converged_facts(&want);
        pending.pending.insert(DOCKER_UNIT.into());

        let refused = |p: Plan, needle: &str| match p {
            Plan::Refused(why) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected refusal with {needle:?}, got {other:?}"),
        };
        refused(plan(d, &new_docker), "Docker 24.0.7 refuses");
        refused(plan(d, &flag), "--cluster-store");
        refused(plan(d, &broken), "not valid JSON");
        assert_eq!(plan(d, &converged_facts(&want)), Plan::Ok);
        assert!(matches!(plan(None, &fresh), Plan::Skipped(_)));

        let Plan::Change(c) = plan(d, &fresh) else {
            panic!("fresh agent needs a change")
        };
        assert_eq!(c.summary[0], "set cluster-store in /etc/docker/daemon.json");
        let [
            Diff::Json {
                keys, unchanged, ..
            },
        ] = &c.diffs[..]
        else {
            panic!("{:?}", c.diffs)
        };
        assert_eq!(
            (keys[0].key.as_str(), keys[0].new.as_deref(), keys.len()),
            ("cluster-store", Some(r#""etcd://127.0.0.1:2379""#), 1)
        );
        assert_eq!(*unchanged, 1, "debug stays as it was");
        assert_eq!(
            c.restart.unwrap().gate,
            Gate::Docker {
                cluster_store: Some("etcd://127.0.0.1:2379".into())
            }
        );
        let Action::Install(i) = &c.apply[0] else {
            panic!("{:?}", c.apply)
        };
        assert_eq!(
            i.undo,
            Undo::File {
                target: DAEMON_JSON_PATH.into(),
                existed: true,
                tmp_dir: None
            }
        );
        assert_eq!(
            i.expect,
            Expect::Sha256(sha256_hex(br#"{"debug": false}"#)),
            "written only over what was read"
        );
        assert_eq!(i.pending.as_deref(), Some(DOCKER_UNIT));
        let Plan::Change(c) = plan(d, &pending) else {
            panic!("a pending restart is finished")
        };
        assert!(c.apply.is_empty() && c.restart.is_some());
    }
}
