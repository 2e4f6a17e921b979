//! SSH settings from the operator's ssh_config, bastions (`proxy_jump`),
//! and private keys that others can read.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::inventory::ProxyJump;

fn jump(user: &str, host: &str, port: u16) -> Option<ProxyJump> {
    Some(ProxyJump {
        user: user.into(),
        host: host.into(),
        port,
    })
}

const CONFIG: &str = "\
Host bastion
    HostName 203.0.113.7
    User jump
    Port 2222
Host 10.0.0.*
    User core
    Port 2200
    ProxyJump bastion
    IdentityFile ~/.ssh/missing
    IdentityFile ~/.ssh/fleet
    UserKnownHostsFile ~/.ssh/fleet_hosts
Host 10.0.0.12
    HostName agent-2.internal
";

#[test]
fn ssh_config_fills_what_the_inventory_leaves_unset() {
    let f = Fixture::new();
    f.write("home/.ssh/config", CONFIG);
    f.write("home/.ssh/fleet", "key");
    f.write("home/.ssh/fleet_hosts", "");
    let yaml = replace(
        MINIMAL,
        "address: 10.0.0.11\n",
        "address: 10.0.0.11\n  - name: agent-2\n    address: 10.0.0.12\n    user: root\n    \
         port: 22\n",
    );
    let inv = f.ok(&yaml);
    let a1 = &inv.agents[0].ssh;
    assert_eq!((a1.user.as_str(), a1.port), ("core", 2200));
    assert_eq!(a1.host_name, "10.0.0.11");
    // The first IdentityFile that exists, as OpenSSH does.
    assert_eq!(a1.identity_file, Some(f.home().join(".ssh/fleet")));
    assert_eq!(a1.known_hosts, f.home().join(".ssh/fleet_hosts"));
    // The bastion is looked up too: its HostName, User and Port.
    assert_eq!(a1.proxy_jump, jump("jump", "203.0.113.7", 2222));
    // The inventory's own values win; HostName says what is dialled.
    let a2 = &inv.agents[1].ssh;
    assert_eq!((a2.user.as_str(), a2.port), ("root", 22));
    assert_eq!(a2.host_name, "agent-2.internal");
    assert_eq!(inv.agents[1].address, "10.0.0.12");
}

#[test]
fn the_inventory_wins_over_ssh_config_and_none_means_direct() {
    let f = Fixture::new();
    f.write("other/ssh_config", CONFIG);
    f.write("home/.ssh/fleet_hosts", "");
    let yaml = format!(
        "{MINIMAL}  - name: agent-2\n    address: 10.0.0.12\n    proxy_jump: none\n\
         ssh:\n  config_file: other/ssh_config\n  user: admin\n  proxy_jump: ops@gw:2022\n"
    );
    let inv = f.ok(&yaml);
    let a1 = &inv.agents[0].ssh;
    assert_eq!(a1.user, "admin");
    assert_eq!(a1.proxy_jump, jump("ops", "gw", 2022));
    // ~/.ssh/config is not read when config_file names another file.
    assert_eq!(a1.identity_file, None);
    assert_eq!(inv.agents[1].ssh.proxy_jump, None);
}

#[test]
fn a_bastion_without_a_user_or_port_takes_the_agents_user_and_22() {
    let f = Fixture::new();
    let yaml = format!("{MINIMAL}    user: core\n    proxy_jump: 10.0.0.2\n");
    let inv = f.ok(&yaml);
    assert_eq!(inv.agents[0].ssh.proxy_jump, jump("core", "10.0.0.2", 22));
}

#[test]
fn a_missing_config_file_is_an_error_but_a_missing_default_is_not() {
    let f = Fixture::new();
    f.ok(MINIMAL);
    let yaml = format!("{MINIMAL}ssh:\n  config_file: ~/nope\n");
    let err = f.err(&yaml);
    let (line, col) = pos(&yaml, "~/nope");
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: ssh config_file {} does not exist",
            f.prefix(),
            f.home().join("nope").display()
        )
    );
}

#[test]
fn chains_of_bastions_are_refused_at_load() {
    let f = Fixture::new();
    f.write("home/.ssh/config", "Host 10.0.0.11\n  ProxyJump j1,j2\n");
    let text = f.err(MINIMAL).to_string();
    assert!(
        text.contains(&format!(
            "ProxyJump j1,j2 in {} (Host 10.0.0.11) is a chain of bastions; calico-rollout \
             connects through one",
            f.home().join(".ssh/config").display()
        )),
        "{text}"
    );
    fs::remove_file(f.home().join(".ssh/config")).unwrap();
    let yaml = format!("{MINIMAL}    proxy_jump: a@b,c@d\n");
    let text = f.err(&yaml).to_string();
    assert!(text.contains("is a chain of bastions"), "{text}");
}

#[test]
fn a_bad_value_in_ssh_config_names_the_file() {
    let f = Fixture::new();
    f.write("home/.ssh/config", "Host *\n  User Bad!User\n");
    let text = f.err(MINIMAL).to_string();
    assert!(
        text.contains(&format!(
            "User \"Bad!User\" is not a valid user name (lowercase letters, digits, '_' or '-', \
             starting with a letter or '_', at most 32) in {} (Host 10.0.0.11)",
            f.home().join(".ssh/config").display()
        )),
        "{text}"
    );
}

#[test]
fn a_proxy_command_in_ssh_config_is_refused_not_ignored() {
    let f = Fixture::new();
    f.write(
        "home/.ssh/config",
        "Host 10.0.0.11\n  ProxyCommand nc -X connect -x proxy:3128 %h %p\n",
    );
    let text = f.err(MINIMAL).to_string();
    assert!(
        text.contains(&format!(
            "`ProxyCommand nc -X connect -x proxy:3128 %h %p` in {} (Host 10.0.0.11) is not \
             supported: calico-rollout would connect without it",
            f.home().join(".ssh/config").display()
        )),
        "{text}"
    );
}

#[test]
fn a_private_key_others_can_read_is_refused() {
    let f = Fixture::new();
    let key = f.home().join(".ssh/id_ed25519");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = f.err(EXAMPLE);
    let (line, col) = pos(EXAMPLE, "~/.ssh/id_ed25519");
    assert_eq!(
        err.to_string(),
        format!(
            "{}{line}:{col}: permissions 0644 for '{k}' are too open: it is required that your \
             private key files are NOT accessible by others, so this key is refused \
             (chmod 600 {k})",
            f.prefix(),
            k = key.display()
        )
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    f.ok(EXAMPLE);
}
