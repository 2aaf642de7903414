//! The distillation part of a sweep report (`[distill]`): is a smoothed teacher a worse teacher?
//!
//! Per test split, one row per (student kind, teacher α), means over seeds: the teacher's BLEU at the
//! comparison beam and what its distribution says beyond the reference (validation split; see
//! [`seqls_eval::erasure`]), the student's BLEU at beam 1 and at the comparison beam, its NLL and ECE on
//! the references and, on the synthetic corpus, its oracle gap; then each student against the student
//! of the same kind taught by the α = 0 teacher (seed-aware, [`seqls_eval::seeds`]). One figure per
//! split: student BLEU against teacher α, one line per kind, the references-only student as a flat
//! line.

use crate::driver::Sweep;
use crate::error::Result;
use crate::report::collect::{RunResult, SplitResult, read_run};
use crate::report::comparisons::{
    CHRF_HEADER, CONTRAST_HEADER, EvalStats, MetricContrasts, chrf_cell, contrast_cells, contrasts,
    sentence_stats_of,
};
use crate::report::figures::FigureDir;
use crate::report::tables::mean_std;
use crate::students::{StudentJob, StudentKind};
use seqls_eval::SeedContrast;
use seqls_plot::{LineChart, Series};
use seqls_run::RunDir;
use serde::Serialize;
use std::fmt::Write as _;

/// A finished student with its results.
pub(crate) struct StudentResult {
    pub job: StudentJob,
    pub result: RunResult,
}

/// What a student is compared with, seed by seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "against", rename_all = "kebab-case")]
pub enum StudentBaseline {
    /// The student of the same kind taught by the teacher of this α.
    Teacher { alpha: f64 },
    /// The student trained on the references alone, with label smoothing `alpha`.
    References { alpha: f64 },
}

/// One student against its baseline, over the seeds both have.
#[derive(Debug, Clone, Serialize)]
pub struct StudentComparison {
    pub split: String,
    pub kind: String,
    /// The teacher's α; `None` for a references-only student.
    pub teacher_alpha: Option<f64>,
    pub baseline: StudentBaseline,
    pub beam: usize,
    pub seeds: Vec<u64>,
    pub contrast: SeedContrast,
    /// The same contrast in chrF, on the same resamples.
    pub chrf: SeedContrast,
    /// The bootstrap p-value Holm-adjusted over the report's student comparisons with the same kind of
    /// baseline (one family per question), on every test split.
    pub holm_p_value: f64,
}

/// Every finished student of the sweep.
pub(crate) fn collect_students(sweep: &Sweep) -> Result<Vec<StudentResult>> {
    let mut beams = vec![1, sweep.config.sweep.compare_beam];
    beams.dedup();
    let mut out = Vec::new();
    for job in sweep.students() {
        let alpha = job.teacher_alpha.unwrap_or(f64::NAN);
        if let Some(result) = read_run(sweep, &job.run, alpha, job.seed, &beams)? {
            out.push(StudentResult { job, result });
        }
    }
    Ok(out)
}

fn mean_of(xs: impl Iterator<Item = Option<f64>>) -> Option<(f64, f64, usize)> {
    let v: Vec<f64> = xs.flatten().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| {
        let (m, s) = mean_std(&v);
        (m, s, v.len())
    })
}

fn cell(x: Option<(f64, f64, usize)>, d: usize) -> String {
    match x {
        Some((m, s, n)) if n > 1 => format!("{m:.d$} ± {s:.d$}"),
        Some((m, _, _)) => format!("{m:.d$}"),
        None => "–".into(),
    }
}

/// The finished students of a sweep, their kinds in order of first appearance, and their
/// comparisons.
pub(crate) struct Distillation {
    students: Vec<StudentResult>,
    kinds: Vec<String>,
    pub comparisons: Vec<StudentComparison>,
}

impl Distillation {
    fn of_kind(&self, kind: &str) -> Vec<&StudentResult> {
        self.students
            .iter()
            .filter(|s| s.job.kind.label() == kind)
            .collect()
    }
}

/// Collects the finished students and estimates both families of comparisons at the comparison beam
/// on every test split, each family Holm-adjusted over its comparisons; `None` when no student has
/// finished.
pub(crate) fn compare_students(sweep: &Sweep) -> Result<Option<Distillation>> {
    let students = collect_students(sweep)?;
    if students.is_empty() {
        return Ok(None);
    }
    let mut kinds: Vec<String> = Vec::new();
    for s in &students {
        let label = s.job.kind.label();
        if !kinds.contains(&label) {
            kinds.push(label);
        }
    }
    let mut d = Distillation {
        students,
        kinds,
        comparisons: Vec::new(),
    };
    let beam = sweep.config.sweep.compare_beam;
    let references = StudentKind::Baseline {
        alpha: sweep.config.distill.student_alpha,
    }
    .label();
    let mut comparisons = Vec::new();
    for split in &sweep.test_splits {
        let mut refs = None;
        // Every group's per-sentence statistics, read once for both families.
        let mut groups = Vec::new();
        for kind in &d.kinds {
            let of_kind = d.of_kind(kind);
            let teachers: Vec<Option<f64>> = match of_kind.first().map(|s| &s.job.kind) {
                Some(StudentKind::Baseline { .. }) => vec![None],
                _ => sweep.config.sweep.alphas.iter().map(|&a| Some(a)).collect(),
            };
            for teacher_alpha in teachers {
                let members: Vec<&StudentResult> = of_kind
                    .iter()
                    .copied()
                    .filter(|s| s.job.teacher_alpha == teacher_alpha)
                    .collect();
                groups.push(StudentGroup {
                    kind: kind.clone(),
                    teacher_alpha,
                    stats: group_stats(sweep, split, beam, &members, &mut refs)?,
                });
            }
        }
        for kind in &d.kinds {
            let smallest = d
                .of_kind(kind)
                .iter()
                .filter_map(|s| s.job.teacher_alpha)
                .min_by(f64::total_cmp);
            comparisons.extend(against_smallest_teacher(
                split, beam, &groups, kind, smallest,
            )?);
        }
        if let Some(base) = groups.iter().find(|g| g.kind == references) {
            let baseline = StudentBaseline::References {
                alpha: sweep.config.distill.student_alpha,
            };
            for system in groups.iter().filter(|g| g.kind != references) {
                comparisons.extend(compare_groups(split, beam, (system, base), baseline)?);
            }
        }
    }
    // Two questions, two families: the teacher's smoothing, and distillation against the references.
    for teacher_family in [true, false] {
        let mut family: Vec<&mut StudentComparison> = comparisons
            .iter_mut()
            .filter(|c| matches!(c.baseline, StudentBaseline::Teacher { .. }) == teacher_family)
            .collect();
        let p: Vec<f64> = family.iter().map(|c| c.contrast.p_value).collect();
        for (c, adjusted) in family.iter_mut().zip(seqls_eval::holm(&p)) {
            c.holm_p_value = adjusted;
        }
    }
    d.comparisons = comparisons;
    Ok(Some(d))
}

/// Writes the distillation section and its figures.
pub(crate) fn write_distillation(
    md: &mut String,
    sweep: &Sweep,
    d: &Distillation,
    teachers: &[RunResult],
    figures: &mut FigureDir,
) -> Result<()> {
    let compare = sweep.config.sweep.compare_beam;
    let alphas = &sweep.config.sweep.alphas;
    let student_shape = &d.students[0].job.config.model;
    writeln!(
        md,
        "## Distillation: is a smoothed teacher a worse teacher?\n\n{} finished students (d = {}, {}+{} layers, FF {}; trained \
         with label smoothing α = {} unless their name says otherwise), each distilled student from one teacher run of the \
         table above with the teacher's seed.\n",
        d.students.len(),
        student_shape.d_model,
        student_shape.encoder_layers,
        student_shape.decoder_layers,
        student_shape.d_ff,
        sweep.config.distill.student_alpha
    )?;
    for split in &sweep.test_splits {
        writeln!(md, "### {split}\n")?;
        writeln!(
            md,
            "| student | teacher α | seeds | teacher BLEU b{compare} | teacher H(q)/ln(K−1) | teacher KL(q‖u) | teacher top-5 q | student BLEU b1 | student BLEU b{compare} | student test NLL | student ECE | student oracle gap |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        )?;
        let mut series: Vec<Series> = Vec::new();
        for kind in &d.kinds {
            series.push(kind_rows(
                md,
                kind,
                &d.of_kind(kind),
                teachers,
                split,
                compare,
                alphas,
            )?);
        }
        comparison_rows(md, &d.comparisons, split, compare)?;
        writeln!(md)?;
        let chart = LineChart {
            title: format!("{split}: student BLEU (beam {compare}) vs teacher α"),
            x_label: "teacher α".into(),
            y_label: "student BLEU".into(),
            series,
            log2_x: false,
        };
        figures.save(
            &format!("distill-bleu-vs-teacher-alpha-{split}"),
            &format!("{split}: student BLEU vs teacher α, one line per distillation kind (flat: references only)"),
            &chart,
        )?;
    }
    writeln!(
        md,
        "Teacher columns: the teachers' own BLEU and, on the validation split, their distribution over the \
         non-reference tokens (entropy relative to uniform, KL from uniform, top-5 mass): smoothing should \
         push these toward uniform (ratio → 1, KL → 0). Word-level students learn from that distribution, \
         sequence-level students only from the teacher's beam output.\n"
    )?;
    Ok(())
}

/// One kind's rows of the student table on `split` (one per teacher α, means over seeds), and its
/// line of the figure: student BLEU at the comparison beam against teacher α (flat for a baseline).
fn kind_rows(
    md: &mut String,
    kind: &str,
    of_kind: &[&StudentResult],
    teachers: &[RunResult],
    split: &str,
    compare: usize,
    alphas: &[f64],
) -> Result<Series> {
    let teacher_of = |alpha: f64| -> Vec<&SplitResult> {
        teachers
            .iter()
            .filter(|t| t.alpha == alpha)
            .filter_map(|t| t.split(split))
            .collect()
    };
    let teacher_alphas: Vec<Option<f64>> =
        if matches!(of_kind[0].job.kind, StudentKind::Baseline { .. }) {
            vec![None]
        } else {
            alphas.iter().map(|&a| Some(a)).collect()
        };
    let mut points = Vec::new();
    let mut errors = Vec::new();
    for teacher_alpha in teacher_alphas {
        let group: Vec<(&StudentResult, &SplitResult)> = of_kind
            .iter()
            .filter(|s| s.job.teacher_alpha == teacher_alpha)
            .filter_map(|s| Some((*s, s.result.split(split)?)))
            .collect();
        if group.is_empty() {
            continue;
        }
        let t = teacher_alpha.map(teacher_of).unwrap_or_default();
        let bleu_cmp = mean_of(group.iter().map(|(_, sp)| sp.at(compare).map(|b| b.bleu)));
        writeln!(
            md,
            "| {kind} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            teacher_alpha.map_or("–".to_string(), |a| a.to_string()),
            group.len(),
            cell(mean_of(t.iter().map(|s| s.at(compare).map(|b| b.bleu))), 2),
            cell(mean_of(t.iter().map(|s| s.erasure_entropy_ratio)), 4),
            cell(mean_of(t.iter().map(|s| s.erasure_kl_from_uniform)), 3),
            cell(mean_of(t.iter().map(|s| s.erasure_top5_mass)), 3),
            cell(
                mean_of(group.iter().map(|(_, sp)| sp.at(1).map(|b| b.bleu))),
                2
            ),
            cell(bleu_cmp, 2),
            cell(mean_of(group.iter().map(|(_, sp)| Some(sp.test_nll))), 4),
            cell(mean_of(group.iter().map(|(_, sp)| Some(sp.ece))), 4),
            cell(
                mean_of(group.iter().map(|(_, sp)| sp.oracle_mean_abs_gap)),
                4
            ),
        )?;
        if let Some((m, s, _)) = bleu_cmp {
            match teacher_alpha {
                Some(a) => {
                    points.push((a, m));
                    errors.push(s);
                }
                None => {
                    for &a in alphas {
                        points.push((a, m));
                        errors.push(s);
                    }
                }
            }
        }
    }
    Ok(Series {
        label: kind.to_string(),
        points,
        errors,
    })
}

/// The tables of `comparisons` on `split`: each student against its kind's student of the smallest-α
/// teacher, then each student against the references-only student.
fn comparison_rows(
    md: &mut String,
    comparisons: &[StudentComparison],
    split: &str,
    compare: usize,
) -> Result<()> {
    let of_split = |teacher_family: bool| -> Vec<&StudentComparison> {
        comparisons
            .iter()
            .filter(|c| {
                c.split == split
                    && matches!(c.baseline, StudentBaseline::Teacher { .. }) == teacher_family
            })
            .collect()
    };
    for teacher_family in [true, false] {
        let rows = of_split(teacher_family);
        let Some(first) = rows.first() else { continue };
        let against = match first.baseline {
            StudentBaseline::Teacher { alpha } => {
                format!("the student of the same kind taught by the α = {alpha} teacher")
            }
            StudentBaseline::References { alpha } => {
                format!("the student trained on the references alone with α = {alpha}")
            }
        };
        writeln!(
            md,
            "\nEach student against {against}, beam {compare} (Δ BLEU, mean over seeds; crossed bootstrap, t-test and \
             sign-flip test over seeds as above; p (Holm): adjusted over the comparisons of this table on every test set):\n\n\
             | student | teacher α | seeds | {CONTRAST_HEADER} | p (Holm) | {CHRF_HEADER} |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        )?;
        for c in rows {
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} | {} |",
                c.kind,
                c.teacher_alpha.map_or("–".to_string(), |a| a.to_string()),
                c.seeds.len(),
                contrast_cells(&c.contrast),
                c.holm_p_value,
                chrf_cell(&c.chrf)
            )?;
        }
    }
    Ok(())
}

/// The students of one kind and one teacher (`teacher_alpha`; `None` for a references-only kind), with
/// their per-sentence statistics at the comparison beam, by seed.
struct StudentGroup {
    kind: String,
    teacher_alpha: Option<f64>,
    stats: Vec<(u64, EvalStats)>,
}

/// The groups of `kind` against that kind's group taught by the smallest-α teacher (`smallest`, of
/// the kind's finished students), per seed.
fn against_smallest_teacher(
    split: &str,
    beam: usize,
    groups: &[StudentGroup],
    kind: &str,
    smallest: Option<f64>,
) -> Result<Vec<StudentComparison>> {
    let Some(base_alpha) = smallest else {
        return Ok(Vec::new());
    };
    let of_kind = || groups.iter().filter(|g| g.kind == kind);
    let Some(base) = of_kind().find(|g| g.teacher_alpha == Some(base_alpha)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for system in of_kind().filter(|g| g.teacher_alpha != Some(base_alpha)) {
        let baseline = StudentBaseline::Teacher { alpha: base_alpha };
        out.extend(compare_groups(split, beam, (system, base), baseline)?);
    }
    Ok(out)
}

/// The per-sentence statistics of the students `group` at `beam` on `split`, by seed.
fn group_stats(
    sweep: &Sweep,
    split: &str,
    beam: usize,
    group: &[&StudentResult],
    refs: &mut Option<Vec<Vec<String>>>,
) -> Result<Vec<(u64, EvalStats)>> {
    let runs: Vec<(u64, RunDir, &SplitResult)> = group
        .iter()
        .filter_map(|s| Some((s.job.seed, s.job.run.clone(), s.result.split(split)?)))
        .collect();
    sentence_stats_of(sweep, &runs, split, beam, refs)
}

/// The group `system` against the group `base`, seed by seed, on the seeds both have; `None` when
/// they share none.
fn compare_groups(
    split: &str,
    beam: usize,
    (system, base): (&StudentGroup, &StudentGroup),
    baseline: StudentBaseline,
) -> Result<Option<StudentComparison>> {
    let seeds: Vec<u64> = system
        .stats
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| base.stats.iter().any(|(b, _)| b == s))
        .collect();
    if seeds.is_empty() {
        return Ok(None);
    }
    fn pick<'a>(seeds: &[u64], v: &'a [(u64, EvalStats)]) -> Vec<&'a EvalStats> {
        seeds
            .iter()
            .filter_map(|s| v.iter().find(|(t, _)| t == s))
            .map(|(_, x)| x)
            .collect()
    }
    let MetricContrasts {
        bleu: contrast,
        chrf,
    } = contrasts(&[
        (1.0, pick(&seeds, &system.stats)),
        (-1.0, pick(&seeds, &base.stats)),
    ])?;
    Ok(Some(StudentComparison {
        split: split.to_string(),
        kind: system.kind.clone(),
        teacher_alpha: system.teacher_alpha,
        baseline,
        beam,
        seeds,
        contrast,
        chrf,
        holm_p_value: 1.0,
    }))
}
