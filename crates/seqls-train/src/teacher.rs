//! The frozen teacher of word-level distillation (`train.teacher`).

use crate::error::TrainError;
use burn::tensor::Device;
use seqls_data::SubwordTokenizer;
use seqls_model::Transformer;
use seqls_run::ExperimentConfig;
use seqls_run::run::RunDir;

/// A frozen teacher for word-level distillation (`train.teacher`): its model on the inner device, so
/// that it runs without dropout and outside the autodiff graph.
pub struct Teacher {
    pub model: Transformer,
    pub temperature: f64,
    pub weight: f64,
}

impl Teacher {
    /// Loads `train.teacher` (if set) on the inner device of `device`, with its tokenizer, which the
    /// student must use. Errors name the teacher directory: no weights, or a student whose
    /// `data.vocab_size` differs from the teacher's vocabulary.
    pub fn load(
        config: &ExperimentConfig,
        device: &Device,
    ) -> Result<Option<(Teacher, SubwordTokenizer)>, crate::error::TrainError> {
        let Some(dir) = &config.train.teacher else {
            return Ok(None);
        };
        let run = RunDir::new(dir);
        if !run.best_model().exists() && !run.average_model().exists() && !run.checkpoint().exists()
        {
            return Err(TrainError::NoTeacher(dir.clone()));
        }
        let (_, tokenizer, model) =
            run.load_model(&device.clone().inner())
                .map_err(|source| TrainError::TeacherLoad {
                    dir: dir.clone(),
                    source: Box::new(source),
                })?;
        if tokenizer.vocab_size() != config.data.vocab_size {
            return Err(TrainError::TeacherVocab {
                dir: dir.clone(),
                teacher: tokenizer.vocab_size(),
                student: config.data.vocab_size,
            });
        }
        Ok(Some((
            Teacher {
                model,
                temperature: config.train.kd_temperature,
                weight: config.train.kd_weight,
            },
            tokenizer,
        )))
    }
}
