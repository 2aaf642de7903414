//! The comparisons of a report as a family: the declared primary contrast, Holm-adjusted p-values
//! for the others, and the Findings generated from them, which a study's README quotes verbatim
//! between markers.

use crate::error::{Result, SweepError};
use crate::report::comparisons::Comparison;
use crate::report::distill::{StudentBaseline, StudentComparison};
use crate::students::StudentKind;
use seqls_eval::SeedContrast;
use std::path::Path;

/// Marks the primary contrast and Holm-adjusts the bootstrap p-values of all the others (one
/// family: every split, α, beam and kind of the report).
pub(crate) fn adjust(comparisons: &mut [Comparison], primary: Option<&seqls_run::PrimaryContrast>) {
    for c in comparisons.iter_mut() {
        c.primary = primary.is_some_and(|p| {
            c.kind == "bleu" && c.alpha == p.alpha && c.beam == p.beam && c.split == p.split
        });
    }
    let family: Vec<usize> = (0..comparisons.len())
        .filter(|&i| !comparisons[i].primary)
        .collect();
    let p: Vec<f64> = family
        .iter()
        .map(|&i| comparisons[i].contrast.p_value)
        .collect();
    for (&i, adjusted) in family.iter().zip(seqls_eval::holm(&p)) {
        comparisons[i].holm_p_value = Some(adjusted);
    }
}

/// One sentence per comparison whose verb follows from the numbers: a difference is "higher" or
/// "lower" only when its 95% interval excludes zero and its p-value (Holm-adjusted unless it is
/// the primary contrast) is below 0.05; otherwise "no detectable difference", with the smallest
/// effect the seeds could detect. Each sentence also gives the chrF difference with its interval, so
/// that a reader sees where the second metric disagrees. The α comparisons come first (the primary
/// contrast leading), then the students' (`students`, Holm-adjusted as their own family).
pub fn findings(comparisons: &[Comparison], students: &[StudentComparison]) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&Comparison> = comparisons.iter().collect();
    sorted.sort_by_key(|c| !c.primary);
    for c in sorted {
        let measure = match c.kind.as_str() {
            "beam-gain" => format!("the gain of beam {} over greedy", c.beam),
            _ => format!("BLEU at beam {}", c.beam),
        };
        out.push_str(&sentence(
            &c.split,
            &measure,
            (
                &format!("α = {}", c.alpha),
                &format!("α = {}", c.baseline_alpha),
            ),
            (&c.contrast, &c.chrf, c.seeds.len()),
            c.holm_p_value,
        ));
    }
    for c in students {
        let student = |teacher_alpha: Option<f64>| match teacher_alpha {
            Some(a) => format!("the {} student of the α = {a} teacher", c.kind),
            None => format!("the {} student", c.kind),
        };
        let baseline = match c.baseline {
            StudentBaseline::Teacher { alpha } => student(Some(alpha)),
            StudentBaseline::References { alpha } => {
                format!("the {} student", StudentKind::Baseline { alpha }.label())
            }
        };
        out.push_str(&sentence(
            &c.split,
            &format!("BLEU at beam {}", c.beam),
            (&student(c.teacher_alpha), &baseline),
            (&c.contrast, &c.chrf, c.seeds.len()),
            Some(c.holm_p_value),
        ));
    }
    out
}

/// One line of the Findings: `measure` of `system` against `baseline` on `split`, with the BLEU
/// contrast, its chrF twin and the number of seeds; `holm_p_value` is `None` for the primary
/// contrast, whose own p-value is then used.
fn sentence(
    split: &str,
    measure: &str,
    (system, baseline): (&str, &str),
    (bleu, chrf, seeds): (&SeedContrast, &SeedContrast, usize),
    holm_p_value: Option<f64>,
) -> String {
    let p = holm_p_value.unwrap_or(bleu.p_value);
    let excludes_zero = bleu.ci.0 > 0.0 || bleu.ci.1 < 0.0;
    let seeds = match seeds {
        1 => "1 seed (the interval holds the test-set variance only)".to_string(),
        n => format!("{n} seeds"),
    };
    let numbers = format!(
        "Δ = {:+.2} [{:+.2}, {:+.2}], {seeds}, p = {:.4}{}; chrF Δ = {:+.2} [{:+.2}, {:+.2}]",
        bleu.delta,
        bleu.ci.0,
        bleu.ci.1,
        p,
        if holm_p_value.is_none() {
            ", the primary contrast"
        } else {
            ", Holm-adjusted"
        },
        chrf.delta,
        chrf.ci.0,
        chrf.ci.1,
    );
    let sentence = if excludes_zero && p < 0.05 {
        let verb = if bleu.delta > 0.0 { "higher" } else { "lower" };
        format!("{measure}: {verb} with {system} than with {baseline} ({numbers})")
    } else {
        format!(
            "{measure}, {system} against {baseline}: no detectable difference ({numbers}; the smallest \
             effect detectable with 80% power is {:.2})",
            bleu.min_detectable_bootstrap
        )
    };
    format!("- {split}: {sentence}.\n")
}

/// The markers around the generated Findings in `report.md` and in a study's `README.md`.
pub const FINDINGS_BEGIN: &str = "<!-- findings:begin (generated by seqls report) -->";
pub const FINDINGS_END: &str = "<!-- findings:end -->";

/// Replaces the text between the Findings markers of `readme` (when it exists and has them) with
/// `findings`, so that a study's README quotes its report verbatim.
pub(crate) fn update_readme_findings(readme: &Path, findings: &str) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(readme) else {
        return Ok(());
    };
    let (Some(begin), Some(end)) = (text.find(FINDINGS_BEGIN), text.find(FINDINGS_END)) else {
        return Ok(());
    };
    if end < begin {
        return Err(SweepError::FindingsMarkers(readme.to_path_buf()));
    }
    let updated = format!(
        "{}{FINDINGS_BEGIN}\n{findings}{}",
        &text[..begin],
        &text[end..]
    );
    if updated != text {
        seqls_data::write::write_atomic(readme, updated.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::comparisons::tests::{comparison, contrast};

    #[test]
    fn the_verb_follows_the_adjusted_interval_and_chrf_is_stated_beside() {
        let mut comparisons = vec![
            // Excludes zero and survives the adjustment.
            comparison(0.1, contrast(0.8, (0.3, 1.3), 0.001)),
            // Excludes zero, but the p-value is not below 0.05 once adjusted.
            comparison(0.2, contrast(0.5, (0.05, 0.95), 0.03)),
            // Includes zero.
            comparison(0.3, contrast(-0.4, (-1.0, 0.2), 0.2)),
        ];
        adjust(&mut comparisons, None);
        let p: Vec<f64> = comparisons
            .iter()
            .map(|c| c.holm_p_value.unwrap())
            .collect();
        assert_eq!(p, vec![0.003, 0.06, 0.2]);
        let text = findings(&comparisons, &[]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "- t: BLEU at beam 4: higher with α = 0.1 than with α = 0 (Δ = +0.80 [+0.30, +1.30], 2 seeds, \
             p = 0.0030, Holm-adjusted; chrF Δ = +0.30 [-0.10, +0.70])."
        );
        assert!(
            lines[1].contains("α = 0.2 against α = 0: no detectable difference"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("no detectable difference") && lines[2].contains("is 0.70"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn the_primary_contrast_comes_first_unadjusted() {
        let mut comparisons = vec![
            comparison(0.2, contrast(0.5, (0.1, 0.9), 0.02)),
            comparison(0.1, contrast(0.6, (0.2, 1.0), 0.04)),
        ];
        let primary = seqls_run::PrimaryContrast {
            alpha: 0.1,
            beam: 4,
            split: "t".into(),
        };
        adjust(&mut comparisons, Some(&primary));
        assert!(comparisons[1].primary && comparisons[1].holm_p_value.is_none());
        assert_eq!(comparisons[0].holm_p_value, Some(0.02));
        let text = findings(&comparisons, &[]);
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("the primary contrast"),
            "{text}"
        );
    }

    #[test]
    fn student_sentences_name_the_student_and_its_baseline_and_follow_the_same_rule() {
        let student = |teacher_alpha, baseline, bleu| StudentComparison {
            split: "t".into(),
            kind: "word T=2 β=0.5".into(),
            teacher_alpha,
            baseline,
            beam: 4,
            seeds: vec![1, 2, 3],
            contrast: bleu,
            chrf: contrast(-0.3, (-0.6, 0.0), 0.05),
            holm_p_value: 0.02,
        };
        let students = vec![
            student(
                Some(0.2),
                StudentBaseline::Teacher { alpha: 0.0 },
                contrast(-1.1, (-1.8, -0.4), 0.004),
            ),
            student(
                None,
                StudentBaseline::References { alpha: 0.0 },
                contrast(0.4, (-0.2, 1.0), 0.01),
            ),
        ];
        let text = findings(&[], &students);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "- t: BLEU at beam 4: lower with the word T=2 β=0.5 student of the α = 0.2 teacher than with the \
             word T=2 β=0.5 student of the α = 0 teacher (Δ = -1.10 [-1.80, -0.40], 3 seeds, p = 0.0200, \
             Holm-adjusted; chrF Δ = -0.30 [-0.60, +0.00])."
        );
        // The interval includes zero: no verb, whatever the p-value.
        assert!(
            lines[1].contains(
                "the word T=2 β=0.5 student against the references α=0 student: no detectable difference"
            ),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn the_readme_block_between_the_markers_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let readme = dir.path().join("README.md");
        std::fs::write(
            &readme,
            format!("intro\n{FINDINGS_BEGIN}\nold\n{FINDINGS_END}\nrest\n"),
        )
        .unwrap();
        update_readme_findings(&readme, "- new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&readme).unwrap(),
            format!("intro\n{FINDINGS_BEGIN}\n- new\n{FINDINGS_END}\nrest\n")
        );
        // Without markers (or without a README) nothing is written.
        std::fs::write(&readme, "no markers\n").unwrap();
        update_readme_findings(&readme, "- new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&readme).unwrap(), "no markers\n");
        update_readme_findings(&dir.path().join("absent.md"), "x").unwrap();
    }
}
