//! The local files an inventory names: CNI binaries, SSH keys, known_hosts,
//! the templates folder, and how `~` and relative paths resolve.

use super::*;
use crate::inventory::HostKeyChecking;

#[test]
fn missing_cni_binary() {
    let f = Fixture::new();
    fs::remove_file(f.path("bin/calico-ipam")).unwrap();
    let err = f.err(EXAMPLE);
    let (line, col) = pos(EXAMPLE, "./bin/calico-ipam");
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: CNI binary {} does not exist",
            f.prefix(),
            f.path("./bin/calico-ipam").display()
        )
    );
    // A folder is not a binary.
    fs::create_dir(f.path("bin/calico-ipam")).unwrap();
    let text = f.err(EXAMPLE).to_string();
    assert!(
        text.ends_with("calico-ipam is not a regular file"),
        "{text}"
    );
}

#[test]
fn missing_identity_file() {
    let f = Fixture::new();
    fs::remove_file(f.home().join(".ssh/id_ed25519")).unwrap();
    let err = f.err(EXAMPLE);
    let (line, col) = pos(EXAMPLE, "~/.ssh/id_ed25519");
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: identity_file {} does not exist",
            f.prefix(),
            f.home().join(".ssh/id_ed25519").display()
        )
    );
    // Reported once, at the agent that set it when that is where it came from.
    let yaml = replace(
        MINIMAL,
        "address: 10.0.0.11\n",
        "address: 10.0.0.11\n    identity_file: keys/none\n",
    );
    let err = f.err(&yaml);
    assert_eq!(err.problems().len(), 1);
    assert_eq!(err.problems()[0].line, 10);
    assert_eq!(err.problems()[0].column, 20);
}

#[test]
fn known_hosts_strict_vs_accept_new() {
    let f = Fixture::new();
    fs::remove_file(f.home().join(".ssh/known_hosts")).unwrap();
    let kh = f.home().join(".ssh/known_hosts");

    // Strict (the default) needs the file; reported once for all agents.
    let err = f.err(EXAMPLE);
    let (line, col) = pos(EXAMPLE, "~/.ssh/known_hosts");
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: known_hosts file {} does not exist; strict host key checking \
             needs it (or use accept-new)",
            f.prefix(),
            kh.display()
        )
    );

    // Defaulted known_hosts: reported where strict checking was chosen
    // (here: nowhere, so the agent entry).
    let err = f.err(MINIMAL);
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!((err.problems()[0].line, err.problems()[0].column), (8, 5));

    // accept-new: a missing file is fine, it will be created.
    let yaml = replace(
        EXAMPLE,
        "host_key_checking: strict",
        "host_key_checking: accept-new",
    );
    let inv = f.ok(&yaml);
    assert_eq!(inv.agents[0].ssh.known_hosts, kh);
    assert_eq!(
        inv.agents[0].ssh.host_key_checking,
        HostKeyChecking::AcceptNew
    );

    // Per agent: one agent on accept-new, the others strict.
    let yaml = replace(
        EXAMPLE,
        "{name: agent-1, address: 10.0.0.11}",
        "{name: agent-1, address: 10.0.0.11, host_key_checking: accept-new}",
    );
    let err = f.err(&yaml);
    assert_eq!(err.problems().len(), 1, "{err}");

    // But a known_hosts that is a folder is wrong either way.
    fs::create_dir_all(&kh).unwrap();
    let yaml = replace(
        EXAMPLE,
        "host_key_checking: strict",
        "host_key_checking: accept-new",
    );
    let text = f.err(&yaml).to_string();
    assert!(
        text.ends_with("known_hosts is not a regular file"),
        "{text}"
    );
}

#[test]
fn tilde_and_relative_paths() {
    let f = Fixture::new();
    f.write("home/keys/k1", "key");
    f.write("home/kh", "");
    f.write("sub/kh", "");
    let yaml = format!(
        "{MINIMAL}ssh:\n  identity_file: ~/keys/k1\n  known_hosts: ~/kh\n\
         templates: \"~\"\n"
    );
    let inv = f.ok(&yaml);
    let ssh = &inv.agents[0].ssh;
    assert_eq!(ssh.identity_file, Some(f.home().join("keys/k1")));
    assert_eq!(ssh.known_hosts, f.home().join("kh"));
    assert_eq!(inv.templates_dir, Some(f.home()));

    // Relative paths resolve against the inventory's folder, not the
    // working directory.
    let yaml = format!("{MINIMAL}ssh:\n  known_hosts: sub/kh\n");
    let inv = f.ok(&yaml);
    assert_eq!(inv.agents[0].ssh.known_hosts, f.path("sub/kh"));
    assert!(
        matches!(&inv.cni.binaries[0].source, crate::inventory::BinarySource::Local(p) if p.is_absolute())
    );

    // Without $HOME, ~ cannot expand.
    f.write(
        "cluster.yaml",
        &format!("{MINIMAL}ssh:\n  known_hosts: ~/kh\n"),
    );
    let err = load_with_home(&f.path("cluster.yaml"), None).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("known_hosts \"~/kh\" starts with ~ but $HOME is not set"),
        "{err}"
    );
}

#[test]
fn templates_folder_must_exist() {
    let f = Fixture::new();
    let yaml = format!("{MINIMAL}templates: no-such-dir\n");
    let text = f.err(&yaml).to_string();
    assert!(
        text.starts_with(&format!("{}10:12: templates folder ", f.prefix()))
            && text.ends_with("no-such-dir does not exist"),
        "{text}"
    );
}
