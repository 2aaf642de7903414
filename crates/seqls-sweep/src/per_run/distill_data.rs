//! Sequence-level knowledge distillation data (Kim & Rush 2016): a teacher's beam-search translations
//! of its own training sources, written as a parallel corpus that a student trains on with
//! `data.train = ["DIR/train.src", "DIR/train.tgt"]` (validation and test stay the corpus's own).
//!
//! `DIR/train.tgt.partial` grows one chunk of translations at a time (each chunk flushed to disk), so an
//! interrupted run continues from the last whole chunk; at the end the sources and the translations are
//! written as `DIR/train.src` and `DIR/train.tgt` and `DIR/distill.json` records the teacher, the
//! search and the counts. A finished directory is reused as it is; one started with another teacher
//! or search is refused.

use crate::error::{Result, SweepError};
use seqls_run::error::At;

use burn::tensor::Device;
use seqls_data::corpus::encode_for_inference;
use seqls_decode::SearchConfig;
use seqls_run::RunDir;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `DIR/distill.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillRecord {
    /// The teacher run directory, as given.
    pub teacher: PathBuf,
    pub search: SearchConfig,
    /// Training pairs translated (the teacher's training split, empty pairs skipped).
    pub sentences: usize,
    /// `false` while translations are still being written.
    pub finished: bool,
    /// Translations that came out empty (kept as empty lines; training skips them).
    pub empty_translations: usize,
}

/// Translations per flushed chunk.
const CHUNK: usize = 500;

/// Writes the teacher's translations of its training sources into `out` (see the module
/// documentation); `progress(done, total)` is called after every chunk. Returns the record.
pub fn distill_data(
    teacher: &RunDir,
    search: &SearchConfig,
    out: &Path,
    device: &Device,
    threads: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<DistillRecord> {
    search.validate()?;
    let (config, tokenizer, model) = teacher.load_model(device)?;
    let text = config.data.load_split("train")?;
    let total = text.pairs.len();
    let record_path = out.join("distill.json");
    let mut record = DistillRecord {
        teacher: teacher.root.clone(),
        search: search.clone(),
        sentences: total,
        finished: false,
        empty_translations: 0,
    };
    if record_path.exists() {
        let text = std::fs::read_to_string(&record_path).at(record_path.display())?;
        let saved: DistillRecord = serde_json::from_str(&text).at(record_path.display())?;
        if (&saved.teacher, &saved.search, saved.sentences)
            != (&record.teacher, &record.search, record.sentences)
        {
            return Err(SweepError::OtherTeacher {
                out: out.to_path_buf(),
                teacher: saved.teacher.clone(),
                search: serde_json::to_string(&saved.search)?,
            });
        }
        if saved.finished {
            progress(total, total);
            return Ok(saved);
        }
    }
    std::fs::create_dir_all(out).at(out.display())?;
    seqls_data::write::write_atomic(
        &record_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;

    // Continue after the last whole line of the partial file.
    let partial = out.join("train.tgt.partial");
    let mut done_bytes = std::fs::read(&partial).unwrap_or_default();
    let whole = done_bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    done_bytes.truncate(whole);
    let mut done = done_bytes
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .min(total);
    std::fs::write(&partial, &done_bytes).at(partial.display())?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&partial)
        .at(partial.display())?;
    progress(done, total);
    let translator = seqls_model::Translator::new(&model, device);
    while done < total {
        let end = (done + CHUNK).min(total);
        let chunk = &text.pairs[done..end];
        let encoded = encode_for_inference(&tokenizer, chunk, config.model.max_len)?;
        let sources: Vec<Vec<u32>> = encoded.examples.iter().map(|e| e.src.clone()).collect();
        let nbests = translator.translate(&sources, search, 64, threads, |_| {});
        let mut lines = vec![String::new(); chunk.len()];
        for (example, nbest) in encoded.examples.iter().zip(&nbests) {
            if let Some(best) = nbest.first() {
                lines[example.index] = tokenizer.decode(&best.tokens)?;
            }
        }
        let mut bytes = String::new();
        for line in &lines {
            // A translation never spans lines.
            bytes.push_str(&line.replace(['\n', '\r'], " "));
            bytes.push('\n');
        }
        file.write_all(bytes.as_bytes())
            .and_then(|()| file.sync_data())
            .at(partial.display())?;
        done = end;
        progress(done, total);
    }
    drop(file);
    let translations = seqls_data::read::read_lines(&partial)?;
    record.empty_translations = translations.iter().filter(|l| l.trim().is_empty()).count();
    let sources: Vec<&str> = text.pairs.iter().map(|p| p.src.as_str()).collect();
    seqls_data::write::write_lines(&out.join("train.src"), sources.iter().copied())?;
    seqls_data::write::write_lines(
        &out.join("train.tgt"),
        translations.iter().map(String::as_str),
    )?;
    std::fs::remove_file(&partial).at(partial.display())?;
    record.finished = true;
    seqls_data::write::write_atomic(
        &record_path,
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    Ok(record)
}
