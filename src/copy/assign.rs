//! Which pipeline copies which partition: a pure, deterministic split of weighted items into
//! bins, so that the bins finish at about the same time.

/// Splits items of the given weights into `bins` bins (at least one): the heaviest item
/// first, each into the bin with the least weight so far (ties: fewer items, then the lower
/// bin). The result lists item indexes per bin, ascending. Deterministic for the same
/// input; the heaviest and the lightest bin differ by at most the heaviest item's weight.
pub fn balance(weights: &[u64], bins: usize) -> Vec<Vec<usize>> {
    let bins = bins.max(1);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Heaviest first; equal weights keep their order so the split is stable.
    order.sort_by(|a, b| weights[*b].cmp(&weights[*a]).then(a.cmp(b)));
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); bins];
    let mut load: Vec<u64> = vec![0; bins];
    for item in order {
        let bin = (0..bins)
            .min_by_key(|b| (load[*b], out[*b].len(), *b))
            .unwrap_or(0);
        load[bin] = load[bin].saturating_add(weights[item]);
        out[bin].push(item);
    }
    for bin in &mut out {
        bin.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn heavy_items_spread_and_ties_by_count() {
        assert_eq!(balance(&[10, 1, 1, 10], 2), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(balance(&[0, 0, 0, 0], 2), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(balance(&[5], 3), vec![vec![0], vec![], vec![]]);
        assert_eq!(balance(&[], 2), vec![Vec::<usize>::new(), vec![]]);
        assert_eq!(balance(&[3, 4], 0), vec![vec![0, 1]]);
    }

    proptest! {
        #[test]
        fn every_item_once_balanced_and_stable(
            weights in proptest::collection::vec(0u64..1_000_000, 0..300),
            bins in 1usize..12,
        ) {
            let split = balance(&weights, bins);
            prop_assert_eq!(split.len(), bins);
            let mut seen = vec![0u32; weights.len()];
            for bin in &split {
                for i in bin {
                    seen[*i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|n| *n == 1));
            let loads: Vec<u64> = split.iter().map(|b| b.iter().map(|i| weights[*i]).sum()).collect();
            let heaviest = weights.iter().copied().max().unwrap_or(0);
            let (max, min) = (loads.iter().max().copied().unwrap_or(0), loads.iter().min().copied().unwrap_or(0));
            prop_assert!(max - min <= heaviest, "loads {:?}, heaviest {}", loads, heaviest);
            prop_assert_eq!(balance(&weights, bins), split);
        }
    }
}
