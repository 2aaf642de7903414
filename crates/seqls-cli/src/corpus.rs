//! `seqls corpus stats | synth | fetch`.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use seqls_data::corpus::{DataConfig, encode_pairs, train_tokenizer};
use seqls_data::multi30k::{self, FetchSource};
use seqls_data::read::{ParallelText, read_parallel, read_tsv};
use seqls_data::stats::corpus_stats;
use seqls_data::synth::generate_splits;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum CorpusCommand {
    /// Sentence and token counts, length percentiles, vocabulary sizes, dropped pairs, padding
    Stats(StatsArgs),
    /// Write the deterministic synthetic corpus (train/val/test, with true word probabilities)
    Synth(SynthArgs),
    /// Download Multi30k (or copy it from --mirror) and verify its SHA-256 sums
    Fetch(FetchArgs),
}

/// `corpus stats --corpus`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum NamedCorpus {
    /// Multi30k task 1 from --data-dir or $SEQLS_DATA_DIR
    Multi30k,
    /// The project's synthetic corpus (--pairs, --seed)
    Synth,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Source file (one sentence per line; .gz accepted)
    #[arg(long, requires = "tgt")]
    src: Option<PathBuf>,
    /// Target file, line-aligned with --src
    #[arg(long, requires = "src")]
    tgt: Option<PathBuf>,
    /// One TSV file: source<TAB>target
    #[arg(long, conflicts_with_all = ["src", "corpus"])]
    tsv: Option<PathBuf>,
    /// Named corpus
    #[arg(long, value_enum, conflicts_with = "src")]
    corpus: Option<NamedCorpus>,
    /// Language pair of a named corpus (source-target)
    #[arg(long, default_value = "de-en")]
    pair: String,
    /// Split of a named corpus: train, val or test
    #[arg(long, default_value = "train")]
    split: String,
    /// Directory of the Multi30k files (default: $SEQLS_DATA_DIR)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// BPE vocabulary size used for the subword counts
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    /// Pairs longer than this many subword tokens count as filtered
    #[arg(long, default_value_t = 100)]
    max_len: usize,
    /// Batch budget in padded tokens, for the padding fraction
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Training pairs (validation and test get max(N/20, 50) each)
    #[arg(long, default_value_t = 20000)]
    pairs: usize,
    /// Seed of the corpus
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory: {train,val,test}.{src,tgt} and {split}.oracle.jsonl
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Corpus name (only multi30k)
    name: String,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    /// Copy from this local directory instead of downloading
    #[arg(long)]
    mirror: Option<PathBuf>,
}

pub fn run(command: CorpusCommand) -> anyhow::Result<()> {
    match command {
        CorpusCommand::Stats(args) => stats(args),
        CorpusCommand::Synth(args) => synth(args),
        CorpusCommand::Fetch(args) => fetch(args),
    }
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let text: ParallelText = match (&args.src, &args.tgt, &args.tsv, &args.corpus) {
        (Some(s), Some(t), _, _) => read_parallel(s, t)?,
        (_, _, Some(tsv), _) => read_tsv(tsv)?,
        (_, _, _, Some(name)) => {
            let config = DataConfig {
                corpus: match name {
                    NamedCorpus::Multi30k => seqls_data::Corpus::Multi30k,
                    NamedCorpus::Synth => seqls_data::Corpus::Synth,
                },
                pair: args.pair.clone(),
                data_dir: args.data_dir.clone(),
                ..DataConfig::default()
            };
            config.validate()?;
            config.load_split(&args.split)?
        }
        _ => bail!("give --src and --tgt, --tsv, or --corpus"),
    };
    let tokenizer = train_tokenizer(&text.pairs, args.vocab_size)?;
    let encoded = encode_pairs(&tokenizer, &text.pairs, args.max_len)?;
    let s = corpus_stats(&text, &encoded, args.max_tokens);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("lines            {}", s.lines);
    println!(
        "pairs kept       {}  (skipped, empty side: {}; filtered, over {} tokens: {})",
        s.pairs, s.skipped_empty, args.max_len, s.filtered_long
    );
    println!(
        "words            source {}  target {}",
        s.src_words, s.tgt_words
    );
    println!(
        "word types       source {}  target {}",
        s.src_word_types, s.tgt_word_types
    );
    println!(
        "subword tokens   source {}  target {}  (joint BPE {}, {} types used)",
        s.src_subwords,
        s.tgt_subwords,
        tokenizer.vocab_size(),
        s.subword_types_used
    );
    for (side, l) in [
        ("source", &s.src_length_subwords),
        ("target", &s.tgt_length_subwords),
    ] {
        println!(
            "{side} length    mean {:.1}  p50 {}  p90 {}  p99 {}  max {}  (subword tokens)",
            l.mean, l.p50, l.p90, l.p99, l.max
        );
    }
    println!(
        "padding          {:.1}% of batch cells at --max-tokens {}",
        100.0 * s.padding_fraction,
        s.max_tokens
    );
    Ok(())
}

fn synth(args: SynthArgs) -> anyhow::Result<()> {
    if !(1..=10_000_000).contains(&args.pairs) {
        bail!("--pairs must be between 1 and 10000000, got {}", args.pairs);
    }
    let lines = |items: Vec<&str>| -> Vec<u8> {
        let mut out = String::new();
        for item in items {
            out.push_str(item);
            out.push('\n');
        }
        out.into_bytes()
    };
    if args.out.exists() && !args.out.is_dir() {
        bail!("{}: is a file, not a directory", args.out.display());
    }
    // Every file is written in full before any is put in place: a full disk leaves no partial corpus.
    let mut files = Vec::new();
    let mut counts = Vec::new();
    for (split, pairs) in generate_splits(args.pairs, args.seed) {
        let oracle: Vec<String> = pairs
            .iter()
            .map(|p| serde_json::to_string(&p.oracle))
            .collect::<Result<_, _>>()?;
        files.push((
            args.out.join(format!("{split}.src")),
            lines(pairs.iter().map(|p| p.src.as_str()).collect()),
        ));
        files.push((
            args.out.join(format!("{split}.tgt")),
            lines(pairs.iter().map(|p| p.tgt.as_str()).collect()),
        ));
        files.push((
            args.out.join(format!("{split}.oracle.jsonl")),
            lines(oracle.iter().map(String::as_str).collect()),
        ));
        counts.push(format!("{split}: {} pairs", pairs.len()));
    }
    seqls_data::write::write_all_atomic(&files)?;
    for line in counts {
        println!("{line}");
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    if args.name != "multi30k" {
        bail!(
            "unknown corpus {:?}: only multi30k can be fetched",
            args.name
        );
    }
    let source = match args.mirror {
        Some(dir) => FetchSource::Mirror(dir),
        None => FetchSource::Url(multi30k::BASE_URL.to_string()),
    };
    let paths = multi30k::fetch(&source, &args.out).context("fetching multi30k")?;
    println!("{} files verified in {}", paths.len(), args.out.display());
    Ok(())
}
