//! The key/value-cached scorer gives the same beam-search hypotheses (and scores, to 1e-4) as a
//! scorer that recomputes the full teacher-forced forward pass over each row's whole prefix.

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use seqls_data::tokenizer::PAD;
use seqls_decode::{LengthPenalty, Scorer, SearchConfig, beam_search};
use seqls_model::tensors::padded_tensor;
use seqls_model::{ModelConfig, ModelScorer, SPECIAL_TOKENS, Transformer};

/// No cache: every call runs `Transformer::forward` on `(source, prefix)` for every row.
struct Recompute<'a> {
    model: &'a Transformer,
    device: Device,
    /// Per row: its source and the tokens fed so far.
    rows: Vec<(Vec<u32>, Vec<u32>)>,
    vocab: usize,
}

impl Scorer for Recompute<'_> {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn next_log_probs(&mut self, last_tokens: &[u32], temperature: f32, out: &mut Vec<f32>) {
        for (row, &t) in self.rows.iter_mut().zip(last_tokens) {
            row.1.push(t);
        }
        let src: Vec<Vec<u32>> = self.rows.iter().map(|r| r.0.clone()).collect();
        let prefix: Vec<Vec<u32>> = self.rows.iter().map(|r| r.1.clone()).collect();
        let len = prefix[0].len();
        let logits = self
            .model
            .forward(
                padded_tensor(&src, &self.device),
                padded_tensor(&prefix, &self.device),
                PAD,
            )
            .logits;
        let [b, _, v] = logits.dims();
        let last = logits
            .narrow(1, len - 1, 1)
            .reshape([b, v])
            .div_scalar(temperature);
        *out = log_softmax(last, 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
    }

    fn reorder(&mut self, parents: &[usize]) {
        self.rows = parents.iter().map(|&p| self.rows[p].clone()).collect();
    }
}

#[test]
fn cached_and_cache_free_beam_search_agree() {
    let device = Device::flex();
    device.seed(11);
    let vocab = 29;
    let config = ModelConfig {
        d_model: 16,
        heads: 2,
        encoder_layers: 2,
        decoder_layers: 2,
        d_ff: 32,
        dropout: 0.0,
        max_len: 64,
        pre_norm: true,
        tie_output: true,
        share_embeddings: true,
    };
    let model = config.init(vocab, &device).valid();
    let sources: Vec<Vec<u32>> = vec![
        vec![5, 6, 7, 8, 2],
        vec![9, 10, 2],
        vec![11, 12, 13, 14, 15, 16, 2],
    ];
    let lens: Vec<usize> = sources.iter().map(|s| s.len() - 1).collect();
    for (beam, penalty) in [
        (1, LengthPenalty::Power(0.0)),
        (4, LengthPenalty::Power(1.0)),
        (5, LengthPenalty::Gnmt(0.6)),
    ] {
        let search = SearchConfig {
            beam_size: beam,
            nbest: beam,
            length_penalty: penalty,
            max_len_a: 1.0,
            max_len_b: 3,
            ..SearchConfig::default()
        };
        let mut cached = ModelScorer::new(&model, &sources, &device);
        let with_cache = beam_search(&mut cached, &lens, &search, SPECIAL_TOKENS);
        let mut recompute = Recompute {
            model: &model,
            device: device.clone(),
            rows: sources.iter().map(|s| (s.clone(), vec![])).collect(),
            vocab,
        };
        let without = beam_search(&mut recompute, &lens, &search, SPECIAL_TOKENS);
        assert_eq!(with_cache.len(), without.len());
        for (a, b) in with_cache.iter().zip(&without) {
            assert_eq!(a.len(), b.len(), "beam {beam}");
            for (x, y) in a.iter().zip(b) {
                assert_eq!(x.tokens, y.tokens, "beam {beam}");
                assert!(
                    (x.score - y.score).abs() < 1e-4,
                    "beam {beam}: {} vs {}",
                    x.score,
                    y.score
                );
            }
        }
    }
}
