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

    /// The same step as [`next_log_probs`](Self::next_log_probs), handed to `visit` a block of at
    /// most `block_rows` rows at a time, in row order: `visit(first_row, log_probs)` with
    /// `log_probs` row-major `[rows in the block, vocab]`, written in `buffer`. A scorer that can
    /// compute its output a block at a time never holds all `[rows, vocab]` at once (exact search's
    /// levels can have tens of thousands of rows); the values must equal `next_log_probs`'s bit for
    /// bit. By default the whole step is computed into `buffer`, then visited in blocks.
    fn visit_next_log_probs(
        &mut self,
        last_tokens: &[u32],
        temperature: f32,
        block_rows: usize,
        buffer: &mut Vec<f32>,
        visit: &mut dyn FnMut(usize, &[f32]),
    ) {
        self.next_log_probs(last_tokens, temperature, buffer);
        visit_in_blocks(buffer, self.vocab_size(), block_rows, visit);
    }

    /// Keeps row `parents[i]` as the new row `i`. Rows may repeat (a hypothesis with several
    /// continuations) or vanish (pruned hypotheses, finished sentences).
    fn reorder(&mut self, parents: &[usize]);
}

/// Visits `log_probs` (`[rows, vocab]`) a block of at most `block_rows` rows at a time, in row order:
/// `visit(first_row, block)`, as [`Scorer::visit_next_log_probs`] hands them over.
pub fn visit_in_blocks(
    log_probs: &[f32],
    vocab: usize,
    block_rows: usize,
    visit: &mut dyn FnMut(usize, &[f32]),
) {
    let block_rows = block_rows.max(1);
    for (b, block) in log_probs.chunks((block_rows * vocab).max(1)).enumerate() {
        visit(b * block_rows, block);
    }
}
