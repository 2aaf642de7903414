"""Translates lines of stdin with a CTranslate2 model written by `seqls export --format ctranslate2`,
with seqls's beam-search settings, and prints one translation per line.

Usage: ct2_translate.py MODEL_DIR [--beam 4] [--lenpen 1.0] [--max-len-a 1.5] [--max-len-b 10]
       [--compute-type float32] [--threads 2] [--patience P] [--scores FILE] [--score-targets FILE]

seqls's conventions, in CTranslate2's terms: the source is the tokenizer's pieces plus `</s>` (the
model's `add_source_eos`), at most `max_positions − 2` pieces; at most ⌊a·n⌋ + b tokens before `</s>`
for a source of n pieces, so `max_decoding_length` = ⌊a·n⌋ + b + 1 (CTranslate2 counts `</s>`);
finished hypotheses ranked by score / length^lenpen. seqls ends a sentence only when no active
hypothesis can still beat the worst of its K finished ones; CTranslate2 ends it once `patience · K`
hypotheses have finished (patience 1 is fairseq's early stop, which returns shorter translations
where a longer one would have won), so the default patience here is the length limit: CTranslate2
then stops only there, and what it finds after seqls would have stopped cannot outrank seqls's best.
Sentences with the same length limit are translated together.
Needs: pip install ctranslate2 tokenizers
"""
import argparse, json, math, os, sys
from collections import defaultdict

import ctranslate2
from tokenizers import Tokenizer


def load(model, compute_type="float32", threads=2):
    """The model's translator and tokenizer, and its position limit."""
    tokenizer = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    translator = ctranslate2.Translator(model, device="cpu", compute_type=compute_type,
                                        inter_threads=1, intra_threads=threads)
    max_positions = json.load(open(os.path.join(model, "seqls-config.json")))["max_positions"]
    return translator, tokenizer, max_positions


def pieces(tokenizer, lines, max_positions):
    """Each line's source pieces, as `seqls decode` cuts them."""
    return [tokenizer.encode(line.rstrip("\n"), add_special_tokens=False).tokens[: max_positions - 2]
            for line in lines]


def translate(translator, tokenizer, sources, beam, lenpen=1.0, max_len_a=1.5, max_len_b=10, patience=None):
    """Translations (text) and scores of `sources` (pieces); `patience` None = the length limit."""
    by_limit = defaultdict(list)
    for i, source in enumerate(sources):
        by_limit[math.floor(max_len_a * len(source)) + max_len_b + 1].append(i)
    outputs, scores = [None] * len(sources), [None] * len(sources)
    for limit, indices in sorted(by_limit.items()):
        results = translator.translate_batch([sources[i] for i in indices], beam_size=beam,
                                             length_penalty=lenpen, max_decoding_length=limit,
                                             patience=patience or float(limit),
                                             return_scores=True, return_end_token=False)
        for i, r in zip(indices, results):
            outputs[i] = tokenizer.decode([tokenizer.token_to_id(t) for t in r.hypotheses[0]])
            scores[i] = r.scores[0]
    return outputs, scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--lenpen", type=float, default=1.0)
    ap.add_argument("--max-len-a", type=float, default=1.5)
    ap.add_argument("--max-len-b", type=int, default=10)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--patience", type=float, default=None)
    ap.add_argument("--scores", help="also write each output's score (sum of log-probabilities) here")
    ap.add_argument("--score-targets", help="instead of translating, score these translations (one per "
                    "line, as `seqls score` does): print `sum of log-probabilities<TAB>tokens` per line")
    a = ap.parse_args()
    translator, tokenizer, max_positions = load(a.model, a.compute_type, a.threads)
    sources = pieces(tokenizer, sys.stdin, max_positions)
    if a.score_targets:
        targets = pieces(tokenizer, open(a.score_targets, encoding="utf-8"), 10**9)
        for r in translator.score_batch(sources, targets):
            print(f"{sum(r.log_probs):.6f}\t{len(r.log_probs)}")
        return
    outputs, scores = translate(translator, tokenizer, sources, a.beam, a.lenpen, a.max_len_a, a.max_len_b,
                                a.patience)
    sys.stdout.write("".join(o + "\n" for o in outputs))
    if a.scores:
        json.dump(scores, open(a.scores, "w"))


if __name__ == "__main__":
    main()
