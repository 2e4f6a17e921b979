//! Well-formed YAML with bad values: each one located, all reported together.

use super::*;

#[test]
fn bad_values_are_located() {
    let f = Fixture::new();
    // (replace, with, where the bad value starts, expected message)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "address: 10.0.0.11",
            "address: 10.0.0.300",
            "10.0.0.300",
            "agent address \"10.0.0.300\" is not a valid host name or IP address",
        ),
        (
            "name: agent-2",
            "name: -agent-2",
            "-agent-2",
            "agent name \"-agent-2\" must be 1 to 63 letters",
        ),
        (
            "image: calico/node:v2.6.12",
            "image: calico/Node:v2.6.12",
            "calico/Node",
            "node image \"calico/Node:v2.6.12\" has an invalid name component \"Node\"",
        ),
        (
            "image: calico/libnetwork-plugin:v1.1.3",
            "image: calico/libnetwork-plugin:-v1",
            "calico/libnetwork-plugin:-v1",
            "libnetwork image \"calico/libnetwork-plugin:-v1\" has an invalid tag",
        ),
        (
            "plugin_dir: /opt/mesosphere/active/cni",
            "plugin_dir: opt/cni",
            "opt/cni",
            "plugin_dir \"opt/cni\" must be absolute (start with /)",
        ),
        (
            "config_dir: /opt/mesosphere/etc/dcos/network/cni",
            "config_dir: /opt/../etc",
            "/opt/../etc",
            "config_dir \"/opt/../etc\" must not contain a \"..\" component",
        ),
        (
            "http://10.0.0.6:2379",
            "10.0.0.6:2379",
            "10.0.0.6:2379",
            "etcd endpoint \"10.0.0.6:2379\" must start with http:// or https://",
        ),
        (
            "http://10.0.0.6:2379",
            "https://10.0.0.6:2379",
            "https://10.0.0.6:2379",
            "etcd endpoint https://10.0.0.6:2379 uses TLS, but `etcd` has no `tls`: add \
             `tls: {ca: …, cert: …, key: …}`",
        ),
        (
            "http://10.0.0.6:2379",
            "http://10.0.0.6:99999",
            "http://10.0.0.6:99999",
            "etcd endpoint \"http://10.0.0.6:99999\" has a port that is not between 1 and 65535",
        ),
        (
            "proxy: true",
            "proxy: true\n  binary: {on_agent: bin/etcd}",
            "bin/etcd",
            "etcd binary \"bin/etcd\" must be absolute (start with /)",
        ),
        (
            "batch: 10 ",
            "batch: \"120%\" ",
            "\"120%\"",
            "batch \"120%\" must be a percentage between 1% and 100%",
        ),
        (
            "batch: 10 ",
            "batch: 0 ",
            "0 ",
            "batch \"0\" must be at least 1",
        ),
        (
            "batch: 10 ",
            "batch: [1, 5, 25%x] ",
            "25%x",
            "batch \"25%x\" is not a whole number or a percentage like \"20%\"",
        ),
        (
            "batch: 10 ",
            "batch: [1, 0] ",
            "0] ",
            "batch \"0\" must be at least 1",
        ),
        (
            "batch: 10 ",
            "batch: [] ",
            "[] ",
            "`batch` is an empty list; give a batch size such as 10 or \"20%\", \
             or a ramp such as [1, 5, \"25%\"]",
        ),
        (
            "max_failures: 0",
            "max_failures: -1",
            "-1",
            "max_failures \"-1\" is not a whole number (0 or more) or a percentage like \"10%\"",
        ),
        (
            "max_failures: 0",
            "max_failures: \"150%\"",
            "\"150%\"",
            "max_failures \"150%\" must be a percentage between 0% and 100%",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  canary: -1",
            "-1",
            "canary \"-1\" is not a whole number (0 or more)",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  canary: two",
            "two\n",
            "canary \"two\" is not a whole number (0 or more)",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  canary: 1.5",
            "1.5",
            "canary \"1.5\" is not a whole number (0 or more)",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  by: rack",
            "rack",
            "by \"rack\" is not `host` or `zone`",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  min_healthy: 5",
            "5\n",
            "min_healthy \"5\" is not a duration like 10s, 500ms, 2m or 1m30s",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  health_timeout: 0s",
            "0s\nagents",
            "health_timeout \"0s\" must be longer than zero",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  revert: perhaps",
            "perhaps",
            "revert \"perhaps\" is not true or false",
        ),
        (
            "role: public}",
            "role: public, zone: us east-1a}",
            "us east-1a",
            "zone \"us east-1a\" must be 1 to 63 letters, digits, '.', '_' or '-', \
             starting with a letter or digit",
        ),
        (
            "max_failures: 0",
            "max_failures: 0\n  health_timeout: 1d",
            "1d",
            "health_timeout \"1d\" is not a duration like 10s, 500ms, 2m or 1m30s",
        ),
        (
            "connect_timeout: 10s",
            "connect_timeout: 10",
            "10\n",
            "connect_timeout \"10\" is not a duration like 10s, 500ms, 2m or 1m30s",
        ),
        (
            "port: 2222",
            "port: 70000",
            "70000",
            "port \"70000\" is not a number between 1 and 65535",
        ),
        (
            "user: core",
            "user: Core",
            "Core",
            "user \"Core\" is not a valid user name",
        ),
        (
            "role: public",
            "role: master",
            "master",
            "role \"master\" is not `private` or `public`",
        ),
        (
            "become: true",
            "become: maybe",
            "maybe",
            "become \"maybe\" is not true or false",
        ),
        (
            "host_key_checking: strict",
            "host_key_checking: no",
            "no ",
            "host_key_checking \"no\" is not `strict` or `accept-new`",
        ),
        (
            "cluster_store: null",
            "cluster_store: http://10.0.0.5:2379",
            "http://10.0.0.5:2379 ",
            "cluster_store \"http://10.0.0.5:2379\" must start with etcd://, consul:// or zk://",
        ),
        (
            "cluster_store: null",
            "cluster_store: etcd://10.0.0.5",
            "etcd://10.0.0.5",
            "cluster_store \"etcd://10.0.0.5\" has \"10.0.0.5\" without a port",
        ),
        (
            "{CALICO_NETWORKING_BACKEND: bird}",
            "{CALICO_NETWORKING_BACKEND: bird, 9LIVES: x}",
            "9LIVES",
            "node env name \"9LIVES\" must be letters, digits and '_', not starting with a digit",
        ),
        (
            "{CALICO_NETWORKING_BACKEND: bird}",
            "{CALICO_NETWORKING_BACKEND: \"a\\nb\"}",
            "\"a\\nb\"",
            "node env value \"a\\nb\" must not contain a line break or NUL",
        ),
        (
            "calico-ipam: ./bin/calico-ipam}",
            "calico-ipam: ./bin/calico-ipam, ../x: ./bin/calico}",
            "../x",
            "CNI binary name \"../x\" must be a plain file name",
        ),
        (
            "identity_file: ~/.ssh/id_ed25519",
            "identity_file: ~bob/.ssh/id_ed25519",
            "~bob",
            "identity_file \"~bob/.ssh/id_ed25519\" uses ~user, which is not supported",
        ),
        (
            "enabled: true\n  image: calico/node",
            "enabled: sometimes\n  image: calico/node",
            "sometimes",
            "enabled \"sometimes\" is not true or false",
        ),
    ];
    for (old, new, at, message) in cases {
        let yaml = replace(EXAMPLE, old, new);
        let (line, col) = pos(&yaml, at);
        let err = f.err(&yaml);
        let text = err.to_string();
        assert!(
            matches!(err, InventoryError::Invalid { .. }),
            "{new:?}: expected a value error, got:\n{text}"
        );
        let want = format!("{}{line}:{col}: {message}", f.prefix());
        assert!(
            text.starts_with(&want),
            "{new:?}:\n  want {want}\n  got  {text}"
        );
        assert_eq!(err.problems().len(), 1, "{text}");
    }
}

#[test]
fn batch_values_are_read_as_written() {
    let f = Fixture::new();
    // YAML reads these as numbers or booleans; the message quotes the file.
    for (value, problem) in [
        ("0x10", "is not a whole number or a percentage like \"20%\""),
        ("1.50", "is not a whole number or a percentage like \"20%\""),
        ("1e3", "is not a whole number or a percentage like \"20%\""),
        ("-3", "is not a whole number or a percentage like \"20%\""),
        ("yes", "is not a whole number or a percentage like \"20%\""),
        ("0", "must be at least 1"),
        ("'0'", "must be at least 1"),
        ("101%", "must be a percentage between 1% and 100%"),
    ] {
        let yaml = replace(EXAMPLE, "batch: 10 ", &format!("batch: {value} "));
        let (line, col) = pos(&yaml, &format!("{value} "));
        let shown = value.trim_matches('\'');
        assert_eq!(
            f.err(&yaml).to_string(),
            format!("{}{line}:{col}: batch \"{shown}\" {problem}", f.prefix()),
            "{value}"
        );
    }
    // Every bad entry of a ramp is reported at its place.
    let yaml = replace(EXAMPLE, "batch: 10 ", "batch: [0, 5, 1.5, \"200%\"] ");
    let err = f.err(&yaml);
    let got: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "28:11: batch \"0\" must be at least 1",
            "28:17: batch \"1.5\" is not a whole number or a percentage like \"20%\"",
            "28:22: batch \"200%\" must be a percentage between 1% and 100%",
        ]
    );
}

#[test]
fn all_value_problems_are_reported_together() {
    let f = Fixture::new();
    let yaml = replace(EXAMPLE, "port: 2222", "port: 0");
    let yaml = replace(&yaml, "batch: 10", "batch: ten");
    let yaml = replace(&yaml, "user: core", "user: Core");
    fs::remove_file(f.path("bin/calico")).unwrap();
    let err = f.err(&yaml);
    let lines: Vec<u64> = err.problems().iter().map(|p| p.line).collect();
    assert_eq!(lines, [2, 17, 28, 33], "{err}");
    assert_eq!(err.to_string().lines().count(), 4);
    for line in err.to_string().lines() {
        assert!(line.starts_with(&f.prefix()), "{line}");
    }
}
