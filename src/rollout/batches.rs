//! Batch maths: which hosts restart together.

use crate::inventory::BatchSize;

/// Splits the hosts that have disruptive work into rolling batches. A
/// percentage is of all selected hosts, so the batch size does not shrink
/// as a re-run finds fewer hosts left to change.
pub fn split(work: &[usize], size: &BatchSize, selected: usize) -> Vec<Vec<usize>> {
    let per = size.hosts_per_batch(selected).max(1);
    work.chunks(per).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts with work, batch size, selected hosts, expected batches.
    type Case = (&'static [usize], BatchSize, usize, &'static [&'static [usize]]);

    #[test]
    fn table() {
        let cases: [Case; 6] = [
            (
                &[0, 1, 2, 3],
                BatchSize::Count(1),
                4,
                &[&[0], &[1], &[2], &[3]],
            ),
            (
                &[0, 1, 2, 3, 4],
                BatchSize::Count(2),
                5,
                &[&[0, 1], &[2, 3], &[4]],
            ),
            (&[0, 1, 2], BatchSize::Count(10), 3, &[&[0, 1, 2]]),
            (
                &[0, 1, 2, 3],
                BatchSize::Percent(50),
                4,
                &[&[0, 1], &[2, 3]],
            ),
            // 20% of 4 rounds down to 0: a batch is never empty.
            (
                &[0, 1, 2, 3],
                BatchSize::Percent(20),
                4,
                &[&[0], &[1], &[2], &[3]],
            ),
            (&[], BatchSize::Count(3), 4, &[]),
        ];
        for (work, size, selected, want) in cases {
            let got = split(work, &size, selected);
            let want: Vec<Vec<usize>> = want.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, want, "{work:?} by {size:?} of {selected}");
        }
    }
}
