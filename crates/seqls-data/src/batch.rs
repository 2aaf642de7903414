//! Token-budget batching (fairseq `--max-tokens`): sentences grouped by length, padded at the end of
//! each row with `<pad>`, shuffled deterministically from a seed.
//!
//! An example's cost is `max(src_len, tgt_len + 1)` tokens (the decoder sees `<s>` + target and predicts
//! target + `</s>`); a batch of `b` rows padded to that maximum costs `b · max_cost` and never exceeds the
//! budget, except a single example longer than the budget, which forms a batch of its own.

use crate::tokenizer::{BOS, EOS, PAD};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// One tokenised sentence pair. `src` ends with `</s>`; `tgt` has no special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Position of the pair in its corpus.
    pub index: usize,
    pub src: Vec<u32>,
    pub tgt: Vec<u32>,
}

impl Example {
    /// Padded token cost of this example in a batch.
    pub fn cost(&self) -> usize {
        self.src.len().max(self.tgt.len() + 1)
    }
}

/// A padded batch, row-major. Shapes: `src` `[rows, src_len]`, `tgt_in` and `tgt_out` `[rows, tgt_len]`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Corpus indices of the rows.
    pub indices: Vec<usize>,
    pub rows: usize,
    pub src_len: usize,
    pub tgt_len: usize,
    /// Source ids, `</s>`-terminated, `<pad>`-filled.
    pub src: Vec<u32>,
    /// Decoder input: `<s>` + target, padded.
    pub tgt_in: Vec<u32>,
    /// Decoder output: target + `</s>`, padded.
    pub tgt_out: Vec<u32>,
}

impl Batch {
    /// Pads `examples` into one batch.
    pub fn from_examples(examples: &[&Example]) -> Batch {
        let rows = examples.len();
        let src_len = examples.iter().map(|e| e.src.len()).max().unwrap_or(0);
        let tgt_len = examples.iter().map(|e| e.tgt.len() + 1).max().unwrap_or(0);
        let mut src = vec![PAD; rows * src_len];
        let mut tgt_in = vec![PAD; rows * tgt_len];
        let mut tgt_out = vec![PAD; rows * tgt_len];
        for (r, e) in examples.iter().enumerate() {
            src[r * src_len..r * src_len + e.src.len()].copy_from_slice(&e.src);
            let row_in = &mut tgt_in[r * tgt_len..];
            row_in[0] = BOS;
            row_in[1..=e.tgt.len()].copy_from_slice(&e.tgt);
            let row_out = &mut tgt_out[r * tgt_len..];
            row_out[..e.tgt.len()].copy_from_slice(&e.tgt);
            row_out[e.tgt.len()] = EOS;
        }
        Batch {
            indices: examples.iter().map(|e| e.index).collect(),
            rows,
            src_len,
            tgt_len,
            src,
            tgt_in,
            tgt_out,
        }
    }

    /// Splits the rows into at most `parts` consecutive groups of near-equal size (the first
    /// `rows % parts` get one row more); every part keeps this batch's `src_len` and `tgt_len`.
    /// Empty parts are left out.
    pub fn split_rows(&self, parts: usize) -> Vec<Batch> {
        let parts = parts.clamp(1, self.rows.max(1));
        let (base, extra) = (self.rows / parts, self.rows % parts);
        let mut start = 0;
        (0..parts)
            .map(|p| {
                let rows = base + usize::from(p < extra);
                let range = start..start + rows;
                start += rows;
                let cells = |len: usize| range.start * len..range.end * len;
                Batch {
                    indices: self.indices[range.clone()].to_vec(),
                    rows,
                    src_len: self.src_len,
                    tgt_len: self.tgt_len,
                    src: self.src[cells(self.src_len)].to_vec(),
                    tgt_in: self.tgt_in[cells(self.tgt_len)].to_vec(),
                    tgt_out: self.tgt_out[cells(self.tgt_len)].to_vec(),
                }
            })
            .filter(|b| b.rows > 0)
            .collect()
    }

    /// Number of non-pad target tokens (`</s>` included): the loss normaliser.
    pub fn target_tokens(&self) -> usize {
        self.tgt_out.iter().filter(|&&t| t != PAD).count()
    }
}

/// Groups examples into batches of at most `max_tokens` padded tokens.
///
/// With `shuffle_seed = Some((seed, epoch))`, equal-length examples are shuffled before grouping and the
/// batch order is shuffled afterwards, both from a ChaCha8 stream seeded by `seed` and `epoch`; with
/// `None` the order is by length (for evaluation). Returns the indices into `examples` of each batch.
pub fn plan_batches(
    examples: &[Example],
    max_tokens: usize,
    shuffle_seed: Option<(u64, u64)>,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = shuffle_seed.map(|(seed, epoch)| {
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch)
    });
    if let Some(rng) = rng.as_mut() {
        order.shuffle(rng);
    }
    order.sort_by_key(|&i| (examples[i].cost(), examples[i].src.len()));
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_max = 0;
    for i in order {
        let cost = examples[i].cost();
        let new_max = current_max.max(cost);
        if !current.is_empty() && new_max * (current.len() + 1) > max_tokens {
            batches.push(std::mem::take(&mut current));
            current_max = cost;
        } else {
            current_max = new_max;
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    if let Some(rng) = rng.as_mut() {
        batches.shuffle(rng);
    }
    batches
}

/// Builds the padded batch for one planned group.
pub fn make_batch(examples: &[Example], group: &[usize]) -> Batch {
    let rows: Vec<&Example> = group.iter().map(|&i| &examples[i]).collect();
    Batch::from_examples(&rows)
}

/// Fraction of padding over a whole epoch planned with `max_tokens`.
pub fn padding_fraction(examples: &[Example], max_tokens: usize) -> f64 {
    let (mut pads, mut cells) = (0usize, 0usize);
    for group in plan_batches(examples, max_tokens, None) {
        let b = make_batch(examples, &group);
        cells += b.src.len() + b.tgt_out.len();
        pads += b
            .src
            .iter()
            .chain(&b.tgt_out)
            .filter(|&&t| t == PAD)
            .count();
    }
    if cells == 0 {
        0.0
    } else {
        pads as f64 / cells as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                index: i,
                src: (0..(3 + (i * 7) % 23))
                    .map(|t| 4 + t as u32)
                    .chain([EOS])
                    .collect(),
                tgt: (0..(2 + (i * 5) % 19)).map(|t| 5 + t as u32).collect(),
            })
            .collect()
    }

    #[test]
    fn split_rows_partitions_the_rows_in_order() {
        let ex = examples(7);
        let group: Vec<usize> = (0..7).collect();
        let batch = make_batch(&ex, &group);
        for parts in [1, 2, 3, 7, 9] {
            let split = batch.split_rows(parts);
            assert_eq!(split.len(), parts.min(7));
            let sizes: Vec<usize> = split.iter().map(|b| b.rows).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            let join = |f: fn(&Batch) -> &Vec<u32>| -> Vec<u32> {
                split.iter().flat_map(|b| f(b).clone()).collect()
            };
            assert_eq!(join(|b| &b.src), batch.src);
            assert_eq!(join(|b| &b.tgt_in), batch.tgt_in);
            assert_eq!(join(|b| &b.tgt_out), batch.tgt_out);
            let indices: Vec<usize> = split.iter().flat_map(|b| b.indices.clone()).collect();
            assert_eq!(indices, batch.indices);
            assert!(
                split
                    .iter()
                    .all(|b| b.src_len == batch.src_len && b.tgt_len == batch.tgt_len)
            );
        }
    }

    #[test]
    fn every_pair_once_per_epoch_within_budget_padding_at_end() {
        let ex = examples(500);
        for epoch in 0..3 {
            let plan = plan_batches(&ex, 300, Some((7, epoch)));
            let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..500).collect::<Vec<_>>());
            for group in &plan {
                let b = make_batch(&ex, group);
                assert!(b.rows * b.src_len.max(b.tgt_len) <= 300);
                for r in 0..b.rows {
                    for row in [
                        &b.src[r * b.src_len..(r + 1) * b.src_len],
                        &b.tgt_out[r * b.tgt_len..(r + 1) * b.tgt_len],
                    ] {
                        let first_pad = row.iter().position(|&t| t == PAD).unwrap_or(row.len());
                        assert!(
                            row[first_pad..].iter().all(|&t| t == PAD),
                            "pad inside a row"
                        );
                        assert!(row[..first_pad].iter().all(|&t| t != PAD));
                    }
                    assert_eq!(b.tgt_in[r * b.tgt_len], BOS);
                }
            }
        }
    }

    #[test]
    fn shuffling_is_deterministic_and_varies_by_epoch() {
        let ex = examples(300);
        assert_eq!(
            plan_batches(&ex, 200, Some((1, 0))),
            plan_batches(&ex, 200, Some((1, 0)))
        );
        assert_ne!(
            plan_batches(&ex, 200, Some((1, 0))),
            plan_batches(&ex, 200, Some((1, 1)))
        );
    }

    #[test]
    fn an_example_over_budget_forms_its_own_batch() {
        let mut ex = examples(10);
        ex[3].src = vec![9; 100];
        let plan = plan_batches(&ex, 50, None);
        assert!(plan.contains(&vec![3]));
        assert_eq!(plan.iter().map(Vec::len).sum::<usize>(), 10);
    }

    #[test]
    fn length_grouping_limits_padding() {
        let ex = examples(2000);
        assert!(
            padding_fraction(&ex, 1000) < 0.25,
            "{}",
            padding_fraction(&ex, 1000)
        );
    }
}
