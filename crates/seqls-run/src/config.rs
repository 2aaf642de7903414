//! The experiment config: one TOML file with `[data]`, `[model]`, `[train]`, `[decode]` and `[sweep]`
//! sections. Command-line flags override keys; the effective config is written next to every output.

use crate::duration::WallClock;
use crate::error::{At, ConfigError};
use seqls_data::DataConfig;
use seqls_decode::{LengthPenalty, SearchConfig};
use seqls_model::{ModelConfig, Normalize, Precision, Smoothing, SmoothingVariant};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[train]`: optimisation and label smoothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Label-smoothing weight α in [0, 1).
    pub alpha: f64,
    pub ls_variant: SmoothingVariant,
    pub normalize: Normalize,
    /// Peak learning rate, reached after `warmup_steps` updates of linear warm-up.
    pub lr: f64,
    pub warmup_steps: usize,
    /// Decay after the warm-up: `inverse-sqrt` (default) or `linear-decay` (to 0 at `max_steps`).
    pub schedule: Schedule,
    /// Adam β₁, β₂ and ε.
    pub adam_betas: (f32, f32),
    pub adam_epsilon: f32,
    /// Gradients are rescaled so that their global L2 norm is at most this (0 = off).
    pub clip_norm: f64,
    pub max_epochs: usize,
    /// Stop after this many updates (0 = no limit).
    pub max_steps: usize,
    /// Seed of initialisation, dropout and batch order.
    pub seed: u64,
    /// Log the training loss every this many updates.
    pub log_every: usize,
    /// Also validate every this many updates (0 = only at the end of each epoch).
    pub valid_every: usize,
    /// Write the resumable checkpoint every this many updates (and at each epoch end).
    pub checkpoint_every: usize,
    /// Greedy-decode the validation set at each epoch end and log its BLEU.
    pub valid_bleu: bool,
    /// Each batch's rows are split into this many shards, whose forward and backward passes run in
    /// parallel (one thread each, as `--threads` allows) and whose gradients are summed. Results
    /// depend on this number, never on `--threads`.
    pub shards: usize,
    /// Stop once the run has used this much wall-clock time (summed over resumes, data loading and
    /// validation included): after the update that reaches it, minus the time the last validation
    /// took, training validates, checkpoints and ends. E.g. `"12m"`, `"1h30m"`; unset = no limit.
    pub max_time: Option<WallClock>,
    /// Keep the weights of the last this many epochs as `epoch-<k>.bpk` (0 = none), for
    /// `seqls average` and `seqls curve`.
    pub keep_last: usize,
    /// At the end of training, average the weights of the last this many epochs into
    /// `model-average.bpk` (0 = off; needs `keep_last` ≥ it), which decode and eval then load.
    pub average_last: usize,
    /// Word-level knowledge distillation from this trained run (its weights, frozen, dropout off):
    /// the student uses the teacher's tokenizer and minimises
    /// `(1 − kd_weight)·LS-CE + kd_weight·kd_temperature²·KL(p_teacher^T ‖ p_student^T)` per token
    /// ([`seqls_model::loss::objective_rows`]). Unset = no teacher.
    pub teacher: Option<std::path::PathBuf>,
    /// Softmax temperature T of both distributions in the distillation term (> 0).
    pub kd_temperature: f64,
    /// Weight β of the distillation term, in [0, 1] (1 = the teacher alone, 0 = references alone).
    pub kd_weight: f64,
    /// The operands of training's matrix products: `f32`, or `bf16` (rounded, multiplied on AMX
    /// tiles, accumulated in f32; everything else stays f32): [`seqls_model::Precision`].
    pub precision: Precision,
}

impl TrainConfig {
    /// The label-smoothed target of the training loss: `train.alpha` and `train.ls_variant`, with
    /// `<pad>` rows left out.
    pub fn smoothing(&self) -> Smoothing {
        Smoothing {
            alpha: self.alpha,
            variant: self.ls_variant,
            pad_id: seqls_data::tokenizer::PAD,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            alpha: 0.1,
            ls_variant: SmoothingVariant::Uniform,
            normalize: Normalize::Tokens,
            lr: 1e-3,
            warmup_steps: 1000,
            schedule: Schedule::InverseSqrt,
            adam_betas: (0.9, 0.98),
            adam_epsilon: 1e-9,
            clip_norm: 1.0,
            max_epochs: 10,
            max_steps: 0,
            seed: 1,
            log_every: 50,
            valid_every: 0,
            checkpoint_every: 200,
            valid_bleu: true,
            shards: 2,
            max_time: None,
            keep_last: 0,
            average_last: 0,
            teacher: None,
            kd_temperature: 1.0,
            kd_weight: 0.5,
            precision: Precision::F32,
        }
    }
}

/// `[sweep]`: the grid of `seqls sweep`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    pub alphas: Vec<f64>,
    pub beams: Vec<usize>,
    pub seeds: Vec<u64>,
    /// Splits every run is evaluated on (e.g. `["test_2016_flickr", "test_2017_flickr"]`); the
    /// report has a table per split and one averaged over them.
    pub test_splits: Vec<String>,
    /// The beam size the report compares α values at (paired bootstrap, Δ over greedy).
    pub compare_beam: usize,
    /// `[sweep.slurm]`: the batch jobs of `seqls sweep --backend slurm`.
    pub slurm: SlurmConfig,
    /// The study's primary contrast (`{ alpha = 0.1, beam = 4, split = "test_2016_flickr" }`): that
    /// α against the baseline α at that beam on that split is marked in the report and reported
    /// without adjustment; every other comparison is one of a family whose p-values are
    /// Holm-adjusted. A primary contrast the grid does not contain (say, after `--alphas`) is named
    /// in the report as missing.
    pub primary: Option<PrimaryContrast>,
    /// Other seeds for some α (e.g. `[{ alpha = 0.05, seeds = [1, 2, 3] }]`): those α train with
    /// these seeds instead of `seeds`.
    pub alpha_seeds: Vec<AlphaSeeds>,
    /// `[sweep.search]`: when present, every run is also analysed by `seqls search-analysis` on
    /// every test split, and the report gains a Search section.
    pub search: Option<SearchAnalysisConfig>,
}

/// `[sweep.slurm]`: resources of the job-array tasks (one per training and its evaluations) and the
/// report job of `seqls sweep --backend slurm`. Unset fields are left to the cluster's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// CPUs per task; the task trains and decodes on that many threads.
    pub cpus_per_task: usize,
    /// Memory per task in Slurm's notation, e.g. `8G`.
    pub mem: String,
    /// Time limit per task in Slurm's notation, e.g. `04:00:00` or `1-00:00:00`.
    pub time: String,
    /// GPUs per task (`--gres=gpu:N`); then the task runs with `--device wgpu`.
    pub gpus: Option<usize>,
    /// Extra `#SBATCH` lines, written as given after the generated ones (e.g. `--qos=short`).
    pub extra: Vec<String>,
    /// The `seqls` binary the tasks run (default: the one that submits), on a filesystem every node sees.
    pub seqls: Option<std::path::PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            cpus_per_task: 2,
            mem: "8G".into(),
            time: "04:00:00".into(),
            gpus: None,
            extra: Vec::new(),
            seqls: None,
        }
    }
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            alphas: vec![0.0, 0.1, 0.2, 0.3],
            beams: vec![1, 2, 4, 8, 16],
            seeds: vec![1],
            test_splits: vec!["test".into()],
            compare_beam: 4,
            slurm: SlurmConfig::default(),
            primary: None,
            alpha_seeds: Vec::new(),
            search: None,
        }
    }
}

/// `sweep.primary`: the one comparison a study is designed to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryContrast {
    pub alpha: f64,
    pub beam: usize,
    pub split: String,
}

/// One entry of `sweep.alpha_seeds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlphaSeeds {
    pub alpha: f64,
    pub seeds: Vec<u64>,
}

impl SweepConfig {
    /// The seeds α trains with: its `alpha_seeds` entry, else `seeds`.
    pub fn seeds_for(&self, alpha: f64) -> &[u64] {
        self.alpha_seeds
            .iter()
            .find(|a| a.alpha == alpha)
            .map_or(&self.seeds, |a| &a.seeds)
    }

    /// Every seed of the grid: `seeds`, then those only `alpha_seeds` name, in order.
    pub fn all_seeds(&self) -> Vec<u64> {
        let mut all = self.seeds.clone();
        for a in &self.alpha_seeds {
            for &s in &a.seeds {
                if !all.contains(&s) {
                    all.push(s);
                }
            }
        }
        all
    }
}

/// What to measure (`[sweep.search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchAnalysisConfig {
    /// Beam sizes.
    pub beams: Vec<usize>,
    /// Rankings of the finished hypotheses.
    pub rankings: Vec<LengthPenalty>,
    /// Exact search on the first this many sentences of the split (0: none).
    pub exact_sentences: usize,
    /// Most prefixes scored per sentence by exact search.
    pub max_expansions: u64,
    /// Exact search again with `</s>` forbidden before `⌈r · source tokens⌉` tokens (0: not run).
    pub min_len_ratio: f64,
    /// The beam size of the two controls (0: not run): the ranking tuned per run on the validation
    /// split, and decoding at the temperature fitted on it.
    pub control_beam: usize,
}

impl Default for SearchAnalysisConfig {
    fn default() -> Self {
        SearchAnalysisConfig {
            beams: vec![1, 2, 4, 8, 16, 32, 64],
            rankings: vec![
                LengthPenalty::Power(0.0),
                LengthPenalty::Power(1.0),
                LengthPenalty::Gnmt(0.6),
            ],
            exact_sentences: 1000,
            max_expansions: 100_000,
            min_len_ratio: 0.0,
            control_beam: 4,
        }
    }
}

impl SearchAnalysisConfig {
    /// Checks the options; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.beams.is_empty() || self.beams.contains(&0) {
            return Err(ConfigError::out_of_range(
                "sweep.search.beams",
                "non-empty beam sizes ≥ 1",
                format!("{:?}", self.beams),
            ));
        }
        if self.rankings.is_empty() {
            return Err(ConfigError::out_of_range(
                "sweep.search.rankings",
                "non-empty",
                "[]",
            ));
        }
        for r in &self.rankings {
            if let LengthPenalty::Power(a) | LengthPenalty::Gnmt(a) = r
                && !a.is_finite()
            {
                return Err(ConfigError::out_of_range(
                    "sweep.search.rankings",
                    "finite exponents",
                    a,
                ));
            }
        }
        if self.max_expansions == 0 {
            return Err(ConfigError::out_of_range(
                "sweep.search.max_expansions",
                "at least 1",
                0,
            ));
        }
        if !(self.min_len_ratio >= 0.0 && self.min_len_ratio.is_finite()) {
            return Err(ConfigError::out_of_range(
                "sweep.search.min_len_ratio",
                "a finite number ≥ 0",
                self.min_len_ratio,
            ));
        }
        Ok(())
    }
}

/// `[distill]`: the distillation study of `seqls sweep` (off unless `kinds` is non-empty). Every run of
/// the sweep (each α and seed) is a teacher; for each, students of the shape `student` are trained:
/// `word` (word-level KD at every temperature × weight), `seq` (on the teacher's beam-`seq_beam`
/// translations of the training sources); plus, per seed, a `baseline` student on the references and
/// one more on the references with label smoothing at each α of `smoothed_baselines`.
/// Students are evaluated at beam 1 and at `sweep.compare_beam` on the sweep's test splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// `"word"` and/or `"seq"`; empty = no distillation study.
    pub kinds: Vec<String>,
    /// The students' shape (default: the sweep's own `[model]` with d = 64, FF 256).
    pub student: Option<ModelConfig>,
    /// Label smoothing of every student.
    pub student_alpha: f64,
    pub temperatures: Vec<f64>,
    pub weights: Vec<f64>,
    /// Beam size of the teacher's translations for `seq`.
    pub seq_beam: usize,
    /// Train a student on the references alone (per seed).
    pub baseline: bool,
    /// Also train a student on the references with label smoothing at each of these α (per seed):
    /// the comparison of Müller et al. (2019) for a smoothed teacher's student.
    pub smoothed_baselines: Vec<f64>,
    /// The students' `train.max_epochs` (default: the teachers').
    pub max_epochs: Option<usize>,
    /// The students' `train.average_last`: how many of their last epochs' weights are averaged
    /// (default: the teachers'; at most `train.keep_last`).
    pub average_last: Option<usize>,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            kinds: Vec::new(),
            student: None,
            student_alpha: 0.0,
            temperatures: vec![1.0, 2.0],
            weights: vec![0.5],
            seq_beam: 4,
            baseline: true,
            smoothed_baselines: Vec::new(),
            max_epochs: None,
            average_last: None,
        }
    }
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the experiment (default run directory `runs/<name>`).
    pub name: String,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub decode: SearchConfig,
    pub sweep: SweepConfig,
    pub distill: DistillConfig,
}

/// The embedded default (`configs/synth.toml`), so the main job needs no file.
pub const SYNTH_TOML: &str = include_str!("../../../configs/synth.toml");

impl ExperimentConfig {
    /// Reads a TOML config; errors name the file and the offending key or line.
    pub fn load(path: &Path) -> Result<Self, crate::error::RunError> {
        let text = std::fs::read_to_string(path).at(path.display())?;
        Self::parse(&text).at(path.display())
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, crate::error::RunError> {
        toml::from_str(text).map_err(Into::into)
    }

    /// The embedded synthetic-corpus default.
    pub fn synth_default() -> Self {
        // Cannot fail: the embedded config is a compile-time constant, parsed and validated by the tests.
        Self::parse(SYNTH_TOML).expect("configs/synth.toml is valid")
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), crate::error::RunError> {
        self.data.validate()?;
        self.model.validate()?;
        self.decode.validate()?;
        let t = &self.train;
        if !(0.0..1.0).contains(&t.alpha) {
            return Err(ConfigError::out_of_range("train.alpha", "in [0, 1)", t.alpha).into());
        }
        if !(t.kd_temperature > 0.0 && t.kd_temperature <= 1e3) {
            return Err(ConfigError::out_of_range(
                "train.kd_temperature",
                "positive (and at most 1000)",
                t.kd_temperature,
            )
            .into());
        }
        if !(0.0..=1.0).contains(&t.kd_weight) {
            return Err(
                ConfigError::out_of_range("train.kd_weight", "in [0, 1]", t.kd_weight).into(),
            );
        }
        if !(t.lr > 0.0 && t.lr < 1e3) {
            return Err(
                ConfigError::out_of_range("train.lr", "positive (and below 1000)", t.lr).into(),
            );
        }
        if t.max_epochs == 0 {
            return Err(ConfigError::out_of_range("train.max_epochs", "positive", 0).into());
        }
        if !(1..=256).contains(&t.shards) {
            return Err(
                ConfigError::out_of_range("train.shards", "between 1 and 256", t.shards).into(),
            );
        }
        let (b1, b2) = t.adam_betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(ConfigError::out_of_range(
                "train.adam_betas",
                "in [0, 1)",
                format!("({b1}, {b2})"),
            )
            .into());
        }
        if !(t.adam_epsilon > 0.0 && t.adam_epsilon.is_finite()) {
            return Err(ConfigError::out_of_range(
                "train.adam_epsilon",
                "positive",
                t.adam_epsilon,
            )
            .into());
        }
        if t.schedule == Schedule::LinearDecay && t.max_steps <= t.warmup_steps {
            return Err(ConfigError::DecayNeedsSteps {
                warmup_steps: t.warmup_steps,
                max_steps: t.max_steps,
            }
            .into());
        }
        if t.average_last > t.keep_last {
            return Err(ConfigError::AverageMoreThanKept {
                key: "train.average_last",
                average_last: t.average_last,
                keep_last: t.keep_last,
            }
            .into());
        }
        if !(t.clip_norm >= 0.0 && t.clip_norm.is_finite()) {
            return Err(
                ConfigError::out_of_range("train.clip_norm", "≥ 0 (0 = off)", t.clip_norm).into(),
            );
        }
        if let Some(average_last) = self.distill.average_last
            && average_last > t.keep_last
        {
            return Err(ConfigError::AverageMoreThanKept {
                key: "distill.average_last",
                average_last,
                keep_last: t.keep_last,
            }
            .into());
        }
        if let Some(search) = &self.sweep.search {
            search.validate()?;
        }
        for a in &self.sweep.alpha_seeds {
            if !self.sweep.alphas.contains(&a.alpha) || a.seeds.is_empty() {
                return Err(ConfigError::AlphaSeeds(a.alpha).into());
            }
        }
        if self.data.max_len + 2 > self.model.max_len {
            return Err(ConfigError::MaxLen {
                model: self.model.max_len,
                needed: self.data.max_len + 2,
            }
            .into());
        }
        Ok(())
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        // Cannot fail: every field of the config is a TOML-representable value (numbers, strings, tables).
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// The learning-rate decay after the warm-up (`seqls_train::schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    InverseSqrt,
    /// Needs `train.max_steps`.
    LinearDecay,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configs_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config = ExperimentConfig::load(&path).unwrap();
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let round = ExperimentConfig::parse(&config.to_toml()).unwrap();
                assert_eq!(round, config);
                n += 1;
            }
        }
        assert!(n >= 2);
    }

    #[test]
    fn students_average_no_more_epochs_than_are_kept() {
        let mut config = ExperimentConfig::synth_default();
        config.train.keep_last = 2;
        config.distill.average_last = Some(3);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with("distill.average_last (3)"), "{err}");
        config.distill.average_last = Some(2);
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = ExperimentConfig::parse("[train]\nalpah = 0.1\n").unwrap_err();
        assert!(err.to_string().contains("alpah"), "{err}");
    }
}
