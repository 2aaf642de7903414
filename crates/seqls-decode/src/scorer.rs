//! The one thing beam search needs from a model.

/// Scores the next token for a set of partial hypotheses ("rows").
///
/// Row `i` of a call corresponds to row `i` of the previous call after [`Scorer::reorder`]. Before the
/// first call there is one row per source sentence, in input order; the search then grows, shrinks and
/// permutes the rows with `reorder`.
pub trait Scorer {
    /// Size of the vocabulary (the width of each row of log-probabilities).
    fn vocab_size(&self) -> usize;

    /// The most tokens a hypothesis may have before `</s>` (a model's positional limit); the search
    /// caps every sentence's maximum length at it.
    fn max_output_len(&self) -> usize {
        usize::MAX
    }

    /// Given each row's last token (`<s>` at the first step), writes into `out` (replacing what it
    /// held) the row-major log-probabilities `[rows, vocab]` of the next token, computed from the
    /// logits divided by `temperature`. The search passes the same `out` at every step, so that its
    /// allocation (`rows · vocab` floats: 98 MB at 4,096 rows of 6,000) is made once.
    fn next_log_probs(&mut self, last_tokens: &[u32], temperature: f32, out: &mut Vec<f32>);

    /// Keeps row `parents[i]` as the new row `i`. Rows may repeat (a hypothesis with several
    /// continuations) or vanish (pruned hypotheses, finished sentences).
    fn reorder(&mut self, parents: &[usize]);
}
