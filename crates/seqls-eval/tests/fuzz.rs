//! Arbitrary text never makes BLEU, chrF or the bootstrap panic: every tokenizer sacreBLEU-rs offers,
//! with and without lowercasing, on any Unicode (control characters, combining marks, lone CJK).

use proptest::prelude::*;
use seqls_eval::{BleuOptions, corpus_bleu, corpus_chrf, paired_bootstrap};

fn lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(any::<String>(), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bleu_and_chrf_never_panic(hyps in lines(), refs in lines(), tok in 0usize..4, lc: bool) {
        let tokenize = ["13a", "intl", "char", "none"][tok].to_string();
        let options = BleuOptions { tokenize, lowercase: lc, ..BleuOptions::default() };
        let refs = vec![refs];
        let bleu = corpus_bleu(&hyps, &refs, &options);
        // Mismatched line counts are an error, never a panic; matched ones a score in [0, 100].
        prop_assert_eq!(bleu.is_ok(), hyps.len() == refs[0].len());
        if let Ok(b) = bleu {
            prop_assert!((0.0..=100.0).contains(&b.score), "{}", b.score);
        }
        let _ = corpus_chrf(&hyps, &refs);
        let _ = paired_bootstrap(&hyps, &hyps, &refs, &options, 3, 1);
    }
}
