//! How finished hypotheses are ranked: by `score / lp(n)` for `n` tokens (`</s>` included), with
//! `lp(n) = n^A` (`--lenpen A`, fairseq; `A = 0` is the unnormalised score) or
//! `lp(n) = ((5 + n) / 6)^A` (`--lenpen-gnmt A`, Wu et al. 2016); written as `none`, `power-A`,
//! `gnmt-A` where a list of rankings is given (`seqls search-analysis --rankings`).

use serde::{Deserialize, Serialize};

/// How finished hypotheses are normalised by length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "alpha", rename_all = "lowercase")]
pub enum LengthPenalty {
    /// `lp(n) = n^A` (fairseq `--lenpen`). `A = 0` ranks by the raw sum of log-probabilities.
    Power(f64),
    /// `lp(n) = ((5 + n) / 6)^A` (GNMT).
    Gnmt(f64),
}

impl LengthPenalty {
    /// `lp(n)` for a hypothesis of `n` tokens.
    pub fn divisor(self, n: usize) -> f64 {
        match self {
            LengthPenalty::Power(a) => (n as f64).powf(a),
            LengthPenalty::Gnmt(a) => ((5.0 + n as f64) / 6.0).powf(a),
        }
    }

    /// `score / lp(n)`.
    pub fn normalize(self, score: f64, n: usize) -> f64 {
        score / self.divisor(n)
    }

    /// The ranking as files, tables and `--rankings` name it: `none` (unnormalised), `power-1`,
    /// `gnmt-0.6`.
    pub fn label(self) -> String {
        match self {
            LengthPenalty::Power(0.0) => "none".into(),
            LengthPenalty::Power(a) => format!("power-{a}"),
            LengthPenalty::Gnmt(a) => format!("gnmt-{a}"),
        }
    }
}

impl std::str::FromStr for LengthPenalty {
    type Err = String;

    /// Reads a [`label`](Self::label): `none`, `power-A` or `gnmt-A` with a finite `A`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a ranking: write none, power-A or gnmt-A (e.g. power-1, gnmt-0.6)"
            )
        };
        if text == "none" {
            return Ok(LengthPenalty::Power(0.0));
        }
        let (kind, a) = text.split_once('-').ok_or_else(bad)?;
        let a: f64 = a.parse().map_err(|_| bad())?;
        if !a.is_finite() {
            return Err(bad());
        }
        match kind {
            "power" => Ok(LengthPenalty::Power(a)),
            "gnmt" => Ok(LengthPenalty::Gnmt(a)),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_labels_read_back() {
        for lp in [
            LengthPenalty::Power(0.0),
            LengthPenalty::Power(1.0),
            LengthPenalty::Gnmt(0.6),
            LengthPenalty::Power(-0.5),
        ] {
            assert_eq!(lp.label().parse::<LengthPenalty>(), Ok(lp));
        }
        for bad in ["", "power", "power-x", "gnmt-inf", "norm-1"] {
            assert!(bad.parse::<LengthPenalty>().is_err(), "{bad}");
        }
    }

    #[test]
    fn length_penalties() {
        assert_eq!(LengthPenalty::Power(0.0).normalize(-3.0, 7), -3.0);
        assert_eq!(LengthPenalty::Power(1.0).normalize(-3.0, 3), -1.0);
        assert!((LengthPenalty::Gnmt(1.0).divisor(1) - 1.0).abs() < 1e-12);
    }
}
