//! The word-probability file next to a hypothesis file (`seqls eval` writes
//! `eval-<split>-beam<K>.word-probs.txt`): line i holds the probability of each whitespace word of
//! hypothesis i, space-separated, each with 4 decimals; an empty line where they are unknown (or
//! the hypothesis is empty).

use std::path::{Path, PathBuf};

/// A word-probability file that cannot be read: the file, the 1-based line and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {problem}", path.display())]
pub struct ProbsError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

/// The file's text for `probs` (one line per sentence; `None`: unknown).
pub fn format_word_probs(probs: &[Option<Vec<f64>>]) -> String {
    let mut text = String::new();
    for line in probs {
        if let Some(words) = line {
            let cells: Vec<String> = words.iter().map(|p| format!("{p:.4}")).collect();
            text.push_str(&cells.join(" "));
        }
        text.push('\n');
    }
    text
}

/// Parses the lines of a word-probability file read from `path`: every value a number in [0, 1].
pub fn parse_word_probs(lines: &[String], path: &Path) -> Result<Vec<Vec<f64>>, ProbsError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            line.split_whitespace()
                .map(|cell| match cell.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(ProbsError {
                        path: path.to_path_buf(),
                        line: i + 1,
                        problem: format!("{cell:?} is not a probability in [0, 1]"),
                    }),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_line() {
        let text = format_word_probs(&[Some(vec![0.5, 0.12345]), None, Some(vec![1.0])]);
        assert_eq!(text, "0.5000 0.1235\n\n1.0000\n");
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let back = parse_word_probs(&lines, Path::new("p.txt")).unwrap();
        assert_eq!(back, vec![vec![0.5, 0.1235], vec![], vec![1.0]]);
        let bad = vec!["0.5".to_string(), "0.2 x".to_string()];
        let e = parse_word_probs(&bad, Path::new("p.txt")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.txt:2: \"x\" is not a probability in [0, 1]"
        );
    }
}
