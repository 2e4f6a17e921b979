//! Tests of the value types and checks, one family at a time.

use std::time::Duration;

use super::*;

#[test]
fn batch_size_parsing() {
    let ok = [
        ("1", BatchSize::Count(1)),
        ("10", BatchSize::Count(10)),
        ("20%", BatchSize::Percent(20)),
        ("100%", BatchSize::Percent(100)),
        ("1%", BatchSize::Percent(1)),
    ];
    for (s, want) in ok {
        assert_eq!(s.parse::<BatchSize>(), Ok(want), "{s}");
        assert_eq!(want.to_string(), s);
    }
    for s in [
        "0",
        "0%",
        "101%",
        "-1",
        "",
        "%",
        "1.5",
        "20 %",
        "ten",
        "99999999999999999999999",
    ] {
        assert!(s.parse::<BatchSize>().is_err(), "{s} should be rejected");
    }
}

#[test]
fn hosts_per_batch() {
    let cases = [
        (BatchSize::Count(10), 100, 10),
        (BatchSize::Count(10), 3, 3),
        (BatchSize::Count(1), 0, 1),
        (BatchSize::Percent(20), 100, 20),
        (BatchSize::Percent(20), 9, 1),
        (BatchSize::Percent(20), 14, 2),
        (BatchSize::Percent(100), 7, 7),
        (BatchSize::Percent(1), 0, 1),
        (BatchSize::Percent(50), 3, 1),
    ];
    for (b, total, want) in cases {
        assert_eq!(b.hosts_per_batch(total), want, "{b} of {total}");
    }
}

#[test]
fn failure_budgets() {
    let ok = [
        ("0", FailureBudget::Count(0)),
        ("2", FailureBudget::Count(2)),
        ("0%", FailureBudget::Percent(0)),
        ("10%", FailureBudget::Percent(10)),
        ("100%", FailureBudget::Percent(100)),
    ];
    for (s, want) in ok {
        assert_eq!(s.parse::<FailureBudget>(), Ok(want), "{s}");
        assert_eq!(want.to_string(), s);
    }
    for s in [
        "",
        "-1",
        "150%",
        "101%",
        "%",
        "1.5",
        "10 %",
        "two",
        "1e3",
        "99999999999999999999999",
    ] {
        assert!(
            s.parse::<FailureBudget>().is_err(),
            "{s:?} should be rejected"
        );
    }
    assert_eq!(
        "150%".parse::<FailureBudget>().unwrap_err().to_string(),
        "failure budget \"150%\" must be a percentage between 0% and 100%"
    );
    assert_eq!(FailureBudget::default(), FailureBudget::Count(0));
    // (budget, selected hosts, failures allowed)
    let cases = [
        (FailureBudget::Count(0), 12, 0),
        (FailureBudget::Count(2), 12, 2),
        (FailureBudget::Count(2), 0, 2),
        (FailureBudget::Percent(10), 12, 1),
        (FailureBudget::Percent(10), 9, 0),
        (FailureBudget::Percent(10), 20, 2),
        (FailureBudget::Percent(0), 50, 0),
        (FailureBudget::Percent(50), 5, 2),
        (FailureBudget::Percent(100), 7, 7),
        (FailureBudget::Percent(100), 0, 0),
    ];
    for (b, selected, want) in cases {
        assert_eq!(b.allowed(selected), want, "{b} of {selected}");
    }
}

#[test]
fn endpoints() {
    let ok = [
        (
            "http://10.0.0.5:2379",
            "http://10.0.0.5:2379",
            "10.0.0.5:2379",
        ),
        (
            "https://etcd.example.com:4001",
            "https://etcd.example.com:4001",
            "etcd.example.com:4001",
        ),
        ("http://10.0.0.5", "http://10.0.0.5:2379", "10.0.0.5:2379"),
        (
            "http://10.0.0.5:2379/",
            "http://10.0.0.5:2379",
            "10.0.0.5:2379",
        ),
        (
            "http://[fd00::5]:2379",
            "http://[fd00::5]:2379",
            "[fd00::5]:2379",
        ),
        (
            "http://[fd00::5]",
            "http://[fd00::5]:2379",
            "[fd00::5]:2379",
        ),
        (
            "http://localhost:2379",
            "http://localhost:2379",
            "localhost:2379",
        ),
    ];
    for (s, display, hp) in ok {
        let e: Endpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(e.to_string(), display);
        assert_eq!(e.host_port(), hp);
    }
    for s in [
        "10.0.0.5:2379",
        "etcd://10.0.0.5:2379",
        "http://",
        "http://:2379",
        "http://10.0.0.5:0",
        "http://10.0.0.5:65536",
        "http://10.0.0.5:port",
        "http://10.0.0.300:2379",
        "http://fd00::5:2379",
        "http://10.0.0.5:2379/v2",
        "http://user@10.0.0.5:2379",
        "http://bad_host:2379",
        "HTTP://10.0.0.5:2379",
    ] {
        assert!(s.parse::<Endpoint>().is_err(), "{s} should be rejected");
    }
}

#[test]
fn images() {
    for s in [
        "calico/node:v2.6.12",
        "calico/libnetwork-plugin:v1.1.3",
        "busybox",
        "library/busybox:latest",
        "quay.io/calico/node:v3.0.0",
        "localhost:5000/calico/node",
        "localhost/calico",
        "10.0.0.1:5000/a/b/c:tag_1.2-x",
        "Registry.Example.com/x",
        "a__b/c-d--e.f",
        "calico/node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "calico/node:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        s.parse::<ImageRef>().unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    for s in [
        "",
        "Calico",
        "calico/Node:v1",
        "calico//node",
        "calico/node:",
        "calico/node:-bad",
        "calico/node:v1 ",
        "calico/node@sha256:abc",
        "calico/node@md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "-calico/node",
        "calico_/node",
        "calico/node/",
        "reg:port/x",
        ":tag",
    ] {
        assert!(s.parse::<ImageRef>().is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn remote_paths() {
    let ok = [
        ("/usr/bin/etcd", "/usr/bin/etcd"),
        ("/opt/mesosphere/active/cni/", "/opt/mesosphere/active/cni"),
        ("/", "/"),
        ("/a/b+c/d-e_f.g", "/a/b+c/d-e_f.g"),
    ];
    for (s, want) in ok {
        let p: RemotePath = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p.as_str(), want);
    }
    for s in [
        "usr/bin", "", "/a/../b", "/a/./b", "/..", "/a//b", "/a b", "/a;b", "~/x", "/a/$x",
    ] {
        assert!(s.parse::<RemotePath>().is_err(), "{s:?} should be rejected");
    }
    let dir: RemotePath = "/opt/cni/".parse().unwrap();
    assert_eq!(dir.join("calico").as_str(), "/opt/cni/calico");
    let root: RemotePath = "/".parse().unwrap();
    assert_eq!(root.join("x").as_str(), "/x");
}

#[test]
#[should_panic(expected = "not a relative path component")]
fn remote_path_join_rejects_traversal() {
    let dir: RemotePath = "/opt".parse().unwrap();
    let _ = dir.join("../etc");
}

#[test]
fn durations() {
    let ok = [
        ("10s", 10_000),
        ("500ms", 500),
        ("2m", 120_000),
        ("1m30s", 90_000),
        ("1h", 3_600_000),
        ("1s500ms", 1_500),
    ];
    for (s, ms) in ok {
        assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
    }
    for s in [
        "", "10", "s", "1.5s", "10 s", "-1s", "0s", "10sec", "1d", "m1",
    ] {
        assert!(parse_duration(s).is_err(), "{s:?} should be rejected");
    }
    // A wait may be zero, and is otherwise read the same way.
    for (s, ms) in ok.into_iter().chain([("0s", 0), ("0ms", 0), ("0m0s", 0)]) {
        assert_eq!(parse_wait(s), Ok(Duration::from_millis(ms)), "{s}");
    }
    for s in ["", "0", "-1s", "1.5s", "10 s", "1d"] {
        assert!(parse_wait(s).is_err(), "{s:?} should be rejected");
    }
    assert_eq!(
        parse_duration("0s").unwrap_err().to_string(),
        "duration \"0s\" must be longer than zero"
    );
}

#[test]
fn hosts_and_names() {
    for s in [
        "10.0.0.11",
        "fd00::11",
        "agent-1.example.com",
        "localhost",
        "a",
    ] {
        assert!(address(s).is_ok(), "{s}");
    }
    assert_eq!(address("[fd00::1]").unwrap(), "fd00::1");
    for s in [
        "10.0.0.300",
        "",
        "-a",
        "a-",
        "a..b",
        "a_b",
        "1.2.3",
        "x y",
        "a.b.",
    ] {
        assert!(address(s).is_err(), "{s:?} should be rejected");
    }
    for s in ["agent-1", "A.b_c-d", "1"] {
        assert!(agent_name(s).is_ok(), "{s}");
    }
    for s in ["", "-a", ".a", "a b", &"a".repeat(64)] {
        assert!(agent_name(s).is_err(), "{s:?} should be rejected");
    }
    for s in ["us-east-1a", "eu_west.2", "Z", &"a".repeat(63)] {
        assert_eq!(zone(s).as_deref(), Ok(s), "{s}");
    }
    for s in [
        "",
        "-a",
        "_a",
        "us east",
        "us/east",
        "zone:1",
        &"a".repeat(64),
    ] {
        assert!(zone(s).is_err(), "{s:?} should be rejected");
    }
    for s in ["core", "root", "_svc", "a-b_c9", "machine$"] {
        assert!(user_name(s).is_ok(), "{s}");
    }
    for s in ["", "Core", "9a", "a b", "a$b", &"a".repeat(33)] {
        assert!(user_name(s).is_err(), "{s:?} should be rejected");
    }
    assert!(env_key("CALICO_X1").is_ok());
    assert!(env_key("_x").is_ok());
    for s in ["", "1X", "A-B", "A B"] {
        assert!(env_key(s).is_err(), "{s:?} should be rejected");
    }
    assert!(env_value("bird, with spaces = ok").is_ok());
    assert!(env_value("a\nb").is_err());
    assert!(env_value("a\0b").is_err());
    assert!(file_name("calico-ipam").is_ok());
    for s in ["", ".", "..", "a/b", "a b"] {
        assert!(file_name(s).is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn cluster_stores() {
    for s in [
        "etcd://127.0.0.1:2379",
        "etcd://10.0.0.5:2379,10.0.0.6:2379",
        "consul://consul.local:8500/calico",
        "zk://[fd00::1]:2181,zk2:2181/path/x",
    ] {
        assert!(cluster_store(s).is_ok(), "{s}: {:?}", cluster_store(s));
    }
    for s in [
        "",
        "http://10.0.0.5:2379",
        "etcd://",
        "etcd://10.0.0.5",
        "etcd://10.0.0.5:2379,",
        "etcd://10.0.0.5:99999",
        "etcd://bad host:1",
        "etcd://h:1/pa th",
    ] {
        assert!(cluster_store(s).is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn messages_read_well() {
    let e = "10.0.0.300".parse::<Endpoint>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "etcd endpoint \"10.0.0.300\" must start with http:// or https://"
    );
    let e = address("10.0.0.300").unwrap_err().named("agent address");
    assert_eq!(
        e.to_string(),
        "agent address \"10.0.0.300\" is not a valid host name or IP address"
    );
}
