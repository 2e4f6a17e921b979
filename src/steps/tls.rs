//! The etcd client TLS files, planned as part of etcd-proxy (it runs
//! first, so every later step's clients find them in place), and the rule
//! that refuses the gateway when the members' certificates do not hold
//! for 127.0.0.1.
//!
//! What a rotated certificate restarts: nothing here. The gateway is a TCP
//! pass-through and never reads the files; the CNI plugin reads them on
//! every call. dockerd reads them once, when it starts: the docker step
//! restarts it (see `DockerDesired::reads`), and the install marks docker
//! pending so that an interrupted run still restarts it. calico-node and
//! libnetwork load them when they start: the files' hashes are part of
//! their spec, so they are replaced.

use super::{Action, Change, differs};
use crate::desired::TlsDesired;
use crate::facts::Facts;

/// curl's answers that only say a member is unreachable from here: the
/// gateway can do without it while another member holds.
const UNREACHABLE: [u32; 3] = [6, 7, 28];

/// Installs each TLS file that differs; the key is named by its hash only.
pub fn add_files(change: &mut Change, tls: &TlsDesired, facts: &Facts) {
    for file in tls.files.iter().filter(|f| differs(facts, f)) {
        let secret = if file.secret { "secret, " } else { "" };
        change.summary.push(format!(
            "write {} ({secret}mode {:04o}, sha256 {}…)",
            file.path,
            file.mode,
            &file.sha256[..12]
        ));
        let mut install = Action::install(file, facts);
        if let Action::Install(i) = &mut install {
            i.pending = tls.restarts.map(str::to_string);
        }
        change.apply.push(install);
    }
}

/// Why the host's plan is refused, when TLS goes through the gateway and a
/// member's certificate does not hold for 127.0.0.1 (or no member answered).
pub fn loopback_refusal(tls: &TlsDesired, facts: &Facts) -> Option<String> {
    if tls.loopback.is_empty() {
        return None;
    }
    let advice = "with etcd.proxy: true, every client talks TLS to the gateway at \
                  127.0.0.1:2379 and checks the member's certificate against 127.0.0.1; add \
                  IP:127.0.0.1 to the members' certificates (subjectAltName), or set \
                  etcd.proxy: false so that clients use the https:// endpoints directly";
    let answers = &facts.tls_loopback;
    if let Some(bad) = answers
        .iter()
        .find(|a| a.code != 0 && !UNREACHABLE.contains(&a.code))
    {
        return Some(format!(
            "etcd member {} does not accept TLS for 127.0.0.1 from this agent ({}): {advice}",
            bad.member,
            reason(bad.code, &bad.error)
        ));
    }
    if answers.iter().any(|a| a.code == 0) {
        return None;
    }
    let tried: Vec<String> = answers
        .iter()
        .map(|a| format!("{}: {}", a.member, reason(a.code, &a.error)))
        .collect();
    Some(if tried.is_empty() {
        format!("the TLS check of the etcd members did not run on this agent; {advice}")
    } else {
        format!(
            "no etcd member answered TLS for 127.0.0.1 from this agent ({}); nothing was touched",
            tried.join("; ")
        )
    })
}

fn reason(code: u32, error: &str) -> String {
    if error.is_empty() {
        format!("curl exit {code}")
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{DOCKER_UNIT, ManagedFile, TLS_CA, TLS_CERT, TLS_KEY};
    use crate::facts::LoopbackTls;
    use crate::steps::testing::fresh_facts;

    fn tls() -> TlsDesired {
        TlsDesired {
            files: vec![
                ManagedFile::new(TLS_CA.parse().unwrap(), "ca", 0o644),
                ManagedFile::new(TLS_CERT.parse().unwrap(), "cert", 0o644),
                ManagedFile::secret(TLS_KEY.parse().unwrap(), "the key bytes", 0o600),
            ],
            restarts: Some(DOCKER_UNIT),
            loopback: vec!["etcd-1:2379".into(), "etcd-2:2379".into()],
        }
    }

    fn answer(member: &str, code: u32, error: &str) -> LoopbackTls {
        LoopbackTls {
            member: member.into(),
            code,
            error: error.into(),
        }
    }

    #[test]
    fn files_are_installed_with_their_modes_and_the_key_is_never_shown() {
        let mut change = Change::default();
        let t = tls();
        add_files(&mut change, &t, &fresh_facts());
        assert_eq!(change.apply.len(), 3);
        let Action::Install(key) = &change.apply[2] else {
            panic!("{:?}", change.apply)
        };
        assert_eq!((key.target.as_str(), key.mode), (TLS_KEY, 0o600));
        assert_eq!(key.pending.as_deref(), Some(DOCKER_UNIT));
        let shown = format!("{:?} {:?} {:?}", change.summary, change.apply, t);
        assert!(!shown.contains("the key bytes"), "{shown}");
        assert!(
            change.summary[2].starts_with(&format!("write {TLS_KEY} (secret, mode 0600, sha256 ")),
            "{:?}",
            change.summary
        );

        // Only the rotated certificate is written again.
        let mut facts = fresh_facts();
        for f in &t.files {
            facts.hashes.insert(f.path.to_string(), f.sha256.clone());
        }
        facts.hashes.insert(TLS_CERT.into(), "0".repeat(64));
        let mut change = Change::default();
        add_files(&mut change, &t, &facts);
        assert_eq!(change.summary.len(), 1);
        assert!(change.summary[0].starts_with(&format!("write {TLS_CERT} (mode 0644")));
    }

    #[test]
    fn the_gateway_is_refused_unless_the_members_hold_for_127_0_0_1() {
        let t = tls();
        let with = |answers: Vec<LoopbackTls>| {
            let mut f = fresh_facts();
            f.tls_loopback = answers;
            loopback_refusal(&t, &f)
        };
        assert_eq!(with(vec![answer("etcd-1:2379", 0, "")]), None);
        // One member down is the gateway's business, not a refusal.
        assert_eq!(
            with(vec![
                answer("etcd-1:2379", 7, "curl: (7) Failed to connect"),
                answer("etcd-2:2379", 0, "")
            ]),
            None
        );
        let san = "curl: (60) SSL: no alternative certificate subject name matches target host name '127.0.0.1'";
        let why = with(vec![
            answer("etcd-1:2379", 0, ""),
            answer("etcd-2:2379", 60, san),
        ])
        .unwrap();
        assert!(
            why.starts_with(&format!(
                "etcd member etcd-2:2379 does not accept TLS for 127.0.0.1 from this agent ({san})"
            )),
            "{why}"
        );
        assert!(why.contains("or set etcd.proxy: false"), "{why}");
        let why = with(vec![answer("etcd-1:2379", 28, "")]).unwrap();
        assert!(why.contains("no etcd member answered"), "{why}");
        assert!(with(vec![]).unwrap().contains("did not run"));

        // Without the gateway nothing is checked.
        let direct = TlsDesired {
            loopback: vec![],
            ..tls()
        };
        assert_eq!(loopback_refusal(&direct, &fresh_facts()), None);
    }
}
