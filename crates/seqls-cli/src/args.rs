//! Argument groups shared by several commands, and the enumerated flags.

use clap::{Args, ValueEnum};
use seqls_decode::{ExactConfig, LengthPenalty, SearchConfig};
use seqls_run::{ExperimentConfig, RunDir};
use std::path::PathBuf;

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// burn-flex on the CPU
    #[value(alias = "flex")]
    Cpu,
    /// burn-wgpu (needs a build with `--features wgpu`)
    Wgpu,
}

/// `--normalize`: what the loss is divided by.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossNormalizer {
    /// Per non-pad target token
    #[value(alias = "tokens")]
    Token,
    /// Per sentence
    #[value(alias = "sentences")]
    Sentence,
}

impl From<LossNormalizer> for seqls_model::Normalize {
    fn from(v: LossNormalizer) -> Self {
        match v {
            LossNormalizer::Token => Self::Tokens,
            LossNormalizer::Sentence => Self::Sentences,
        }
    }
}

/// Flags shared by commands that read an experiment config.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Experiment config (TOML); default: the embedded synthetic-corpus config (configs/synth.toml)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of the Multi30k files (default: $SEQLS_DATA_DIR)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// Reads and validates the config (errors name the file), then applies `--data-dir`.
    pub fn load(&self) -> anyhow::Result<ExperimentConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let config = ExperimentConfig::load(path)?;
                config
                    .validate()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                config
            }
            None => ExperimentConfig::synth_default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data.data_dir = Some(dir.clone());
        }
        Ok(config)
    }
}

/// `--device` and `--threads`, shared by every command that runs the model.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where the model runs
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// CPU threads: training runs its batch shards and decoding its sentence batches on this many threads, and operations use them too (default: all cores; results do not depend on it)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Operands of the matrix products: f32, or bf16 on AMX tiles with f32 accumulation (f32 where the CPU has no AMX; SEQLS_AMX=off forces that). Training: overrides train.precision; decoding: default f32
    #[arg(long)]
    pub precision: Option<seqls_model::Precision>,
}

impl DeviceArgs {
    /// Sets the CPU thread count (call before any parallel work starts) and the products'
    /// precision (training sets its own, `train.precision`, while it runs), and returns the device.
    pub fn resolve(&self) -> anyhow::Result<(burn::tensor::Device, usize)> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if !(1..=1024).contains(&threads) {
            anyhow::bail!("--threads must be between 1 and 1024, got {threads}");
        }
        // SAFETY: called at the start of a command, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
        let precision = self.precision.unwrap_or_default();
        if precision != seqls_model::Precision::F32 && !matches!(self.device, DeviceKind::Cpu) {
            anyhow::bail!(
                "--precision {precision} runs on the CPU only (AMX tiles); drop it for --device wgpu"
            );
        }
        let engine = seqls_model::use_precision(precision);
        if precision != seqls_model::Precision::F32 {
            eprintln!("{engine}");
        }
        match self.device {
            DeviceKind::Cpu => Ok((burn::tensor::Device::flex(), threads)),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Ok((
                burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                threads,
            )),
            #[cfg(not(feature = "wgpu"))]
            DeviceKind::Wgpu => anyhow::bail!(
                "this seqls was built without the GPU backend: rebuild with `--features wgpu`"
            ),
        }
    }
}

/// Beam-search options (fairseq / Hugging Face / Marian names); unset ones come from the run's config.
#[derive(Args, Debug, Clone, Default)]
pub struct SearchArgs {
    /// Beam size K (1 = greedy)
    #[arg(long)]
    pub beam: Option<usize>,
    /// Length penalty A: final score = Σ log p / length^A (0 = unnormalised; default 1.0)
    #[arg(long, conflicts_with = "lenpen_gnmt")]
    pub lenpen: Option<f64>,
    /// GNMT length penalty A: divide by ((5 + length) / 6)^A
    #[arg(long)]
    pub lenpen_gnmt: Option<f64>,
    /// Fewest tokens before </s>
    #[arg(long)]
    pub min_len: Option<usize>,
    /// Max tokens = a · source tokens + b
    #[arg(long)]
    pub max_len_a: Option<f64>,
    #[arg(long)]
    pub max_len_b: Option<usize>,
    /// Hypotheses per sentence (≤ beam)
    #[arg(long)]
    pub nbest: Option<usize>,
    /// Forbid repeating n-grams of this size
    #[arg(long)]
    pub no_repeat_ngram: Option<usize>,
    /// Divide logits by T before the softmax
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Subtract this from log p(<unk>) when ranking (nats)
    #[arg(long)]
    pub unk_penalty: Option<f64>,
    /// End a sentence once it has beam-size finished hypotheses (fairseq's and CTranslate2's default) instead of when no unfinished one can still win (decode.early_stop)
    #[arg(long)]
    pub early_stop: bool,
}

impl SearchArgs {
    /// The run's config, and its search config with these flags applied (checked against the run's
    /// model limit, `model.max_len − 1` output tokens), without loading the weights.
    pub fn for_run(
        &self,
        run: &RunDir,
    ) -> anyhow::Result<(seqls_run::ExperimentConfig, SearchConfig)> {
        let config = seqls_run::ExperimentConfig::load(&run.config())?;
        let limit = config.model.max_len.saturating_sub(1).max(1);
        let search = self.apply(config.decode.clone(), limit)?;
        Ok((config, search))
    }

    /// The run's search config with these flags applied, checked against a model that can produce
    /// at most `max_output_len` tokens before `</s>`.
    pub fn apply(
        &self,
        mut c: SearchConfig,
        max_output_len: usize,
    ) -> anyhow::Result<SearchConfig> {
        if let Some(k) = self.beam {
            c.beam_size = k;
        }
        if let Some(a) = self.lenpen {
            c.length_penalty = LengthPenalty::Power(a);
        }
        if let Some(a) = self.lenpen_gnmt {
            c.length_penalty = LengthPenalty::Gnmt(a);
        }
        c.min_len = self.min_len.unwrap_or(c.min_len);
        c.max_len_a = self.max_len_a.unwrap_or(c.max_len_a);
        c.max_len_b = self.max_len_b.unwrap_or(c.max_len_b);
        c.nbest = self.nbest.unwrap_or(c.nbest.min(c.beam_size));
        c.no_repeat_ngram = self.no_repeat_ngram.unwrap_or(c.no_repeat_ngram);
        c.temperature = self.temperature.unwrap_or(c.temperature);
        c.unk_penalty = self.unk_penalty.unwrap_or(c.unk_penalty);
        c.early_stop |= self.early_stop;
        c.validate_for(max_output_len)?;
        Ok(c)
    }
}

/// Exact-search options of `seqls decode --exact`.
#[derive(Args, Debug, Clone, Default)]
pub struct ExactArgs {
    /// Exact search: the translation with the highest unnormalised score Σ log p, started from the
    /// beam output's score as the bound (the beam's size and length limits); one per sentence
    #[arg(long)]
    pub exact: bool,
    /// With --exact: most prefixes scored per sentence before it stops unproven (default 100000)
    #[arg(long, requires = "exact")]
    pub max_expansions: Option<u64>,
    /// With --exact: most wall-clock time per sentence, e.g. 30s or 2m (sentences of a batch share it)
    #[arg(long, requires = "exact")]
    pub time_limit: Option<seqls_run::WallClock>,
    /// With --exact: forbid </s> before ⌈r · source tokens⌉ tokens (Stahlberg & Byrne's control)
    #[arg(long, requires = "exact", allow_negative_numbers = true)]
    pub min_len_ratio: Option<f64>,
}

impl ExactArgs {
    /// The exact-search config when `--exact` is given, checked together with `search`.
    pub fn config(&self, search: &SearchConfig) -> anyhow::Result<Option<ExactConfig>> {
        if !self.exact {
            return Ok(None);
        }
        let defaults = ExactConfig::default();
        let exact = ExactConfig {
            max_expansions: self.max_expansions.unwrap_or(defaults.max_expansions),
            time_limit: self
                .time_limit
                .map(|t| std::time::Duration::from_secs_f64(t.seconds())),
            min_len_ratio: self.min_len_ratio.unwrap_or(defaults.min_len_ratio),
        };
        exact.validate(search)?;
        Ok(Some(exact))
    }
}

/// The Python scripts' directory (`bench/`): `explicit`, `./bench`, or the build checkout's.
pub fn bench_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let here = PathBuf::from("bench");
        if here.join("ref_bench.py").exists() {
            here
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench")
        }
    })
}
