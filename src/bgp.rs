//! BIRD's BGP sessions, as calico/node's own `birdcl` prints them: the
//! `BGP` lines of `show protocols`, their state and their info column.
//! Calico reads them the same way to tell that a node's mesh is up.

/// One BGP protocol of BIRD's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `Mesh_10_0_0_12` for a node-to-node mesh peer; global peers and
    /// route reflectors have names of their own.
    pub name: String,
    /// BIRD's protocol state: `up`, `start`, `down`…
    pub state: String,
    /// The info column: `Established`, or the BGP state (`Active`,
    /// `Connect`, `Idle`…) and often a reason.
    pub info: String,
}

impl Session {
    pub fn established(&self) -> bool {
        self.info.split_whitespace().next() == Some("Established")
    }

    /// The peer as an operator knows it: the address of a mesh peer
    /// (`Mesh_10_0_0_12` is 10.0.0.12), the protocol's name otherwise.
    pub fn peer(&self) -> String {
        let Some(rest) = self.name.strip_prefix("Mesh_") else {
            return self.name.clone();
        };
        let v4 = rest.replace('_', ".");
        if v4.parse::<std::net::Ipv4Addr>().is_ok() {
            return v4;
        }
        let v6 = rest.replace('_', ":");
        if v6.parse::<std::net::Ipv6Addr>().is_ok() {
            return v6;
        }
        self.name.clone()
    }

    /// The peer and its BGP state, as the report names a session that is
    /// down: `10.0.0.13 Active (Socket: Connection refused)`.
    pub fn describe(&self) -> String {
        let mut words = self.info.splitn(2, ' ');
        let bgp = words
            .next()
            .filter(|w| !w.is_empty())
            .unwrap_or(&self.state);
        match words.next().map(str::trim).filter(|r| !r.is_empty()) {
            Some(reason) => format!("{} {bgp} ({reason})", self.peer()),
            None => format!("{} {bgp}", self.peer()),
        }
    }
}

/// The BGP sessions of what `birdcl show protocols` printed. An output without
/// BIRD's table is an error, with what it said instead.
pub fn parse(out: &str) -> Result<Vec<Session>, String> {
    let mut tables = 0;
    let mut sessions = Vec::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.starts_with(&["name", "proto", "table", "state", "since", "info"]) {
            tables += 1;
            continue;
        }
        if tables == 0 || fields.len() < 5 || fields[1] != "BGP" {
            continue;
        }
        // `since` is one word (a time today, a date before), or two with
        // an ISO time format.
        let mut rest = 5;
        if fields.len() > 5 && is_time(fields[5]) && fields[4].contains('-') {
            rest = 6;
        }
        sessions.push(Session {
            name: fields[0].to_string(),
            state: fields[3].to_string(),
            info: fields[rest.min(fields.len())..].join(" "),
        });
    }
    if tables == 0 {
        let said: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(if said.is_empty() {
            "birdcl printed nothing".to_string()
        } else {
            format!("birdcl printed no protocol table: {}", said.join(" | "))
        });
    }
    Ok(sessions)
}

fn is_time(word: &str) -> bool {
    let parts: Vec<&str> = word.split([':', '.']).collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As calico/node v2.6's birdcl prints it: padded columns, trailing
    /// spaces, a reason after the BGP state.
    const TABLE: &str = "BIRD v0.3.3+birdv1.6.3 ready.
name     proto    table    state  since       info
static1  Static   master   up     09:58:27    
kernel1  Kernel   master   up     09:58:27    
device1  Device   master   up     09:58:27    
direct1  Direct   master   up     09:58:27    
Mesh_10_0_0_12 BGP      master   up     09:58:46    Established   
Mesh_10_0_0_13 BGP      master   start  09:58:41    Active        Socket: Connection refused
Global_10_0_9_1 BGP      master   start  2026-12-01  Connect       
";

    #[test]
    fn bgp_lines_are_read_with_their_state_and_info() {
        let s = parse(TABLE).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s[0].established());
        assert_eq!(s[0].peer(), "10.0.0.12");
        assert!(!s[1].established());
        assert_eq!(s[1].state, "start");
        assert_eq!(
            s[1].describe(),
            "10.0.0.13 Active (Socket: Connection refused)"
        );
        assert_eq!(s[2].describe(), "Global_10_0_9_1 Connect");
    }

    #[test]
    fn a_date_and_time_since_is_one_column() {
        let s = parse(
            "name     proto    table    state  since       info\n\
             Mesh_fd00__12 BGP master up 2026-12-01 09:58:46 Established\n\
             Mesh_10_0_0_14 BGP master down 2026-12-01 09:58:46\n",
        )
        .unwrap();
        assert_eq!(s[0].peer(), "fd00::12");
        assert!(s[0].established());
        assert_eq!(s[1].info, "");
        assert_eq!(s[1].describe(), "10.0.0.14 down");
    }

    #[test]
    fn no_table_is_an_error_that_says_what_birdcl_said() {
        let e = parse(
            "Unable to connect to server control socket (/var/run/calico/bird.ctl): No such file or directory\n",
        )
        .unwrap_err();
        assert!(e.contains("No such file or directory"), "{e}");
        assert_eq!(parse("").unwrap_err(), "birdcl printed nothing");
        // A first node of a mesh: a table, and no BGP session in it.
        assert_eq!(
            parse("BIRD 1.6.3 ready.\nname proto table state since info\n"),
            Ok(vec![])
        );
    }
}
