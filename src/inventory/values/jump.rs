//! `proxy_jump` values: `[user@]host[:port]`, one bastion, or `none`.

use super::InvalidValue;
use super::names::user_name;
use super::network::{parse_port, split_host_port};

/// A `proxy_jump` as written: what it leaves unsaid (the user, the port) is
/// filled in later, from ssh_config or the agent's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JumpSpec {
    /// `none`: connect directly, whatever a wider setting says.
    Direct,
    Via {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

/// Parses one `proxy_jump` (or ssh_config `ProxyJump`) value.
pub(crate) fn proxy_jump(s: &str) -> Result<JumpSpec, InvalidValue> {
    let bad = |problem: &str| InvalidValue::new("proxy_jump", s, problem);
    if s == "none" {
        return Ok(JumpSpec::Direct);
    }
    if s.contains(',') {
        return Err(bad(
            "is a chain of bastions; calico-rollout connects through one (write one \
             user@host:port)",
        ));
    }
    if s.contains("://") {
        return Err(bad("must be user@host:port, not a URL"));
    }
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, rest)) => {
            let user = user_name(u).map_err(|_| bad("has an invalid user name"))?;
            (Some(user), rest)
        }
        None => (None, s),
    };
    let (host, port) = split_host_port(rest).map_err(|p| bad(&p))?;
    let port = match port {
        None => None,
        Some(p) => {
            Some(parse_port(p).ok_or_else(|| bad("has a port that is not between 1 and 65535"))?)
        }
    };
    Ok(JumpSpec::Via {
        user,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(user: Option<&str>, host: &str, port: Option<u16>) -> JumpSpec {
        JumpSpec::Via {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn bastions_are_read_with_their_user_and_port() {
        assert_eq!(
            proxy_jump("core@bastion:2222").unwrap(),
            via(Some("core"), "bastion", Some(2222))
        );
        assert_eq!(proxy_jump("10.0.0.5").unwrap(), via(None, "10.0.0.5", None));
        assert_eq!(
            proxy_jump("ops@[fd00::5]:22").unwrap(),
            via(Some("ops"), "fd00::5", Some(22))
        );
        assert_eq!(proxy_jump("none").unwrap(), JumpSpec::Direct);
    }

    #[test]
    fn chains_and_bad_values_are_refused_with_the_reason() {
        let err = |s: &str| proxy_jump(s).unwrap_err().to_string();
        assert_eq!(
            err("a@b1,c@b2"),
            "proxy_jump \"a@b1,c@b2\" is a chain of bastions; calico-rollout connects \
             through one (write one user@host:port)"
        );
        assert!(err("ssh://b").contains("not a URL"), "{}", err("ssh://b"));
        assert!(err("b:0").contains("port"), "{}", err("b:0"));
        assert!(
            err("b_d").contains("not a valid host name"),
            "{}",
            err("b_d")
        );
        assert!(err("@b").contains("user name"), "{}", err("@b"));
    }
}
