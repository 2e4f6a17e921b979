//! Reading BIRD's BGP sessions on an agent: `birdcl` inside the
//! calico-node container, on BIRD's control socket, as Calico itself does.
//! [`crate::bgp`] reads what it prints.

use crate::shell::Cmd;

/// calico/node's BIRD control sockets (mounted from the host).
pub const BIRD_SOCKET: &str = "/var/run/calico/bird.ctl";
pub const BIRD6_SOCKET: &str = "/var/run/calico/bird6.ctl";

/// `docker exec calico-node birdcl … show protocols`, for IPv4 and, with
/// `ipv6`, BIRD6 too: one table after the other.
pub fn show_protocols(container: &str, ipv6: bool) -> String {
    let one = |client: &str, socket: &str| {
        Cmd::new("docker")
            .arg("exec")
            .arg(container)
            .arg(client)
            .arg("-s")
            .arg(socket)
            .arg("show")
            .arg("protocols")
            .to_string()
    };
    let mut s = one("birdcl", BIRD_SOCKET);
    if ipv6 {
        s = format!("{s} && {}", one("birdcl6", BIRD6_SOCKET));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_are_read_with_ipv6() {
        let cmd = show_protocols("calico-node", true);
        assert!(
            cmd.contains("birdcl -s /var/run/calico/bird.ctl show protocols"),
            "{cmd}"
        );
        assert!(
            cmd.contains("&& docker exec calico-node birdcl6 -s /var/run/calico/bird6.ctl"),
            "{cmd}"
        );
        assert!(!show_protocols("calico-node", false).contains("birdcl6"));
    }
}
