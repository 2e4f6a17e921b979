//! Host lists for people: `agent-[01-48], pub-1` rather than fifty names.

/// A name split at its trailing number: `agent-07` is ("agent-", "07").
fn split(name: &str) -> (&str, &str) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name.split_at(name.len() - digits)
}

/// Whether `next` follows `prev` in a range: the same prefix, the number one
/// higher, and the same zero-padding (`agent-09`, `agent-10`; `agent-9`,
/// `agent-10`; not `agent-09`, `agent-010`).
fn follows(prev: (&str, &str), next: (&str, &str)) -> bool {
    let (Ok(a), Ok(b)) = (prev.1.parse::<u64>(), next.1.parse::<u64>()) else {
        return false;
    };
    let padded = |d: &str| d.len() > 1 && d.starts_with('0');
    prev.0 == next.0
        && b == a + 1
        && (prev.1.len() == next.1.len() || !(padded(prev.1) || padded(next.1)))
}

/// The names, sorted, with runs of consecutive numbers folded into ranges:
/// `agent-1, agent-2, agent-3, pub-1` reads `agent-[1-3], pub-1`.
pub fn compact<S: AsRef<str>>(names: &[S]) -> String {
    let mut sorted: Vec<(&str, &str)> = names.iter().map(|n| split(n.as_ref())).collect();
    // Same-length digits compare as numbers; shorter numbers come first.
    sorted.sort_by_key(|&(prefix, digits)| (prefix, digits.len(), digits));
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && follows(sorted[j], sorted[j + 1]) {
            j += 1;
        }
        let (prefix, first) = sorted[i];
        out.push(if j == i {
            format!("{prefix}{first}")
        } else {
            format!("{prefix}[{first}-{}]", sorted[j].1)
        });
        i = j + 1;
    }
    out.join(", ")
}

/// Hosts whose text reads the same, together, in the order each text
/// first appears: how plan and status say a thing once for many hosts.
pub fn group_by_text<'a>(
    hosts: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<(String, Vec<&'a str>)> {
    let mut groups: Vec<(String, Vec<&'a str>)> = Vec::new();
    for (host, text) in hosts {
        match groups.iter_mut().find(|(t, _)| *t == text) {
            Some((_, names)) => names.push(host),
            None => groups.push((text, vec![host])),
        }
    }
    groups
}

/// A group's heading: its hosts folded into ranges, and how many there
/// are when more than one (`agent-[1-3] (3 hosts)`).
pub fn heading(hosts: &[&str]) -> String {
    if hosts.len() > 1 {
        format!("{} ({} hosts)", compact(hosts), hosts.len())
    } else {
        compact(hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::{compact, group_by_text, heading};

    #[test]
    fn hosts_with_the_same_text_share_one_heading() {
        let groups = group_by_text([
            ("agent-1", "a".to_string()),
            ("pub-1", "b".to_string()),
            ("agent-2", "a".to_string()),
        ]);
        assert_eq!(
            groups,
            [
                ("a".to_string(), vec!["agent-1", "agent-2"]),
                ("b".to_string(), vec!["pub-1"])
            ]
        );
        assert_eq!(heading(&groups[0].1), "agent-[1-2] (2 hosts)");
        assert_eq!(heading(&groups[1].1), "pub-1");
    }

    #[test]
    fn runs_of_numbers_become_ranges() {
        let cases: &[(&[&str], &str)] = &[
            (&[], ""),
            (&["agent-1"], "agent-1"),
            (
                &["agent-1", "agent-2", "agent-3", "pub-1"],
                "agent-[1-3], pub-1",
            ),
            (
                &["pub-1", "agent-3", "agent-1", "agent-2"],
                "agent-[1-3], pub-1",
            ),
            (&["agent-1", "agent-3"], "agent-1, agent-3"),
            (&["agent-09", "agent-10", "agent-11"], "agent-[09-11]"),
            (&["agent-9", "agent-10"], "agent-[9-10]"),
            (&["agent-09", "agent-010"], "agent-09, agent-010"),
            (&["etcd", "master", "agent-1"], "agent-1, etcd, master"),
            (&["a1", "a2", "b2", "b3", "b5"], "a[1-2], b[2-3], b5"),
            (&["agent-1", "agent-1"], "agent-1"),
        ];
        for (names, want) in cases {
            assert_eq!(compact(names), *want, "{names:?}");
        }
    }

    #[test]
    fn fifty_agents_read_as_two_ranges() {
        let names: Vec<String> = (1..=50)
            .map(|i| {
                if i % 10 == 0 {
                    format!("pub-{i:02}")
                } else {
                    format!("agent-{i:02}")
                }
            })
            .collect();
        assert_eq!(
            compact(&names),
            "agent-[01-09], agent-[11-19], agent-[21-29], agent-[31-39], agent-[41-49], \
             pub-10, pub-20, pub-30, pub-40, pub-50"
        );
    }
}
