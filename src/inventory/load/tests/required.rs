//! Missing sections and keys, and the rules that tie entries together
//! (unique agent names, a zone on every agent with `by: zone`).

use super::*;

#[test]
fn by_zone_needs_a_zone_on_every_agent() {
    let f = Fixture::new();
    let yaml = replace(EXAMPLE, "max_failures: 0", "max_failures: 0\n  by: zone");
    let yaml = replace(
        &yaml,
        "address: 10.0.0.11}",
        "address: 10.0.0.11, zone: us-east-1a}",
    );
    let yaml = replace(&yaml, "port: 2222}", "port: 2222, zone: us-east-1b}");
    let (by_line, _) = pos(&yaml, "by: zone");
    let (line, col) = pos(&yaml, "{name: pub-1");
    let err = f.err(&yaml);
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: agent \"pub-1\" needs a `zone`: the rollout goes zone by zone \
             (`by: zone` at line {by_line})",
            f.prefix()
        )
    );

    let yaml = replace(&yaml, "role: public}", "role: public, zone: us-east-1a}");
    let inv = f.ok(&yaml);
    assert!(inv.rollout.by_zone);
    let zones: Vec<&str> = inv.agents.iter().flat_map(|a| a.zone.as_deref()).collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1a", "us-east-1b"]);

    // Every agent without one is reported; one with a bad zone is
    // reported for the zone only.
    let yaml = format!(
        "{}rollout:\n  by: zone\n",
        replace(
            MINIMAL,
            "    address: 10.0.0.11\n",
            "    address: 10.0.0.11\n    zone: us_east-1.a\n  - {address: 10.0.0.12}\n  \
             - {name: agent-3, address: 10.0.0.13}\n  - {name: agent-4, address: 10.0.0.14, zone: -x}\n",
        )
    );
    let err = f.err(&yaml);
    let got: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        [
            "11:5: agent needs a `name`",
            "11:5: agent needs a `zone`: the rollout goes zone by zone (`by: zone` at line 15)",
            "12:5: agent \"agent-3\" needs a `zone`: the rollout goes zone by zone \
             (`by: zone` at line 15)",
            "13:47: zone \"-x\" must be 1 to 63 letters, digits, '.', '_' or '-', \
             starting with a letter or digit",
        ],
        "{yaml}"
    );
}

#[test]
fn required_parts() {
    let f = Fixture::new();
    let cases: &[(String, &str)] = &[
        (
            MINIMAL.replacen("etcd:\n  endpoints: [http://10.0.0.5:2379]\n", "", 1),
            "1:1: missing required section `etcd`",
        ),
        (
            MINIMAL.replacen("endpoints: [http://10.0.0.5:2379]", "proxy: false", 1),
            "2:3: `etcd` needs `endpoints`",
        ),
        (
            MINIMAL.replacen("[http://10.0.0.5:2379]", "[]", 1),
            "2:14: `endpoints` is empty",
        ),
        (
            MINIMAL.replacen(
                "agents:\n  - name: agent-1\n    address: 10.0.0.11\n",
                "",
                1,
            ),
            "1:1: missing required list `agents`",
        ),
        (
            MINIMAL.replacen(
                "agents:\n  - name: agent-1\n    address: 10.0.0.11\n",
                "agents: []\n",
                1,
            ),
            "7:9: `agents` is empty",
        ),
        (
            MINIMAL.replacen("    address: 10.0.0.11\n", "", 1),
            "8:5: agent \"agent-1\" needs an `address`",
        ),
        (
            MINIMAL.replacen("  - name: agent-1\n    address", "  - address", 1),
            "8:5: agent needs a `name`",
        ),
        (
            MINIMAL.replacen("    calico: bin/calico\n", "", 1),
            "5:5: `binaries` must include `calico`",
        ),
        (
            MINIMAL.replacen(
                "  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
                "  plugin_dir: /opt/cni\n",
                1,
            ),
            "4:3: `cni` needs `binaries`",
        ),
        (
            MINIMAL.replacen(
                "cni:\n  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
                "",
                1,
            ),
            "1:1: missing section `cni` with `binaries`",
        ),
        (String::new(), "1:1: missing required section `etcd`"),
    ];
    for (yaml, want) in cases {
        let text = f.err(yaml).to_string();
        let want = format!("{}{want}", f.prefix());
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "want {want}\ngot:\n{text}\nfor:\n{yaml}"
        );
    }
    // CNI can be switched off, and then needs no binaries.
    let yaml = MINIMAL.replacen(
        "  binaries:\n    calico: bin/calico\n    calico-ipam: bin/calico-ipam\n",
        "  enabled: false\n",
        1,
    );
    let inv = f.ok(&yaml);
    assert!(!inv.cni.enabled);
    assert!(inv.cni.binaries.is_empty());
}

#[test]
fn duplicate_agent_names() {
    let f = Fixture::new();
    let yaml = replace(EXAMPLE, "name: agent-2", "name: agent-1");
    let (line, col) = pos(&yaml, "agent-1, address: 10.0.0.12");
    let err = f.err(&yaml);
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: agent name \"agent-1\" is used twice (first at line 31)",
            f.prefix()
        )
    );
}
