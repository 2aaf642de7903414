"""CTranslate2 on a real model: sentences/s translating a file with a model written by
`seqls export --format ctranslate2`, in float32 and int8, as a user would call it: one
`translate_batch` over the file in batches of 64, the longest sentence's length limit (⌊a·n⌋ + b + 1)
for all, CTranslate2's own stopping (patience 1). Called by `seqls bench decode --model`.

Usage: ref_ct2_model.py MODEL_DIR --input FILE --beam B [--threads 2] [--runs 1]
       [--lenpen 1.0] [--max-len-a 1.5] [--max-len-b 10]
Prints one JSON line: {"beam": B, "sentences": N, "sent_per_s": {"ct2_float32": …, "ct2_int8": …}}.
"""
import argparse, json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import math  # noqa: E402

from ct2_translate import load, pieces  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input", required=True)
    ap.add_argument("--beam", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--lenpen", type=float, default=1.0)
    ap.add_argument("--max-len-a", type=float, default=1.5)
    ap.add_argument("--max-len-b", type=int, default=10)
    a = ap.parse_args()
    rates = {}
    for compute_type in ("float32", "int8"):
        translator, tokenizer, max_positions = load(a.model, compute_type, a.threads)
        sources = pieces(tokenizer, open(a.input, encoding="utf-8"), max_positions)
        # As a user would call it: one call, batches of 64 (as seqls decode's), the longest
        # sentence's limit for all.
        limit = max(math.floor(a.max_len_a * len(s)) + a.max_len_b + 1 for s in sources)
        times = []
        for i in range(a.runs + 1):
            started = time.perf_counter()
            translator.translate_batch(sources, max_batch_size=64, beam_size=a.beam, length_penalty=a.lenpen,
                                       max_decoding_length=limit)
            if i:
                times.append(time.perf_counter() - started)
        rates[f"ct2_{compute_type}"] = len(sources) / statistics.median(times)
    print(json.dumps(dict(beam=a.beam, sentences=len(sources), sent_per_s=rates)))


if __name__ == "__main__":
    main()
