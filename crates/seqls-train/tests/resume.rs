//! Training on a tiny model: an interrupted and resumed run ends bit-identical to an uninterrupted one,
//! whatever the number of threads the shards of each batch run on.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use seqls_run::ExperimentConfig;
use seqls_run::checkpoint;
use seqls_run::run::load_weights;
use seqls_train::{Start, TrainOptions, train};

/// The backend's random generator (parameter initialisation) is process-wide: trainings in parallel
/// test threads would interleave their draws, so each test holds this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_config(max_steps: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::synth_default();
    c.data.synth_pairs = 300;
    c.data.max_tokens = 400;
    c.data.vocab_size = 600;
    c.model.d_model = 16;
    c.model.d_ff = 32;
    c.model.heads = 2;
    c.model.encoder_layers = 1;
    c.model.decoder_layers = 1;
    c.train.max_steps = max_steps;
    c.train.max_epochs = 100;
    c.train.warmup_steps = 4;
    c.train.checkpoint_every = 1000;
    c.train.valid_bleu = false;
    c.train.shards = 3;
    c
}

fn options(dir: &std::path::Path, resume: bool, threads: usize) -> TrainOptions {
    TrainOptions {
        run_dir: dir.to_path_buf(),
        start: if resume { Start::Resume } else { Start::Fresh },
        quiet: true,
        device: Device::flex(),
        threads,
    }
}

/// Every float parameter of `model`, in visiting order.
fn model_values(model: &seqls_model::Transformer) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut collect = Collect(vec![]);
    model.visit(&mut collect);
    collect.0
}

/// Every float parameter of the model stored in `bytes`, in visiting order.
fn parameter_values(dir: &tempfile::TempDir, bytes: Vec<u8>) -> Vec<f32> {
    let device = Device::flex();
    let config = ExperimentConfig::load(&dir.path().join("config.toml")).unwrap();
    let tokenizer = seqls_data::SubwordTokenizer::load(&dir.path().join("tokenizer.json")).unwrap();
    let model = load_weights(
        config.model.init(tokenizer.vocab_size(), &device),
        bytes,
        "test",
    )
    .unwrap();
    model_values(&model)
}

#[test]
fn resumed_training_is_bit_identical_to_uninterrupted_training() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = 12; // more than one epoch of this tiny corpus, so the resume crosses an epoch boundary
    let whole = tempfile::tempdir().unwrap();
    let parts = tempfile::tempdir().unwrap();
    // One thread runs the three shards of each batch in turn; then two and three threads share them.
    let summary = train(&tiny_config(2 * n), &options(whole.path(), false, 1)).unwrap();
    assert_eq!(summary.steps, 2 * n);
    train(&tiny_config(n), &options(parts.path(), false, 2)).unwrap();
    // Without --resume an existing run is refused rather than overwritten.
    let err = train(&tiny_config(2 * n), &options(parts.path(), false, 2)).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // As if the process had logged further updates, then was killed before its next checkpoint.
    let log_path = parts.path().join("log.jsonl");
    let mut log = std::fs::read_to_string(&log_path).unwrap();
    log.push_str("{\"kind\":\"train\",\"step\":13,\"note\":\"replayed\"}\n{\"kind\":\"tr");
    std::fs::write(&log_path, log).unwrap();
    let resumed = train(&tiny_config(2 * n), &options(parts.path(), true, 3)).unwrap();
    assert_eq!(resumed.steps, 2 * n);

    let (state_a, model_a, optim_a) =
        checkpoint::load(&whole.path().join("checkpoint.bin")).unwrap();
    let (state_b, model_b, optim_b) =
        checkpoint::load(&parts.path().join("checkpoint.bin")).unwrap();
    assert_eq!(
        (state_a.step, state_a.epoch, state_a.batch_in_epoch),
        (state_b.step, state_b.epoch, state_b.batch_in_epoch)
    );
    // The burnpack bytes also carry parameter ids, which differ between processes: compare values.
    let (weights_a, weights_b) = (
        parameter_values(&whole, model_a.clone()),
        parameter_values(&parts, model_b.clone()),
    );
    assert_eq!(weights_a.len(), weights_b.len());
    let differing = weights_a
        .iter()
        .zip(&weights_b)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} weights differ after resume",
        weights_a.len()
    );
    assert!(!optim_a.is_empty() && !optim_b.is_empty());
    // Parameter ids and tensor order are stable: the weights and Adam state are identical bytes.
    // (The state headers differ here: the interrupted run validated once more, at its last update.)
    assert!(model_a == model_b, "the checkpoint weights differ");
    assert!(optim_a == optim_b, "the Adam states differ");
    {
        let f = "model-best.bpk";
        let (a, b) = (
            std::fs::read(whole.path().join(f)).unwrap(),
            std::fs::read(parts.path().join(f)).unwrap(),
        );
        assert!(
            a == b,
            "{f} differs between the resumed and the uninterrupted run"
        );
    }
    // Each update is logged once, the replayed ones included (see the killed run above).
    let log = std::fs::read_to_string(parts.path().join("log.jsonl")).unwrap();
    let mut seen: Vec<(String, u64)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["step"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!log.contains("replayed"), "{log}");
    let n_lines = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), n_lines, "a step is logged twice: {log}");
    for f in [
        "config.toml",
        "tokenizer.json",
        "log.jsonl",
        "metrics.json",
        "model-best.bpk",
    ] {
        assert!(parts.path().join(f).exists(), "{f} missing");
    }
}

#[test]
fn validation_nll_falls_epoch_over_epoch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny_config(0);
    c.data.synth_pairs = 1500;
    c.data.max_tokens = 1024;
    c.model.d_model = 32;
    c.model.d_ff = 64;
    c.train.max_epochs = 4;
    c.train.warmup_steps = 20;
    train(&c, &options(dir.path(), false, 2)).unwrap();
    let log = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
    let nll: Vec<f64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "valid")
        .map(|v| v["metrics"]["nll"].as_f64().unwrap())
        .collect();
    assert_eq!(nll.len(), 4);
    assert!(
        nll.windows(2).all(|w| w[1] < w[0]),
        "validation NLL does not fall: {nll:?}"
    );
    // A uniform guess over the 600 ids gives ln 600 = 6.4 nats.
    assert!(nll[3] < 5.0, "validation NLL {nll:?}");
}

#[test]
fn a_time_limit_stops_cleanly_and_averaging_is_the_parameter_mean() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny_config(0);
    c.train.max_epochs = 1000;
    c.train.keep_last = 3;
    c.train.average_last = 3;
    c.train.max_time = Some("1.5s".parse().unwrap());
    let summary = train(&c, &options(dir.path(), false, 1)).unwrap();
    assert_eq!(summary.stopped_by, "time");
    assert!(summary.epochs_completed < 1000);
    // The limit keeps room for the last validation: the run ends near it, not long after.
    assert!(summary.wall_seconds < 1.5 + 1.0, "{}", summary.wall_seconds);
    let kept = seqls_run::RunDir::new(dir.path()).kept();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let values: Vec<Vec<f32>> = kept
        .iter()
        .map(|(_, p)| parameter_values(&dir, std::fs::read(p).unwrap()))
        .collect();
    let average = parameter_values(
        &dir,
        std::fs::read(dir.path().join("model-average.bpk")).unwrap(),
    );
    for (i, a) in average.iter().enumerate() {
        let mean = values.iter().map(|v| f64::from(v[i])).sum::<f64>() / 3.0;
        assert!(
            (f64::from(*a) - mean).abs() <= 1e-6 * mean.abs().max(1.0),
            "{a} vs {mean}"
        );
    }
    // The run's model is now the average.
    let (_, _, model) = seqls_run::RunDir::new(dir.path())
        .load_model(&Device::flex())
        .unwrap();
    assert_eq!(model_values(&model), average);
}

/// Word-level distillation end to end: a tiny teacher, then a student of another shape that uses its
/// tokenizer; the logged objective mixes the two terms; a resumed student ends with the same bytes as
/// an uninterrupted one; a student with another vocabulary or a teacher without weights is refused
/// before anything is written.
#[test]
fn a_distilled_student_trains_resumes_bit_identically_and_checks_its_teacher() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let teacher_dir = tempfile::tempdir().unwrap();
    train(&tiny_config(12), &options(teacher_dir.path(), false, 1)).unwrap();

    let student = |steps: usize| {
        let mut c = tiny_config(steps);
        c.model.d_model = 8;
        c.model.d_ff = 16;
        c.train.teacher = Some(teacher_dir.path().to_path_buf());
        c.train.kd_temperature = 2.0;
        c.train.kd_weight = 0.5;
        c
    };
    let whole = tempfile::tempdir().unwrap();
    train(&student(10), &options(whole.path(), false, 2)).unwrap();
    assert_eq!(
        std::fs::read(whole.path().join("tokenizer.json")).unwrap(),
        std::fs::read(teacher_dir.path().join("tokenizer.json")).unwrap(),
        "the student uses the teacher's tokenizer"
    );
    let halves = tempfile::tempdir().unwrap();
    train(&student(5), &options(halves.path(), false, 1)).unwrap();
    train(&student(10), &options(halves.path(), true, 2)).unwrap();
    // (The checkpoints themselves differ only in the log line count: the first half validated at
    // its end.)
    assert!(
        std::fs::read(whole.path().join("model-best.bpk")).unwrap()
            == std::fs::read(halves.path().join("model-best.bpk")).unwrap(),
        "a resumed student must end with the same weights"
    );
    // The objective is not the plain smoothed loss: with β = 0.5 and a teacher it differs from the
    // same student trained without one.
    let first_loss = |log: &str| -> f64 {
        let line = log
            .lines()
            .find(|l| l.contains("\"kind\":\"train\""))
            .unwrap();
        serde_json::from_str::<serde_json::Value>(line).unwrap()["loss"]
            .as_f64()
            .unwrap()
    };
    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain = student(10);
    plain.train.teacher = None;
    plain.train.log_every = 1;
    let mut logged = student(10);
    logged.train.log_every = 1;
    let logged_dir = tempfile::tempdir().unwrap();
    train(&logged, &options(logged_dir.path(), false, 1)).unwrap();
    train(&plain, &options(plain_dir.path(), false, 1)).unwrap();
    assert!(
        (first_loss(&std::fs::read_to_string(logged_dir.path().join("log.jsonl")).unwrap())
            - first_loss(&std::fs::read_to_string(plain_dir.path().join("log.jsonl")).unwrap()))
        .abs()
            > 1e-6
    );

    // Refusals, before the run directory exists.
    let refused = tempfile::tempdir().unwrap().path().join("never");
    let mut other_vocab = student(4);
    other_vocab.data.vocab_size = 500;
    let err = train(&other_vocab, &options(&refused, false, 1)).unwrap_err();
    assert!(
        err.to_string().contains("tokenizer has 600 ids")
            && err.to_string().contains("vocab_size is 500"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let mut no_model = student(4);
    no_model.train.teacher = Some(empty.path().to_path_buf());
    let err = train(&no_model, &options(&refused, false, 1)).unwrap_err();
    assert!(err.to_string().contains("no trained model"), "{err}");
    assert!(!refused.exists());
}

/// The objective a student logs for its first update equals `(1 − β)·Σ LS-CE + β·T²·Σ KL` over the
/// non-pad tokens of the first batch, divided by their number, computed here in float64 from the
/// teacher's and the student's logits. (The student's weights at that update are those it saves: its
/// learning rate is 1e-30, and it has no dropout.)
#[test]
fn a_students_first_logged_objective_equals_a_float64_computation() {
    use seqls_data::corpus::encode_pairs;
    use seqls_data::tokenizer::PAD;
    use seqls_data::{make_batch, plan_batches};
    use seqls_model::tensors::BatchTensors;
    use seqls_run::{LogLine, RunDir, read_log};

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let teacher_dir = tempfile::tempdir().unwrap();
    train(&tiny_config(12), &options(teacher_dir.path(), false, 1)).unwrap();
    let (alpha, temperature, weight) = (0.1, 2.0, 0.5);
    let mut c = tiny_config(1);
    c.model.d_model = 8;
    c.model.d_ff = 16;
    c.model.dropout = 0.0;
    c.train.alpha = alpha;
    c.train.lr = 1e-30;
    c.train.log_every = 1;
    c.train.teacher = Some(teacher_dir.path().to_path_buf());
    c.train.kd_temperature = temperature;
    c.train.kd_weight = weight;
    let dir = tempfile::tempdir().unwrap();
    train(&c, &options(dir.path(), false, 2)).unwrap();
    let logged = read_log(&dir.path().join("log.jsonl"))
        .unwrap()
        .into_iter()
        .find_map(|l| match l {
            LogLine::Train { step: 1, loss, .. } => Some(loss),
            _ => None,
        })
        .unwrap();

    let device = Device::flex();
    let (_, tokenizer, teacher) = RunDir::new(teacher_dir.path()).load_model(&device).unwrap();
    let (_, _, student) = RunDir::new(dir.path()).load_model(&device).unwrap();
    let pairs = c.data.load_split("train").unwrap().pairs;
    let examples = encode_pairs(&tokenizer, &pairs, c.data.max_len)
        .unwrap()
        .examples;
    let plan = plan_batches(&examples, c.data.max_tokens, Some((c.train.seed, 0)));
    let batch = make_batch(&examples, &plan[0]);
    let logits = |model: &seqls_model::Transformer| -> Vec<f64> {
        let t = BatchTensors::new(&batch, &device);
        let out = model.forward(t.src, t.tgt_in, PAD).logits;
        out.into_data().iter::<f32>().map(f64::from).collect()
    };
    let (s, t) = (logits(&student), logits(&teacher));
    let k = tokenizer.vocab_size();
    let log_softmax = |row: &[f64], temp: f64| -> Vec<f64> {
        let scaled: Vec<f64> = row.iter().map(|x| x / temp).collect();
        let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + scaled.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        scaled.iter().map(|x| x - lse).collect()
    };
    let (mut ce, mut kl, mut n) = (0.0, 0.0, 0usize);
    for (i, &y) in batch.tgt_out.iter().enumerate() {
        if y == PAD {
            continue;
        }
        let (srow, trow) = (&s[i * k..(i + 1) * k], &t[i * k..(i + 1) * k]);
        let lp = log_softmax(srow, 1.0);
        // Uniform smoothing: q = (1 − α)·onehot(y) + α/K.
        ce += -(1.0 - alpha) * lp[y as usize] - alpha / k as f64 * lp.iter().sum::<f64>();
        let (ls, lt) = (
            log_softmax(srow, temperature),
            log_softmax(trow, temperature),
        );
        kl += lt
            .iter()
            .zip(&ls)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
        n += 1;
    }
    let expected = ((1.0 - weight) * ce + weight * temperature * temperature * kl) / n as f64;
    assert!(
        (logged - expected).abs() <= 1e-4 * expected.abs(),
        "logged {logged} vs float64 {expected}"
    );
    // Both terms count: the objective is neither the plain smoothed loss nor the KL alone.
    assert!((expected - ce / n as f64).abs() > 1e-3 && kl > 0.0);
}
