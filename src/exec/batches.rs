//! Batch maths: which hosts restart together. A canary batch first, then
//! the ramp (its last size repeating); with `by: zone`, no batch spans two
//! zones and zones roll one after another.

use crate::inventory::RolloutConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Indices into the host list, in inventory order.
    pub hosts: Vec<usize>,
    pub canary: bool,
}

/// `work` is the hosts that have disruptive work, each with its zone, in
/// inventory order. Percentages are of all `selected` hosts, so a batch
/// does not shrink as a re-run finds fewer hosts left to change.
pub fn split(work: &[(usize, Option<&str>)], cfg: &RolloutConfig, selected: usize) -> Vec<Batch> {
    // Zones in the order their first host appears in the inventory.
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for &(host, zone) in work {
        let zone = if cfg.by_zone { zone } else { None };
        match groups.iter_mut().find(|(z, _)| *z == zone) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((zone, vec![host])),
        }
    }

    let mut batches = Vec::new();
    let mut ramp_step = 0;
    for (g, (_, hosts)) in groups.iter().enumerate() {
        let mut rest: &[usize] = hosts;
        if g == 0 && cfg.canary > 0 {
            // The canaries come from the first zone only: a canary batch
            // must not span zones either.
            let n = cfg.canary.min(rest.len());
            batches.push(Batch {
                hosts: rest[..n].to_vec(),
                canary: true,
            });
            rest = &rest[n..];
        }
        while !rest.is_empty() {
            let size = cfg.batch[ramp_step.min(cfg.batch.len() - 1)]
                .hosts_per_batch(selected)
                .min(rest.len());
            batches.push(Batch {
                hosts: rest[..size].to_vec(),
                canary: false,
            });
            rest = &rest[size..];
            ramp_step += 1;
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::BatchSize;

    fn cfg(batch: Vec<BatchSize>, canary: usize, by_zone: bool) -> RolloutConfig {
        RolloutConfig {
            batch,
            canary,
            by_zone,
            ..RolloutConfig::default()
        }
    }

    fn sizes(batches: &[Batch]) -> Vec<usize> {
        batches.iter().map(|b| b.hosts.len()).collect()
    }

    #[test]
    fn fixed_and_percentage_batches() {
        let work: Vec<(usize, Option<&str>)> = (0..5).map(|i| (i, None)).collect();
        let cases = [
            (vec![BatchSize::Count(1)], vec![1, 1, 1, 1, 1]),
            (vec![BatchSize::Count(2)], vec![2, 2, 1]),
            (vec![BatchSize::Count(10)], vec![5]),
            (vec![BatchSize::Percent(40)], vec![2, 2, 1]),
            // 10% of 5 rounds down to 0: a batch is never empty.
            (vec![BatchSize::Percent(10)], vec![1, 1, 1, 1, 1]),
        ];
        for (batch, want) in cases {
            let got = split(&work, &cfg(batch.clone(), 0, false), 5);
            assert_eq!(sizes(&got), want, "{batch:?}");
        }
        assert!(split(&[], &cfg(vec![BatchSize::Count(3)], 0, false), 4).is_empty());
    }

    #[test]
    fn a_ramp_repeats_its_last_size() {
        let work: Vec<(usize, Option<&str>)> = (0..10).map(|i| (i, None)).collect();
        let ramp = vec![
            BatchSize::Count(1),
            BatchSize::Count(2),
            BatchSize::Percent(50),
        ];
        let got = split(&work, &cfg(ramp, 0, false), 10);
        assert_eq!(sizes(&got), [1, 2, 5, 2]);
        let order: Vec<usize> = got.iter().flat_map(|b| b.hosts.clone()).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "inventory order kept");
    }

    #[test]
    fn canaries_go_first_in_a_batch_of_their_own() {
        let work: Vec<(usize, Option<&str>)> = (0..6).map(|i| (i, None)).collect();
        let got = split(&work, &cfg(vec![BatchSize::Count(3)], 2, false), 6);
        assert_eq!(sizes(&got), [2, 3, 1]);
        assert!(got[0].canary && !got[1].canary);
        assert_eq!(got[0].hosts, [0, 1]);
    }

    #[test]
    fn zones_never_share_a_batch_and_roll_one_after_another() {
        let work = [
            (0, Some("a")),
            (1, Some("b")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("a")),
            (5, Some("c")),
        ];
        let zone_of = |h: usize| work[h].1;
        let got = split(&work, &cfg(vec![BatchSize::Count(2)], 1, true), 6);
        for b in &got {
            let z = zone_of(b.hosts[0]);
            assert!(
                b.hosts.iter().all(|&h| zone_of(h) == z),
                "{b:?} spans zones"
            );
        }
        let hosts: Vec<Vec<usize>> = got.iter().map(|b| b.hosts.clone()).collect();
        assert_eq!(hosts, [vec![0], vec![2, 4], vec![1, 3], vec![5]]);
        assert!(got[0].canary);

        // Without by: zone the labels play no part.
        let flat = split(&work, &cfg(vec![BatchSize::Count(2)], 0, false), 6);
        assert_eq!(sizes(&flat), [2, 2, 2]);
    }
}
