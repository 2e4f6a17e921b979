//! Files that cannot be read, are not YAML, or are YAML of the wrong shape:
//! only the first problem is known, located by the parser.

use super::*;
use crate::inventory::load;

#[test]
fn unknown_key_names_position_and_expected_keys() {
    let f = Fixture::new();
    let cases = [
        (
            "  batch: 10 ",
            "  bacth: 10 ",
            "bacth",
            "unknown field `bacth`, expected one of `batch`, `canary`, `by`, `max_failures`, \
             `min_healthy`, `health_timeout`, `command_timeout`, `pull_timeout`, `revert`, `min_bgp_peers`, `checks`",
        ),
        (
            "{name: agent-1,",
            "{name: agent-1, adress: x,",
            "adress",
            "unknown field `adress`, expected one of `name`, `address`, `role`, `zone`, `mesos_address`, \
             `user`, `port`, `identity_file`, `known_hosts`, `host_key_checking`, `become`, \
             `connect_timeout`, `proxy_jump`",
        ),
        (
            "rollout:",
            "rollouts:",
            "rollouts",
            "unknown field `rollouts`, expected one of `ssh`, `etcd`, `docker`, `cni`, \
             `libnetwork`, `node`, `rollout`, `templates`, `agents`",
        ),
        (
            "  proxy: true",
            "  proxy: true\n  prxy: false",
            "prxy",
            "unknown field `prxy`, expected one of `endpoints`, `proxy`, `binary`, `tls`",
        ),
    ];
    for (old, new, at, message) in cases {
        let yaml = replace(EXAMPLE, old, new);
        let (line, col) = pos(&yaml, at);
        let err = f.err(&yaml);
        assert!(matches!(err, InventoryError::Yaml { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}{line}:{col}: {message}", f.prefix())
        );
    }
}

#[test]
fn shape_errors_read_well() {
    let f = Fixture::new();
    let cases = [
        (
            "rollout:\n",
            "rollout: 3\n",
            "rollout: 3",
            "expected a mapping (`key: value` entries) here",
        ),
        (
            "  endpoints: [http://10.0.0.5:2379, http://10.0.0.6:2379]",
            "  endpoints: http://10.0.0.5:2379",
            "http://10.0.0.5:2379",
            "expected a list here",
        ),
        (
            "  user: core",
            "  user: [core]",
            "[core]",
            "expected a single value here, not a list or a mapping",
        ),
        (
            "  max_failures: 0",
            "  max_failures: 0\n  max_failures: 1",
            "  max_failures: 1",
            "duplicate mapping key `max_failures` is not allowed here",
        ),
        (
            "  batch: 10 ",
            "  batch: {size: 10} ",
            "{size: 10}",
            "expected a batch size (a number or a percentage like \"20%\") or a list of them",
        ),
        (
            "  batch: 10 ",
            "  batch: [1, [2, 3]] ",
            "[2, 3]",
            "expected a single value here, not a list or a mapping",
        ),
        (
            "{calico: ./bin/calico,",
            "{calico: ./bin/calico, calico: ./bin/calico,",
            "calico: ./bin/calico, calico: ./bin/calico,",
            "duplicate mapping key `calico` is not allowed here",
        ),
        (
            "  env: {CALICO_NETWORKING_BACKEND: bird}",
            "  env: {CALICO_NETWORKING_BACKEND: ~}",
            "~}",
            "expected a value here, found nothing (null)",
        ),
    ];
    for (old, new, at, message) in cases {
        let yaml = replace(EXAMPLE, old, new);
        let err = f.err(&yaml);
        let (line, _) = pos(&yaml, at);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}{line}:", f.prefix())) && text.ends_with(message),
            "for {new:?} (line {line}) got:\n{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    // Not YAML at all.
    let err = f.err("etcd: [\n");
    assert!(err.to_string().starts_with(&f.prefix()), "{err}");
    let err = f.err("ssh:\n  user: 'core\n");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}3:1: ", f.prefix())) && text.contains("quoted scalar"),
        "{text}"
    );
}

#[test]
fn unreadable_or_non_utf8_file() {
    let f = Fixture::new();
    let missing = f.path("nope.yaml");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, InventoryError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    fs::write(f.path("bad.yaml"), b"etcd:\n  proxy: \xff\n").unwrap();
    let err = load(&f.path("bad.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:10: the file is not valid UTF-8 text",
            f.path("bad.yaml").display()
        )
    );
}
