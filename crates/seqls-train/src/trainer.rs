//! The training loop.
//!
//! Each update: pad a token-budget batch, run the teacher-forced forward pass, compute the
//! label-smoothed loss ([`seqls_model::loss`]) divided by the number of non-pad target tokens (or
//! sentences), back-propagate, rescale the gradients so that their global L2 norm is at most
//! `clip_norm`, and take an Adam step at the inverse-square-root learning rate. The batch is split into
//! `train.shards` row shards whose passes run in parallel ([`crate::step`]). Dropout masks are a function of
//! `(seed, update, shard)` and the batch order of an epoch of `(seed, epoch)`, so a run resumed from a
//! checkpoint ends bit-identical to an uninterrupted one on the CPU, whatever `--threads`.

use crate::error::TrainError;
use crate::resume::{Start, resuming, saved_checkpoint};
use crate::run_data::RunData;
use crate::schedule::learning_rate;
use crate::step::{StepOutcome, UpdateRule, step_seed, update};
use crate::teacher::Teacher;
use crate::validation::{greedy_bleu, validate};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use seqls_data::write::write_atomic;
use seqls_data::{Batch, make_batch, plan_batches};
use seqls_model::Transformer;
use seqls_run::checkpoint::{self, TrainState};
use seqls_run::error::At;
use seqls_run::log::append_log;
use seqls_run::run::{
    RunDir, average_weights, checkpoint_bytes, load_weights, weights_bytes, write_text,
};
use seqls_run::{ExperimentConfig, LogLine, RunLock, TrainSummary, ValidMetrics};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// How to run `train` (what is not part of the experiment config).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub start: Start,
    /// No progress bars; log lines only.
    pub quiet: bool,
    /// The device to train on (without autodiff; it is added here).
    pub device: Device,
    /// Threads used on the CPU (the size of the global rayon pool, set by the caller): with 1 the
    /// shards of a batch run one after the other on the calling thread, else as tasks of that pool.
    pub threads: usize,
}

/// Time spent at a checkpoint (`timing.json`), summed over resumes.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
struct Timing {
    step: usize,
    /// Seconds inside training updates.
    train_seconds: f64,
    /// Wall-clock seconds of the whole run: data, tokenizer, updates, validation, checkpoints.
    #[serde(default)]
    wall_seconds: f64,
}

/// The clocks of a run: update time and wall-clock time, both carried over from earlier invocations.
struct Clock {
    train_seconds: f64,
    wall_before: f64,
    started: Instant,
}

impl Clock {
    /// Wall-clock seconds of the run so far.
    fn wall(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }
}

/// Trains `config` into `options.run_dir`. See the module documentation.
///
/// Everything that can be checked is checked before the run directory is created or touched: the
/// config, the data, the tokenizer. The directory is then locked ([`RunLock`]) for the whole run, so a
/// second process on the same directory fails at once naming this one.
pub fn train(
    config: &ExperimentConfig,
    options: &TrainOptions,
) -> Result<TrainSummary, crate::error::TrainError> {
    let started = Instant::now();
    config.validate()?;
    let run = RunDir::new(&options.run_dir);
    let resuming = resuming(&run, options.start)?;
    let (teacher, teacher_tokenizer) = match Teacher::load(config, &options.device)? {
        Some((teacher, tokenizer)) => (Some(teacher), Some(tokenizer)),
        None => (None, None),
    };
    let data = RunData::load(config, &run, resuming, teacher_tokenizer)?;

    std::fs::create_dir_all(&run.root).at(run.root.display())?;
    let _lock = RunLock::acquire(&run.root)?;
    if run.checkpoint().exists() != resuming {
        return Err(TrainError::StartRace(run.root.clone()));
    }
    let stale = seqls_data::write::remove_stale_temporaries(&run.root, None);
    if stale > 0 {
        eprintln!(
            "removed {stale} temporary files left in {} by a killed process",
            run.root.display()
        );
    }
    let saved = if resuming {
        Some(saved_checkpoint(config, &run)?)
    } else {
        // A run killed before its first checkpoint left these behind; they belong to no run now.
        for stale in [run.log(), run.metrics(), run.best_model(), run.timing()] {
            if stale.exists() {
                std::fs::remove_file(&stale).at(stale.display())?;
            }
        }
        data.tokenizer.save(&run.tokenizer())?;
        None
    };
    write_text(&run.config(), &config.to_toml())?;
    data.describe(config);
    let products = seqls_model::PrecisionScope::enter(config.train.precision);
    if config.train.precision != seqls_model::Precision::F32 {
        eprintln!("{}", products.engine);
    }

    let (mut trainer, model) = Trainer::new(config, options, run, data, teacher, saved, started)?;
    let model = trainer.epochs(model)?;
    trainer.finish(model)
}

/// Why a training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Epochs,
    Steps,
    /// `train.max_time` reached.
    Time,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Epochs => "epochs",
            Stop::Steps => "steps",
            Stop::Time => "time",
        }
    }
}

/// The losses of the updates since the last `train` log line.
struct LogWindow {
    loss: f64,
    nll: f64,
    tokens: usize,
    started: Instant,
}

impl LogWindow {
    fn new() -> Self {
        LogWindow {
            loss: 0.0,
            nll: 0.0,
            tokens: 0,
            started: Instant::now(),
        }
    }
}

/// A training in progress: everything but the model, which flows through [`Trainer::epochs`] (an
/// update consumes the weights and returns the new ones).
struct Trainer<'a> {
    config: &'a ExperimentConfig,
    options: &'a TrainOptions,
    run: RunDir,
    data: RunData,
    teacher: Option<Teacher>,
    /// How an update treats a batch (smoothing, normaliser, shards, clipping), built once.
    rule: UpdateRule,
    /// The training device (with autodiff).
    device: Device,
    optimizer: ModuleOptimizer,
    state: TrainState,
    clock: Clock,
    /// How long the last validation took (seconds): the time limit keeps room for the final one.
    validation_cost: f64,
    /// Whether this invocation changed anything (a resumed finished run changes nothing).
    changed: bool,
    stopped_by: Stop,
}

impl<'a> Trainer<'a> {
    /// A new model and optimiser seeded by `train.seed`, or the ones of the `saved` checkpoint.
    fn new(
        config: &'a ExperimentConfig,
        options: &'a TrainOptions,
        run: RunDir,
        data: RunData,
        teacher: Option<Teacher>,
        saved: Option<(TrainState, Vec<u8>, Vec<u8>)>,
        started: Instant,
    ) -> Result<(Trainer<'a>, Transformer), crate::error::TrainError> {
        let t = &config.train;
        let device = options.device.clone().autodiff();
        // The initial weights are drawn on the CPU whatever the device (each backend has a random
        // generator of its own), so that a seed gives the same model on the GPU, then moved there.
        let host = Device::flex().autodiff();
        host.seed(t.seed);
        let model = config.model.init(data.tokenizer.vocab_size(), &host);
        // burn initialises a parameter lazily, on the device it has when first read: read them all
        // here, on the CPU, before the move.
        struct Materialize;
        impl ModuleVisitor for Materialize {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        model.visit(&mut Materialize);
        let mut model = model.fork(&device);
        device.seed(t.seed);
        let mut optimizer = crate::adam::optimizer(t, &device);
        let mut state = TrainState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            best_valid_nll: None,
            best_step: None,
            target_tokens: 0,
            log_lines: Some(0),
            last_valid: None,
        };
        let mut clock = Clock {
            train_seconds: 0.0,
            wall_before: 0.0,
            started,
        };
        if let Some((saved, model_bytes, optim_bytes)) = saved {
            let origin = format!("{} (model section)", run.checkpoint().display());
            model = load_weights(model, model_bytes, &origin)?;
            optimizer = optimizer
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim_bytes))
                .at(format!(
                    "{} (optimiser section)",
                    run.checkpoint().display()
                ))?;
            eprintln!(
                "resuming at update {} (epoch {}, batch {})",
                saved.step,
                saved.epoch + 1,
                saved.batch_in_epoch
            );
            let timing = std::fs::read_to_string(run.timing())
                .ok()
                .and_then(|t| serde_json::from_str::<Timing>(&t).ok())
                .unwrap_or_default();
            clock.train_seconds = timing.train_seconds;
            clock.wall_before = timing.wall_seconds;
            state = saved;
        }
        let trainer = Trainer {
            config,
            options,
            run,
            data,
            teacher,
            rule: UpdateRule::of(t),
            device,
            optimizer,
            state,
            clock,
            validation_cost: 0.0,
            changed: false,
            stopped_by: Stop::Epochs,
        };
        Ok((trainer, model))
    }

    /// `train.max_steps`, with 0 as no limit.
    fn max_steps(&self) -> usize {
        match self.config.train.max_steps {
            0 => usize::MAX,
            n => n,
        }
    }

    /// Epoch after epoch until `train.max_epochs`, `train.max_steps` or `train.max_time`; each
    /// finished epoch is validated, its weights kept and a checkpoint written.
    fn epochs(&mut self, mut model: Transformer) -> Result<Transformer, crate::error::TrainError> {
        let max_epochs = self.config.train.max_epochs;
        while self.state.epoch < max_epochs && self.state.step < self.max_steps() {
            let finished;
            (model, finished) = self.epoch(model)?;
            if !finished {
                return Ok(model);
            }
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.validate(&model, self.state.epoch, self.config.train.valid_bleu)?;
            self.keep_weights(&model)?;
            self.save_checkpoint(&model)?;
            self.changed = true;
        }
        if self.state.step >= self.max_steps() && self.state.epoch < max_epochs {
            self.stopped_by = Stop::Steps;
        }
        Ok(model)
    }

    /// The rest of the current epoch, from `state.batch_in_epoch`; `false` when a step or time limit
    /// stopped it first.
    fn epoch(
        &mut self,
        mut model: Transformer,
    ) -> Result<(Transformer, bool), crate::error::TrainError> {
        let t = &self.config.train;
        let plan = plan_batches(
            &self.data.train.examples,
            self.config.data.max_tokens,
            Some((t.seed, self.state.epoch as u64)),
        );
        let bar = if self.options.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(plan.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ETA {eta}",
            )
            // Cannot fail: the progress template is a constant, checked by every training test.
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", self.state.epoch + 1, t.max_epochs));
        bar.set_position(self.state.batch_in_epoch as u64);
        let mut window = LogWindow::new();
        while self.state.batch_in_epoch < plan.len() {
            if self.state.step >= self.max_steps() {
                self.stopped_by = Stop::Steps;
                return Ok((model, false));
            }
            if self.time_is_up() {
                self.stopped_by = Stop::Time;
                return Ok((model, false));
            }
            let batch = make_batch(&self.data.train.examples, &plan[self.state.batch_in_epoch]);
            model = self.step(model, &batch, &mut window, &bar)?;
        }
        bar.finish_and_clear();
        Ok((model, true))
    }

    /// One update on `batch`, its `train` log line every `train.log_every` updates, a validation
    /// every `train.valid_every` and a checkpoint every `train.checkpoint_every`.
    fn step(
        &mut self,
        model: Transformer,
        batch: &Batch,
        window: &mut LogWindow,
        bar: &ProgressBar,
    ) -> Result<Transformer, crate::error::TrainError> {
        let t = &self.config.train;
        let started = Instant::now();
        let lr = learning_rate(
            t.schedule,
            t.lr,
            t.warmup_steps,
            t.max_steps,
            self.state.step + 1,
        );
        let (model, outcome) = update(
            model,
            self.teacher.as_ref(),
            &mut self.optimizer,
            batch,
            &self.rule,
            lr,
            step_seed(t.seed, self.state.step),
            self.options.threads,
            &self.device,
        );
        let StepOutcome {
            loss_sum,
            nll_sum,
            n_tokens,
        } = outcome;
        if !loss_sum.is_finite() {
            bar.abandon();
            return Err(TrainError::NonFiniteLoss {
                loss: loss_sum,
                update: self.state.step + 1,
                checkpoint: self.run.checkpoint(),
            });
        }
        let state = &mut self.state;
        state.step += 1;
        state.batch_in_epoch += 1;
        state.target_tokens += n_tokens as u64;
        self.clock.train_seconds += started.elapsed().as_secs_f64();
        window.loss += loss_sum;
        window.nll += nll_sum;
        window.tokens += n_tokens;
        bar.inc(1);
        if state.step.is_multiple_of(t.log_every.max(1)) {
            let n = window.tokens.max(1) as f64;
            let tokens_per_sec =
                window.tokens as f64 / window.started.elapsed().as_secs_f64().max(1e-9);
            let (loss, nll) = (window.loss / n, window.nll / n);
            bar.set_message(format!(
                "loss {loss:.3} nll {nll:.3} {tokens_per_sec:.0} tok/s"
            ));
            let (step, epoch) = (state.step, state.epoch + 1);
            append_log(
                &self.run.log(),
                &LogLine::Train {
                    step,
                    epoch,
                    lr,
                    loss,
                    nll,
                    tokens_per_sec,
                },
                state,
            )?;
            if self.options.quiet {
                eprintln!(
                    "train | epoch {epoch} | update {step} | lr {lr:.2e} | loss {loss:.4} | nll {nll:.4} | {tokens_per_sec:.0} tok/s"
                );
            }
            *window = LogWindow::new();
        }
        self.changed = true;
        if t.valid_every > 0 && self.state.step.is_multiple_of(t.valid_every) {
            self.validate(&model, self.state.epoch + 1, false)?;
        }
        if self.state.step.is_multiple_of(t.checkpoint_every.max(1)) {
            self.save_checkpoint(&model)?;
        }
        Ok(model)
    }

    /// Whether `train.max_time` leaves no room for another update and the final validation.
    fn time_is_up(&self) -> bool {
        self.config
            .train
            .max_time
            .is_some_and(|limit| self.clock.wall() + self.validation_cost >= limit.seconds())
    }

    /// Validates, logs as epoch `epoch` (1-based), and keeps the best weights.
    fn validate(
        &mut self,
        model: &Transformer,
        epoch: usize,
        with_bleu: bool,
    ) -> Result<ValidMetrics, crate::error::TrainError> {
        let validation_started = Instant::now();
        let eval_model = model.valid();
        let inner = self.device.clone().inner();
        let metrics = validate(&eval_model, &self.data.valid.examples, self.config, &inner);
        let bleu = if with_bleu {
            Some(greedy_bleu(
                &eval_model,
                &self.data.tokenizer,
                &self.data.valid.examples,
                &self.data.valid_refs,
                &inner,
                self.options.threads,
            )?)
        } else {
            None
        };
        let state = &mut self.state;
        eprintln!(
            "valid | epoch {epoch} | update {} | loss {:.4} | nll {:.4} | ppl {:.2} | acc {:.2}%{}",
            state.step,
            metrics.smoothed_loss,
            metrics.nll,
            metrics.perplexity,
            100.0 * metrics.accuracy,
            bleu.map(|b| format!(" | greedy BLEU {b:.2}"))
                .unwrap_or_default()
        );
        append_log(
            &self.run.log(),
            &LogLine::Valid {
                step: state.step,
                epoch,
                metrics: metrics.clone(),
                greedy_bleu: bleu,
                train_seconds: self.clock.train_seconds,
                wall_seconds: self.clock.wall(),
            },
            state,
        )?;
        if state.best_valid_nll.is_none_or(|b| metrics.nll < b) {
            state.best_valid_nll = Some(metrics.nll);
            state.best_step = Some(state.step);
            write_atomic(&self.run.best_model(), &weights_bytes(&eval_model)?)?;
        }
        state.last_valid = Some((state.step, metrics.clone()));
        self.validation_cost = validation_started.elapsed().as_secs_f64();
        Ok(metrics)
    }

    /// Keeps the weights as `update-<step>.bpk` (the last `train.keep_last` of them).
    fn keep_weights(&self, model: &Transformer) -> Result<(), crate::error::TrainError> {
        let keep = self.config.train.keep_last;
        if keep == 0 {
            return Ok(());
        }
        write_atomic(
            &self.run.kept_weights(self.state.step),
            &weights_bytes(&model.valid())?,
        )?;
        for (_, old) in self.run.kept().into_iter().rev().skip(keep) {
            std::fs::remove_file(&old).at(old.display())?;
        }
        Ok(())
    }

    /// Writes `checkpoint.bin` and `timing.json`.
    fn save_checkpoint(&self, model: &Transformer) -> Result<(), crate::error::TrainError> {
        let (weights, optim) = checkpoint_bytes(model, &self.optimizer)?;
        checkpoint::save(&self.run.checkpoint(), &self.state, &weights, &optim)
            .at(self.run.checkpoint().display())?;
        let timing = Timing {
            step: self.state.step,
            train_seconds: self.clock.train_seconds,
            wall_seconds: self.clock.wall(),
        };
        write_text(&self.run.timing(), &serde_json::to_string(&timing)?)?;
        Ok(())
    }

    /// After the last update: the final validation (where the last epoch did not end with one), the
    /// average of the last `train.average_last` kept weights, the checkpoint, and `metrics.json`.
    fn finish(mut self, model: Transformer) -> Result<TrainSummary, crate::error::TrainError> {
        let t = &self.config.train;
        if self.state.last_valid.as_ref().map(|v| v.0) != Some(self.state.step) {
            self.validate(&model, self.state.epoch + 1, false)?;
            self.keep_weights(&model)?;
            self.changed = true;
        }
        if self.stopped_by == Stop::Time {
            eprintln!(
                "stopped by train.max_time ({}) after {:.0} s of wall-clock time, at update {}",
                t.max_time.map(|m| m.to_string()).unwrap_or_default(),
                self.clock.wall(),
                self.state.step
            );
        }
        if t.average_last > 0 && self.changed {
            let kept = self.run.kept();
            let last: Vec<PathBuf> = kept
                .iter()
                .rev()
                .take(t.average_last)
                .rev()
                .map(|(_, p)| p.clone())
                .collect();
            write_atomic(&self.run.average_model(), &average_weights(&last)?)?;
            eprintln!(
                "averaged the weights of {} checkpoints into {}",
                last.len(),
                self.run.average_model().display()
            );
        }
        if self.changed {
            self.save_checkpoint(&model)?;
        }
        let summary = TrainSummary {
            steps: self.state.step,
            epochs_completed: self.state.epoch,
            best_valid_nll: self.state.best_valid_nll,
            best_step: self.state.best_step,
            final_valid: self.state.last_valid.as_ref().map(|v| v.1.clone()),
            train_seconds: self.clock.train_seconds,
            wall_seconds: self.clock.wall(),
            stopped_by: self.stopped_by.as_str().to_string(),
            target_tokens_per_sec: self.state.target_tokens as f64
                / self.clock.train_seconds.max(1e-9),
            threads: self.options.threads,
            train_pairs: self.data.train.examples.len(),
            filtered_long: self.data.train.filtered_long,
            skipped_empty: self.data.skipped_empty,
        };
        write_text(
            &self.run.metrics(),
            &serde_json::to_string_pretty(&summary)?,
        )?;
        Ok(summary)
    }
}
