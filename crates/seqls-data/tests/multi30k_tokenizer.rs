//! The tokenizer on real data: decode(encode(s)) == s on the Multi30k validation set. Skips with a
//! notice when `SEQLS_DATA_DIR` is unset; fails instead under `SEQLS_REQUIRE_DATA=1`.

use seqls_data::multi30k::read_split;
use seqls_data::train_tokenizer;
use std::path::{Path, PathBuf};

fn multi30k_dir() -> Option<PathBuf> {
    seqls_data::multi30k::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

#[test]
fn round_trip_exact_match_rate_on_multi30k_val() {
    let Some(dir) = multi30k_dir() else { return };
    let train = read_split(&dir, &"de-en".parse().unwrap(), "train").unwrap();
    assert_eq!(train.stats.lines, 29000);
    let tokenizer = train_tokenizer(&train.pairs, 8000).unwrap();
    let val = read_split(&dir, &"de-en".parse().unwrap(), "val").unwrap();
    assert_eq!(val.pairs.len(), 1014);
    let sentences: Vec<&str> = val
        .pairs
        .iter()
        .flat_map(|p| [p.src.as_str(), p.tgt.as_str()])
        .collect();
    let exact = sentences
        .iter()
        .filter(|s| tokenizer.decode(&tokenizer.encode(s).unwrap()).unwrap() == **s)
        .count();
    let rate = exact as f64 / sentences.len() as f64;
    eprintln!(
        "tokenizer round trip on Multi30k val (de+en): {exact}/{} exact ({:.2}%)",
        sentences.len(),
        100.0 * rate
    );
    assert!(rate > 0.99, "round-trip exact-match rate {rate}");
}
