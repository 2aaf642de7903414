//! `seqls sweep` end to end on a tiny synthetic grid: every job, the report and its figures, the
//! page, resuming, `--status` and `--plan`.

mod common;

use common::{seqls, stderr, sweep};

#[test]
fn tiny_sweep_runs_end_to_end_and_skips_finished_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiny-sweep.toml");
    let out_dir = dir.path().to_str().unwrap();
    let out = sweep(config, out_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "report.md",
        "report.json",
        "table.csv",
        "sweep.toml",
        "a0-s1/eval-test-beam4.json",
        "a0-s1/eval-test-beam4-reliability.png",
        "a0-s1/eval-test-beam4-reliability.svg",
        "a0.1-s1/eval-test-beam1.hyp.txt",
        "a0.1-s2/eval-test-beam1.hyp.txt",
        "figures/bleu-vs-beam-test.png",
        "figures/bleu-vs-beam-test.svg",
        "figures/length-ratio-vs-beam.png",
        "figures/ece-vs-alpha.svg",
        "figures/bleu-vs-alpha.png",
        "figures/valid-nll-per-epoch.png",
        "figures/valid-bleu-per-epoch.png",
        "figures/reliability-grid.png",
        "figures/penultimate.png",
        "figures/penultimate.svg",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0]["splits"][0]["beams"].as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["epochs"].as_array().unwrap().len(), 2);
    // α = 0.1 against α = 0 at beams 1 and 4, and the change of the beam-4 gain: over both seeds.
    let comparisons = report["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 3);
    for c in comparisons {
        assert_eq!(c["seeds"], serde_json::json!([1, 2]));
        let per_seed = c["contrast"]["per_seed"].as_array().unwrap();
        let mean = per_seed.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / 2.0;
        assert!((c["contrast"]["delta"].as_f64().unwrap() - mean).abs() < 1e-9);
        let (lo, hi) = (
            c["contrast"]["ci"][0].as_f64().unwrap(),
            c["contrast"]["ci"][1].as_f64().unwrap(),
        );
        assert!(lo <= hi, "{c}");
        assert!(c["contrast"]["t_test"]["degrees_of_freedom"] == 1, "{c}");
        // Two seeds: the sign-flip p is 0.5 or 1; the primary contrast is not adjusted, the others are
        // at least their raw p.
        let flip = c["contrast"]["sign_flip_p"].as_f64().unwrap();
        assert!(flip == 0.5 || flip == 1.0, "{c}");
        let primary = c["kind"] == "bleu" && c["beam"] == 4;
        assert_eq!(c["primary"], primary, "{c}");
        if !primary {
            assert!(
                c["holm_p_value"].as_f64().unwrap() >= c["contrast"]["p_value"].as_f64().unwrap()
            );
        }
    }
    // The per-seed BLEU difference is that of the two runs' own evaluations.
    let bleu = |run: &str| -> f64 {
        let e: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(run).join("eval-test-beam4.json")).unwrap(),
        )
        .unwrap();
        e["bleu"]["score"].as_f64().unwrap()
    };
    let b4 = comparisons
        .iter()
        .find(|c| c["kind"] == "bleu" && c["beam"] == 4)
        .unwrap();
    assert!(
        (b4["contrast"]["per_seed"][1].as_f64().unwrap() - (bleu("a0.1-s2") - bleu("a0-s2"))).abs()
            < 1e-9
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for needle in [
        "inference ECE b4",
        "oracle ECE",
        "Mean ± standard deviation over seeds",
        "crossed bootstrap",
        "p (sign flip)",
        "p (Holm)",
        "## Findings",
        "Does smoothing change the gain of beam search?",
        "H(q)/ln(K−1)",
        "![",
        "Penultimate",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    // [sweep.search]: every run analysed; the report's Search section; beam 4 under the config's own
    // ranking (power 1) is the evaluation's beam 4, output for output.
    for needle in [
        "## Search: does smoothing change",
        "### Search on test",
        "Empty outputs (%)",
        "Search errors (%",
        "| exact |",
        "exact, min length (r = 0.3)",
        "Controls at beam 4",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    assert_eq!(report["search"].as_array().unwrap().len(), 4);
    for run in ["a0-s1", "a0-s2", "a0.1-s1", "a0.1-s2"] {
        let search: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(run).join("search-test.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(search["points"].as_array().unwrap().len(), 9);
        let b4 = search["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["beam"] == 4 && p["ranking"]["kind"] == "power" && p["ranking"]["alpha"] == 1.0
            })
            .unwrap();
        assert_eq!(b4["bleu"].as_f64().unwrap(), bleu(run), "{run}");
        let hyps = std::fs::read_to_string(
            dir.path()
                .join(run)
                .join(b4["hypotheses_file"].as_str().unwrap()),
        )
        .unwrap();
        let eval_hyps =
            std::fs::read_to_string(dir.path().join(run).join("eval-test-beam4.hyp.txt")).unwrap();
        assert_eq!(hyps, eval_hyps, "{run}");
        let controls = &search["controls"];
        assert_eq!(
            controls["default_bleu"].as_f64().unwrap(),
            bleu(run),
            "{run}"
        );
        assert!(controls["tuned_valid_bleu"].as_f64().unwrap() >= 0.0);
        assert!(controls["fitted_temperature"].as_f64().unwrap() > 0.0);
        let exact = &search["exact"];
        assert_eq!(exact["sentences"], 50);
        assert!(exact["proven"].as_u64().unwrap() <= 50);
        for p in search["points"].as_array().unwrap() {
            let e = p["search_errors"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&e), "{p}");
        }
    }
    for f in [
        "figures/search-bleu-none-test.png",
        "figures/search-empty-test.svg",
        "figures/search-errors-test.png",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let eval: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("a0-s1/eval-test-beam4.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        eval["bleu"]["signature"],
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
    for key in [
        &eval["teacher_forced"]["with_eos"]["ece"],
        &eval["inference"]["ece"],
        &eval["oracle"]["ece"],
        &eval["oracle"]["mean_abs_gap"],
        &eval["erasure"]["entropy_ratio"],
        &eval["erasure"]["top5_mass"],
    ] {
        let v = key.as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key}");
    }

    // A second run finds every job finished and only rewrites the report.
    let again = sweep(config, out_dir);
    assert!(again.status.success());
    assert!(
        !stderr(&again).contains("== training"),
        "{}",
        stderr(&again)
    );
    // A damaged evaluation file fails the report loudly, naming the file and the field.
    let damaged = dir.path().join("a0.1-s2/eval-test-beam1.json");
    let good = std::fs::read_to_string(&damaged).unwrap();
    std::fs::write(&damaged, good.replacen("\"chrf\"", "\"chrF\"", 1)).unwrap();
    let out = seqls(&["report", out_dir]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("a0.1-s2/eval-test-beam1.json") && err.contains("chr"),
        "{err}"
    );
    std::fs::write(&damaged, good).unwrap();

    // An existing evaluation is not overwritten without --force, and is skipped on request.
    let run = dir.path().join("a0-s1");
    let out = seqls(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--beam",
        "4",
        "--skip-finished",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = seqls(&["eval", "--model", run.to_str().unwrap(), "--beam", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));

    // `--format json` prints the whole report.
    let json_out = dir.path().join("again.json");
    let out = seqls(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--beam",
        "2",
        "--output",
        json_out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["search"]["beam_size"], 2);

    // Every decoded score equals the teacher-forced score of the same tokens (`seqls score`).
    let src = dir.path().join("src.txt");
    let lines: Vec<String> = seqls_data::synth::generate_splits(40, 7)[2]
        .1
        .iter()
        .take(12)
        .map(|p| p.src.clone())
        .collect();
    std::fs::write(&src, lines.join("\n") + "\n").unwrap();
    let out = seqls(&[
        "decode",
        "--model",
        run.to_str().unwrap(),
        "--input",
        src.to_str().unwrap(),
        "--beam",
        "3",
        "--nbest",
        "3",
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut srcs, mut hyps, mut scores, mut per_token) = (vec![], vec![], vec![], vec![]);
    for (line, src_line) in String::from_utf8_lossy(&out.stdout).lines().zip(&lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for h in v["hypotheses"].as_array().unwrap() {
            let tokens: Vec<&str> = h["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let lps: Vec<f64> = h["token_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(tokens.len(), lps.len());
            let score = h["score"].as_f64().unwrap();
            assert!((score - lps.iter().sum::<f64>()).abs() < 1e-4);
            srcs.push(src_line.clone());
            hyps.push(tokens.join(" "));
            scores.push(score);
            per_token.push(lps);
        }
    }
    assert_eq!(hyps.len(), 36);
    let (s_file, h_file) = (dir.path().join("s.txt"), dir.path().join("h.txt"));
    std::fs::write(&s_file, srcs.join("\n") + "\n").unwrap();
    std::fs::write(&h_file, hyps.join("\n") + "\n").unwrap();
    let out = seqls(&[
        "score",
        "--model",
        run.to_str().unwrap(),
        "--src",
        s_file.to_str().unwrap(),
        "--hyp",
        h_file.to_str().unwrap(),
        "--hyp-tokens",
        "--per-token",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let scored = String::from_utf8_lossy(&out.stdout);
    assert_eq!(scored.lines().count(), hyps.len());
    for ((line, want), want_tokens) in scored.lines().zip(&scores).zip(&per_token) {
        let fields: Vec<&str> = line.split('\t').collect();
        let got: f64 = fields[0].parse().unwrap();
        assert!((got - want).abs() < 1e-4, "score {got} vs decoded {want}");
        for (g, w) in fields[3].split(' ').zip(want_tokens) {
            assert!((g.parse::<f64>().unwrap() - w).abs() < 1e-4);
        }
    }

    let plan = seqls(&["sweep", "--config", config, "--out", out_dir, "--plan"]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("seqls train"))
            .count(),
        4
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("seqls eval")).count(),
        8
    );

    // `seqls export`: fairseq names, PyTorch layout, a valid safetensors header.
    let export = dir.path().join("export");
    let out = seqls(&[
        "export",
        run.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(export.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{name}");
        let numel: u64 = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let (a, b) = (
            info["data_offsets"][0].as_u64().unwrap(),
            info["data_offsets"][1].as_u64().unwrap(),
        );
        assert_eq!(b - a, 4 * numel, "{name}");
        spans.push((a, b));
    }
    spans.sort();
    assert_eq!(spans[0].0, 0);
    assert!(
        spans.windows(2).all(|w| w[0].1 == w[1].0),
        "tensors are packed"
    );
    assert_eq!(
        8 + header_len as u64 + spans.last().unwrap().1,
        bytes.len() as u64
    );
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // tiny-sweep.toml: d = 16, FF 32, 1+1 layers, shared and tied embeddings.
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(names.len(), 47);
    for name in [
        "encoder.embed_tokens.weight",
        "encoder.layers.0.self_attn.q_proj.weight",
        "encoder.layers.0.fc1.weight",
        "encoder.layers.0.final_layer_norm.weight",
        "decoder.layers.0.encoder_attn.v_proj.bias",
        "decoder.layers.0.encoder_attn_layer_norm.bias",
        "decoder.layer_norm.weight",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert_eq!(
        file.tensor("encoder.layers.0.fc1.weight").unwrap().shape(),
        [32, 16]
    );
    // fc1 is burn's `[16, 32]` inner weight transposed to `[out, in]`.
    let weights = ["model-average.bpk", "model-best.bpk"]
        .iter()
        .map(|f| run.join(f))
        .find(|p| p.exists())
        .unwrap();
    let pack = burn_pack::Reader::from_file(&weights).unwrap();
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let inner = f32s(
        &pack
            .tensor_data("encoder.0.feed_forward.inner.weight")
            .unwrap(),
    );
    let fc1 = f32s(file.tensor("encoder.layers.0.fc1.weight").unwrap().data());
    for o in 0..32 {
        for i in 0..16 {
            assert_eq!(fc1[o * 16 + i], inner[i * 32 + o]);
        }
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["d_model"], 16);
    assert_eq!(config["vocab_size"], 600);
    assert!(export.join("tokenizer.json").exists());

    // The report is rebuilt from the results alone: without any weights it is byte-identical (the
    // penultimate picture is redrawn from figures/penultimate.json, the bootstrap reads the cached
    // per-sentence BLEU statistics).
    assert!(
        dir.path()
            .join("a0-s1/eval-test-beam4.bleu-stats.json")
            .exists()
    );
    let md_before = std::fs::read(dir.path().join("report.md")).unwrap();
    let png_before = std::fs::read(dir.path().join("figures/penultimate.png")).unwrap();
    for run in ["a0-s1", "a0.1-s1", "a0-s2", "a0.1-s2"] {
        for entry in std::fs::read_dir(dir.path().join(run)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".bpk") || name == "checkpoint.bin" {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let out = seqls(&["report", out_dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(dir.path().join("report.md")).unwrap() == md_before);
    assert!(std::fs::read(dir.path().join("figures/penultimate.png")).unwrap() == png_before);
}
