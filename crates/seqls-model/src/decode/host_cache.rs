//! Incremental decoding on the CPU: the decoder's keys and values in host memory, and the attention
//! of each new position over them, `softmax(q·kᵀ/√dh)·V` per row and head, computed by hand.
//!
//! With a cache of backend tensors, attention on burn-flex costs more than its arithmetic: the cache
//! grows by concatenation (a copy of every position at every step), beam search's reorder copies it
//! again, and each head's product is a `1 × t` matrix product with a full operation's overhead. Here
//! - the self-attention keys and values of a position are written once, as the step's `[rows, 3d]`
//!   query|key|value projections, and never moved: a current row reaches its ancestors' rows through
//!   `lineage`, which a reorder rewrites (row indices, not vectors);
//! - the cross-attention keys and values are held once per source sentence, not per hypothesis row;
//! - the attention of a row is `positions` dot products and weighted sums of `dh` floats per head,
//!   each key/value row read once for all heads while the next row's are prefetched.
//!
//! Heads are the `dh = d / heads` consecutive columns of a `d`-wide row, as in the tensor model's
//! `split_heads`.

use crate::ops::log_softmax::exp_nonpositive;

/// The keys and values of every decoder layer, for one batch of sources being decoded.
#[derive(Clone, Debug)]
pub(crate) struct HostCache {
    d: usize,
    heads: usize,
    layers: Vec<HostLayer>,
    /// `lineage[p][r]`: the row, among those written at position `p`, that current row `r` continues.
    lineage: Vec<Vec<u32>>,
    /// The source sentence of each current row.
    row_source: Vec<u32>,
    /// Source positions (padded length of the batch).
    source_len: usize,
    /// `[sources, source_len]`: true at real source tokens, false at padding.
    source_valid: Vec<bool>,
}

#[derive(Clone, Debug)]
struct HostLayer {
    /// Per position: the `[rows, 3d]` self-attention projections of that step, query, key and value
    /// side by side (keys at columns `d..2d`, values at `2d..3d`).
    self_qkv: Vec<Vec<f32>>,
    /// `[sources, source_len, d]`: the cross-attention keys / values of each source.
    cross_keys: Vec<f32>,
    cross_values: Vec<f32>,
}

impl HostCache {
    /// A cache for `source_valid.len() / source_len` sources, one row each, with every layer's
    /// cross-attention keys and values (`[sources, source_len, d]` each).
    pub(crate) fn new(
        d: usize,
        heads: usize,
        cross: Vec<(Vec<f32>, Vec<f32>)>,
        source_len: usize,
        source_valid: Vec<bool>,
    ) -> Self {
        let sources = source_valid.len() / source_len.max(1);
        HostCache {
            d,
            heads,
            layers: cross
                .into_iter()
                .map(|(cross_keys, cross_values)| HostLayer {
                    self_qkv: Vec::new(),
                    cross_keys,
                    cross_values,
                })
                .collect(),
            lineage: Vec::new(),
            row_source: (0..sources as u32).collect(),
            source_len,
            source_valid,
        }
    }

    /// Number of hypothesis rows.
    pub(crate) fn rows(&self) -> usize {
        self.row_source.len()
    }

    /// Number of positions written.
    pub(crate) fn positions(&self) -> usize {
        self.lineage.len()
    }

    /// Opens the next position: every current row writes its own keys and values there.
    pub(crate) fn next_position(&mut self) {
        self.lineage.push((0..self.rows() as u32).collect());
    }

    /// Appends this position's projections `qkv` `[rows, 3d]` (query, key, value side by side) to
    /// `layer`'s self-attention cache and returns the attention of its queries over every position so
    /// far, `[rows, d]`.
    pub(crate) fn self_attend(&mut self, layer: usize, qkv: Vec<f32>) -> Vec<f32> {
        self.layers[layer].self_qkv.push(qkv);
        let cache = &self.layers[layer].self_qkv;
        let d = self.d;
        let lineage = &self.lineage;
        // Cannot fail: pushed above.
        let q = cache.last().expect("this position");
        let queries = Queries {
            values: q,
            stride: 3 * d,
            d,
            heads: self.heads,
        };
        attend(queries, cache.len(), |row, p| {
            let at = lineage[p][row] as usize * 3 * d;
            Some((
                &cache[p][at + d..at + 2 * d],
                &cache[p][at + 2 * d..at + 3 * d],
            ))
        })
    }

    /// The attention of the queries `q` `[rows, d]` over each row's source in `layer`, `[rows, d]`.
    pub(crate) fn cross_attend(&self, layer: usize, q: &[f32]) -> Vec<f32> {
        let cache = &self.layers[layer];
        let (d, s) = (self.d, self.source_len);
        let queries = Queries {
            values: q,
            stride: d,
            d,
            heads: self.heads,
        };
        attend(queries, s, |row, p| {
            let i = self.row_source[row] as usize * s + p;
            self.source_valid[i].then(|| {
                (
                    &cache.cross_keys[i * d..(i + 1) * d],
                    &cache.cross_values[i * d..(i + 1) * d],
                )
            })
        })
    }

    /// Keeps row `parents[i]` as the new row `i` (beam search's "reorder by parent").
    pub(crate) fn reorder(&mut self, parents: &[usize]) {
        for rows in &mut self.lineage {
            *rows = parents.iter().map(|&p| rows[p]).collect();
        }
        self.row_source = parents.iter().map(|&p| self.row_source[p]).collect();
    }
}

/// Query rows: the first `d` of every `stride` values of `values`, in `heads` heads of `d / heads`.
#[derive(Clone, Copy)]
struct Queries<'q> {
    values: &'q [f32],
    stride: usize,
    d: usize,
    heads: usize,
}

/// `softmax(q_h·k_hᵀ/√dh)·v_h` for every query row of `q` and every head `h`, over `positions`
/// key/value rows that `kv(row, p)` gives (`None`: masked), as `[rows, d]`.
fn attend<'a, F>(q: Queries, positions: usize, kv: F) -> Vec<f32>
where
    F: Fn(usize, usize) -> Option<(&'a [f32], &'a [f32])>,
{
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        fn attend_avx2<'a, F>(q: Queries, positions: usize, kv: F) -> Vec<f32>
        where
            F: Fn(usize, usize) -> Option<(&'a [f32], &'a [f32])>,
        {
            attend_rows(q, positions, kv)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { attend_avx2(q, positions, kv) };
    }
    attend_rows(q, positions, kv)
}

#[inline(always)]
fn attend_rows<'a, F>(q: Queries, positions: usize, kv: F) -> Vec<f32>
where
    F: Fn(usize, usize) -> Option<(&'a [f32], &'a [f32])>,
{
    let Queries {
        values: q,
        stride: q_stride,
        d,
        heads,
    } = q;
    let dh = d / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let rows = q.len() / q_stride;
    let mut out = vec![0f32; rows * d];
    let mut pairs = Vec::with_capacity(positions);
    // `weights[h * n + i]`: head h's weight of the i-th unmasked position (n of them).
    let mut weights = vec![0f32; heads * positions];
    let mut query = vec![0f32; d];
    // The key/value rows of the next row, fetched into the cache while this row computes: a row's
    // history is scattered over the positions' buffers, where the hardware prefetcher cannot guess it.
    let mut next_pairs = Vec::with_capacity(positions);
    let gather = |row: usize, into: &mut Vec<(&'a [f32], &'a [f32])>| {
        into.clear();
        for p in 0..positions {
            if let Some(pair) = kv(row, p) {
                into.push(pair);
            }
        }
    };
    if rows > 0 {
        gather(0, &mut next_pairs);
    }
    // Plain loops, so that everything compiles inside the caller's target features. Each key and
    // value row is read once, whole, for all heads.
    for row in 0..rows {
        std::mem::swap(&mut pairs, &mut next_pairs);
        if row + 1 < rows {
            gather(row + 1, &mut next_pairs);
            for (k, v) in &next_pairs {
                prefetch(k);
                prefetch(v);
            }
        }
        let n = pairs.len();
        for (scaled, &x) in query.iter_mut().zip(&q[row * q_stride..row * q_stride + d]) {
            *scaled = x * scale;
        }
        for (i, (k, _)) in pairs.iter().enumerate() {
            for h in 0..heads {
                weights[h * n + i] = dot(&query[h * dh..(h + 1) * dh], &k[h * dh..(h + 1) * dh]);
            }
        }
        for h in 0..heads {
            let w = &mut weights[h * n..(h + 1) * n];
            let mut max = f32::NEG_INFINITY;
            for &x in w.iter() {
                max = max.max(x);
            }
            let mut sum = 0.0;
            for x in w.iter_mut() {
                *x = exp_nonpositive(*x - max);
                sum += *x;
            }
            for x in w.iter_mut() {
                *x /= sum;
            }
        }
        let context = &mut out[row * d..(row + 1) * d];
        for (i, (_, v)) in pairs.iter().enumerate() {
            for h in 0..heads {
                let cols = h * dh..(h + 1) * dh;
                add_scaled(&mut context[cols.clone()], weights[h * n + i], &v[cols]);
            }
        }
    }
    out
}

/// Asks for the cache lines of `values` to be brought into the level-2 cache (a hint).
#[inline(always)]
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        // SAFETY: a prefetch is a hint that never faults; the pointer is that of a live slice.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr().cast(),
            )
        };
    }
}

/// `Σ a_i·b_i`, in 16 lanes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let blocks = a.len() / 16;
    for j in 0..blocks {
        let (x, y) = (&a[j * 16..j * 16 + 16], &b[j * 16..j * 16 + 16]);
        for i in 0..16 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum = 0.0;
    for i in blocks * 16..a.len() {
        sum += a[i] * b[i];
    }
    for lane in lanes {
        sum += lane;
    }
    sum
}

/// `out += w·v`.
#[inline(always)]
fn add_scaled(out: &mut [f32], w: f32, v: &[f32]) {
    for i in 0..out.len() {
        out[i] += w * v[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention of one row and head, in f64, the textbook way.
    fn reference(q: &[f32], keys: &[&[f32]], values: &[&[f32]]) -> Vec<f64> {
        let scale = 1.0 / (q.len() as f64).sqrt();
        let scores: Vec<f64> = keys
            .iter()
            .map(|k| {
                q.iter()
                    .zip(*k)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        (0..q.len())
            .map(|i| {
                exps.iter()
                    .zip(values)
                    .map(|(e, v)| e / sum * v[i] as f64)
                    .sum()
            })
            .collect()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    /// Self-attention after reorders and cross-attention with padding match the textbook formula
    /// over each row's own history (rows followed through the reorders) and its source's real tokens.
    #[test]
    fn attention_over_the_cache_follows_each_rows_history() {
        let (d, heads, s) = (40, 2, 3); // dh = 20: a 16-lane block and a tail
        let dh = d / heads;
        // Two sources; the second has one padding position.
        let valid = vec![true, true, true, true, true, false];
        let cross: Vec<(Vec<f32>, Vec<f32>)> = (0..2)
            .map(|l| (values(2 * s * d, 10 + l), values(2 * s * d, 20 + l)))
            .collect();
        let mut cache = HostCache::new(d, heads, cross.clone(), s, valid.clone());
        // Per current row: its source and its (key, value) history in layer 0.
        let mut history: Vec<(usize, Vec<(Vec<f32>, Vec<f32>)>)> = vec![(0, vec![]), (1, vec![])];
        for (step, parents) in [vec![0, 0, 1], vec![2, 0, 1, 1], vec![3, 1]]
            .iter()
            .enumerate()
        {
            let rows = cache.rows();
            cache.next_position();
            let (q, k, v) = (
                values(rows * d, 100 + step as u32),
                values(rows * d, 200 + step as u32),
                values(rows * d, 300 + step as u32),
            );
            for (r, h) in history.iter_mut().enumerate() {
                h.1.push((
                    k[r * d..(r + 1) * d].to_vec(),
                    v[r * d..(r + 1) * d].to_vec(),
                ));
            }
            let qkv: Vec<f32> = (0..rows)
                .flat_map(|r| {
                    [&q, &k, &v]
                        .map(|m| m[r * d..(r + 1) * d].to_vec())
                        .concat()
                })
                .collect();
            let got = cache.self_attend(0, qkv);
            let got_cross = cache.cross_attend(1, &q);
            for (r, (source, h)) in history.iter().enumerate() {
                for head in 0..heads {
                    let cols = head * dh..(head + 1) * dh;
                    let keys: Vec<&[f32]> = h.iter().map(|(k, _)| &k[cols.clone()]).collect();
                    let vals: Vec<&[f32]> = h.iter().map(|(_, v)| &v[cols.clone()]).collect();
                    let want = reference(&q[r * d..][cols.clone()], &keys, &vals);
                    for (i, w) in want.iter().enumerate() {
                        let g = got[r * d + head * dh + i] as f64;
                        assert!((g - w).abs() < 1e-5, "self step {step} row {r}: {g} vs {w}");
                    }
                    let real: Vec<usize> = (0..s).filter(|&p| valid[source * s + p]).collect();
                    let at = |p: usize| (source * s + p) * d + head * dh;
                    let keys: Vec<&[f32]> = real
                        .iter()
                        .map(|&p| &cross[1].0[at(p)..at(p) + dh])
                        .collect();
                    let vals: Vec<&[f32]> = real
                        .iter()
                        .map(|&p| &cross[1].1[at(p)..at(p) + dh])
                        .collect();
                    let want = reference(&q[r * d..][cols.clone()], &keys, &vals);
                    for (i, w) in want.iter().enumerate() {
                        let g = got_cross[r * d + head * dh + i] as f64;
                        assert!(
                            (g - w).abs() < 1e-5,
                            "cross step {step} row {r}: {g} vs {w}"
                        );
                    }
                }
            }
            cache.reorder(parents);
            history = parents.iter().map(|&p| history[p].clone()).collect();
        }
    }
}
