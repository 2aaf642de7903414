//! `synth`: the embedded, deterministic synthetic parallel corpus, with the true distribution of every
//! target word.
//!
//! **Lexicon** (fixed, independent of the corpus seed): pseudo-words built from syllables, 4 determiners,
//! 160 nouns, 60 adjectives, 70 verbs, 12 prepositions, 20 adverbs and 2 conjunctions on the source side
//! (328 words). Every source word has its own target word(s); no target word serves two source words.
//!
//! **Source grammar** (word order S V O): `Sentence → Clause (CONJ Clause)?` (p = 0.25);
//! `Clause → NP VERB NP? ADV?` (object p = 0.8, adverb p = 0.3); `NP → DET ADJ^k NOUN PP?` with
//! k ∈ {0, 1, 2} at p = (0.5, 0.35, 0.15) and a PP (p = 0.25, not nested); `PP → PREP NP`. Within a
//! category word `i` is drawn with probability ∝ 1/(i+1) (Zipf). Sentences outside 4–25 words are redrawn.
//!
//! **Translation rules** (so attention has to move): the target is S O ADV V (verb last); adjectives
//! follow the noun in reverse order; prepositions become postpositions (`NP POSTP`); the target
//! determiner depends on the determiner and on the noun's class (noun index mod 2), which may lie two
//! adjectives away.
//!
//! **Synonyms**: nouns with index ≡ 3 (mod 7), adjectives with index ≡ 2 (mod 5) and verbs with
//! index ≡ 1 (mod 6) have 2 target synonyms with probabilities (0.7, 0.3) when their index is even and
//! 3 synonyms with probabilities (0.5, 0.3, 0.2) when it is odd, drawn independently per occurrence.
//! Every other target word is determined by the source (probability 1). Because each target word belongs
//! to one source word, the probability of a target word given the source and the correct prefix is the
//! probability of its synonym choice, which [`SynthPair::oracle`] lists together with the alternatives.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LEXICON_SEED: u64 = 0x5EED_1E81_C0A5;
const SRC_SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "su", "ne", "ta", "ri", "po", "ve", "du", "ba", "shi", "go", "fe", "ru", "zo",
];
const TGT_SYLLABLES: [&str; 16] = [
    "ar", "el", "on", "ix", "ut", "em", "os", "ir", "ag", "ul", "eb", "yn", "ok", "av", "is", "up",
];
const SYNONYM_PROBS_2: [f64; 2] = [0.7, 0.3];
const SYNONYM_PROBS_3: [f64; 3] = [0.5, 0.3, 0.2];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Det,
    Noun,
    Adj,
    Verb,
    Prep,
    Adv,
    Conj,
}

const CATEGORIES: [(Category, usize); 7] = [
    (Category::Det, 4),
    (Category::Noun, 160),
    (Category::Adj, 60),
    (Category::Verb, 70),
    (Category::Prep, 12),
    (Category::Adv, 20),
    (Category::Conj, 2),
];

/// The fixed bilingual lexicon.
struct Lexicon {
    /// Source words per category, in Zipf rank order.
    src: Vec<Vec<String>>,
    /// Target alternatives `(word, probability)` per category and index; determiners are per
    /// (determiner, noun class) and stored at index `2·det + class`.
    tgt: Vec<Vec<Vec<(String, f64)>>>,
}

fn category_index(c: Category) -> usize {
    CATEGORIES
        .iter()
        .position(|(k, _)| *k == c)
        // Cannot fail: CATEGORIES lists every Category variant (a fixed table).
        .expect("category")
}

fn has_synonyms(c: Category, i: usize) -> bool {
    match c {
        Category::Noun => i % 7 == 3,
        Category::Adj => i % 5 == 2,
        Category::Verb => i % 6 == 1,
        _ => false,
    }
}

fn fresh_word(
    rng: &mut ChaCha8Rng,
    syllables: &[&str],
    used: &mut std::collections::HashSet<String>,
) -> String {
    loop {
        let n = rng.random_range(2..=3);
        let w: String = (0..n)
            .map(|_| syllables[rng.random_range(0..syllables.len())])
            .collect();
        if used.insert(w.clone()) {
            return w;
        }
    }
}

impl Lexicon {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(LEXICON_SEED);
        let (mut used_src, mut used_tgt) = (Default::default(), Default::default());
        let mut src = Vec::new();
        let mut tgt = Vec::new();
        for &(cat, n) in &CATEGORIES {
            src.push(
                (0..n)
                    .map(|_| fresh_word(&mut rng, &SRC_SYLLABLES, &mut used_src))
                    .collect(),
            );
            let targets = if cat == Category::Det { 2 * n } else { n };
            tgt.push(
                (0..targets)
                    .map(|i| {
                        let probs: &[f64] = if !has_synonyms(cat, i) {
                            &[1.0]
                        } else if i % 2 == 0 {
                            &SYNONYM_PROBS_2
                        } else {
                            &SYNONYM_PROBS_3
                        };
                        probs
                            .iter()
                            .map(|&p| (fresh_word(&mut rng, &TGT_SYLLABLES, &mut used_tgt), p))
                            .collect()
                    })
                    .collect(),
            );
        }
        Lexicon { src, tgt }
    }
}

/// One target word with its true conditional probability and the alternatives it was drawn from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OracleWord {
    pub word: String,
    /// P(word | source, correct prefix).
    pub prob: f64,
    /// Every word that could stand here, with its probability (they sum to 1).
    pub alternatives: Vec<(String, f64)>,
}

/// A generated sentence pair with the true distribution of each target word.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthPair {
    pub src: String,
    pub tgt: String,
    /// One entry per target word, in order. `</s>` is always certain and not listed.
    pub oracle: Vec<OracleWord>,
}

/// A noun phrase as indices: (det, adjectives, noun, optional PP (prep, det, adjectives, noun)).
struct NounPhrase {
    det: usize,
    adjs: Vec<usize>,
    noun: usize,
    pp: Option<(usize, Box<NounPhrase>)>,
}

struct Clause {
    subject: NounPhrase,
    verb: usize,
    object: Option<NounPhrase>,
    adverb: Option<usize>,
}

/// Deterministic generator of [`SynthPair`]s.
pub struct SynthGenerator {
    lexicon: Lexicon,
    /// Cumulative Zipf weights per category.
    cdf: Vec<Vec<f64>>,
    rng: ChaCha8Rng,
}

impl SynthGenerator {
    /// A generator whose sentences depend only on `seed`.
    pub fn new(seed: u64) -> Self {
        let lexicon = Lexicon::new();
        let cdf = CATEGORIES
            .iter()
            .map(|&(_, n)| {
                let mut acc = 0.0;
                let w: Vec<f64> = (0..n)
                    .map(|i| {
                        acc += 1.0 / (i as f64 + 1.0);
                        acc
                    })
                    .collect();
                w.iter().map(|x| x / acc).collect()
            })
            .collect();
        SynthGenerator {
            lexicon,
            cdf,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn draw(&mut self, c: Category) -> usize {
        let u: f64 = self.rng.random();
        let cdf = &self.cdf[category_index(c)];
        cdf.partition_point(|&x| x < u).min(cdf.len() - 1)
    }

    fn noun_phrase(&mut self, allow_pp: bool) -> NounPhrase {
        let det = self.draw(Category::Det);
        let u: f64 = self.rng.random();
        let k = if u < 0.5 {
            0
        } else if u < 0.85 {
            1
        } else {
            2
        };
        let adjs = (0..k).map(|_| self.draw(Category::Adj)).collect();
        let noun = self.draw(Category::Noun);
        let pp = if allow_pp && self.rng.random_bool(0.25) {
            Some((self.draw(Category::Prep), Box::new(self.noun_phrase(false))))
        } else {
            None
        };
        NounPhrase {
            det,
            adjs,
            noun,
            pp,
        }
    }

    fn clause(&mut self) -> Clause {
        let subject = self.noun_phrase(true);
        let verb = self.draw(Category::Verb);
        let object = self.rng.random_bool(0.8).then(|| self.noun_phrase(true));
        let adverb = self.rng.random_bool(0.3).then(|| self.draw(Category::Adv));
        Clause {
            subject,
            verb,
            object,
            adverb,
        }
    }

    /// The next pair (4–25 source words).
    pub fn next_pair(&mut self) -> SynthPair {
        loop {
            let mut clauses = vec![self.clause()];
            let conj = self.rng.random_bool(0.25).then(|| {
                let c = self.draw(Category::Conj);
                clauses.push(self.clause());
                c
            });
            let pair = self.render(&clauses, conj);
            let n = pair.src.split(' ').count();
            if (4..=25).contains(&n) {
                return pair;
            }
        }
    }

    fn src_word(&self, c: Category, i: usize) -> &str {
        &self.lexicon.src[category_index(c)][i]
    }

    /// Draws one target word for source word `i` of category `c` and records its oracle entry.
    fn emit_target(&mut self, c: Category, i: usize, out: &mut Vec<OracleWord>) {
        let alternatives = self.lexicon.tgt[category_index(c)][i].clone();
        let u: f64 = if alternatives.len() > 1 {
            self.rng.random()
        } else {
            0.0
        };
        let mut acc = 0.0;
        let mut chosen = alternatives.len() - 1;
        for (k, (_, p)) in alternatives.iter().enumerate() {
            acc += p;
            if u < acc {
                chosen = k;
                break;
            }
        }
        let (word, prob) = alternatives[chosen].clone();
        out.push(OracleWord {
            word,
            prob,
            alternatives,
        });
    }

    fn src_noun_phrase(&self, np: &NounPhrase, out: &mut Vec<String>) {
        out.push(self.src_word(Category::Det, np.det).to_string());
        out.extend(
            np.adjs
                .iter()
                .map(|&a| self.src_word(Category::Adj, a).to_string()),
        );
        out.push(self.src_word(Category::Noun, np.noun).to_string());
        if let Some((prep, inner)) = &np.pp {
            out.push(self.src_word(Category::Prep, *prep).to_string());
            self.src_noun_phrase(inner, out);
        }
    }

    fn tgt_noun_phrase(&mut self, np: &NounPhrase, out: &mut Vec<OracleWord>) {
        self.emit_target(Category::Det, 2 * np.det + np.noun % 2, out);
        self.emit_target(Category::Noun, np.noun, out);
        for &a in np.adjs.iter().rev() {
            self.emit_target(Category::Adj, a, out);
        }
        if let Some((prep, inner)) = &np.pp {
            self.tgt_noun_phrase(inner, out);
            self.emit_target(Category::Prep, *prep, out);
        }
    }

    fn render(&mut self, clauses: &[Clause], conj: Option<usize>) -> SynthPair {
        let mut src = Vec::new();
        let mut oracle = Vec::new();
        for (k, clause) in clauses.iter().enumerate() {
            if k == 1 {
                // Cannot fail: the generator passes a conjunction whenever it renders two clauses.
                let c = conj.expect("conjunction joins two clauses");
                src.push(self.src_word(Category::Conj, c).to_string());
                self.emit_target(Category::Conj, c, &mut oracle);
            }
            self.src_noun_phrase(&clause.subject, &mut src);
            src.push(self.src_word(Category::Verb, clause.verb).to_string());
            if let Some(o) = &clause.object {
                self.src_noun_phrase(o, &mut src);
            }
            if let Some(a) = clause.adverb {
                src.push(self.src_word(Category::Adv, a).to_string());
            }
            self.tgt_noun_phrase(&clause.subject, &mut oracle);
            if let Some(o) = &clause.object {
                self.tgt_noun_phrase(o, &mut oracle);
            }
            if let Some(a) = clause.adverb {
                self.emit_target(Category::Adv, a, &mut oracle);
            }
            self.emit_target(Category::Verb, clause.verb, &mut oracle);
        }
        let tgt = oracle
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        SynthPair {
            src: src.join(" "),
            tgt,
            oracle,
        }
    }
}

/// The three splits of a synthetic corpus: `train` has `pairs` pairs, `val` and `test` have
/// `max(pairs / 20, 50)` each, from independent streams of the same seed.
pub fn generate_splits(pairs: usize, seed: u64) -> [(&'static str, Vec<SynthPair>); 3] {
    let held_out = (pairs / 20).max(50);
    let split = |name: &'static str, n: usize, stream: u64| {
        let mut g = SynthGenerator::new(seed.wrapping_mul(0x1000_0000_01B3).wrapping_add(stream));
        (name, (0..n).map(|_| g.next_pair()).collect())
    };
    [
        split("train", pairs, 0),
        split("val", held_out, 1),
        split("test", held_out, 2),
    ]
}

/// Number of distinct source words in the lexicon.
pub fn source_vocabulary_size() -> usize {
    CATEGORIES.iter().map(|(_, n)| n).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_corpus_other_seed_other_corpus() {
        let a: Vec<_> = (0..50)
            .map({
                let mut g = SynthGenerator::new(3);
                move |_| g.next_pair()
            })
            .collect();
        let b: Vec<_> = (0..50)
            .map({
                let mut g = SynthGenerator::new(3);
                move |_| g.next_pair()
            })
            .collect();
        let c: Vec<_> = (0..50)
            .map({
                let mut g = SynthGenerator::new(4);
                move |_| g.next_pair()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn oracle_matches_target_and_alternatives_sum_to_one() {
        let mut g = SynthGenerator::new(11);
        let mut uncertain = 0;
        let mut lengths = Vec::new();
        for _ in 0..2000 {
            let p = g.next_pair();
            let n = p.src.split(' ').count();
            assert!((4..=25).contains(&n));
            lengths.push(n);
            let words: Vec<&str> = p.tgt.split(' ').collect();
            assert_eq!(words.len(), p.oracle.len());
            for (w, o) in words.iter().zip(&p.oracle) {
                assert_eq!(*w, o.word);
                let sum: f64 = o.alternatives.iter().map(|(_, q)| q).sum();
                assert!((sum - 1.0).abs() < 1e-12);
                let listed = o.alternatives.iter().find(|(a, _)| a == w).unwrap().1;
                assert_eq!(listed, o.prob);
                if o.prob < 1.0 {
                    uncertain += 1;
                }
            }
        }
        assert!(uncertain > 500, "synonyms too rare: {uncertain}");
        let mean = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
        assert!((6.0..14.0).contains(&mean), "mean length {mean}");
    }

    #[test]
    fn synonym_frequencies_follow_their_probabilities() {
        // The most frequent 2-way synonym noun is index 3 (odd: 3 ways) — count the choices made for it.
        let lex = Lexicon::new();
        let alts = &lex.tgt[category_index(Category::Noun)][3];
        assert_eq!(alts.len(), 3);
        let mut g = SynthGenerator::new(5);
        let mut counts = [0usize; 3];
        for _ in 0..20000 {
            for o in g.next_pair().oracle {
                if let Some(k) = alts.iter().position(|(w, _)| *w == o.word) {
                    counts[k] += 1;
                }
            }
        }
        let total: usize = counts.iter().sum();
        for (k, &(_, p)) in alts.iter().enumerate() {
            let freq = counts[k] as f64 / total as f64;
            assert!(
                (freq - p).abs() < 0.03,
                "choice {k}: {freq} vs {p} over {total}"
            );
        }
    }

    #[test]
    fn lexicon_is_a_few_hundred_words() {
        assert_eq!(source_vocabulary_size(), 328);
    }
}
