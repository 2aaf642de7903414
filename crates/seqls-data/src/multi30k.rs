//! The named corpus `multi30k` (Multi30k task 1, raw): languages de, en, fr, cs; splits `train` (29,000
//! pairs), `val` (1,014) and `test_2016_flickr` (1,000), stored as `SPLIT.LANG.gz`.
//!
//! [`fetch`] downloads the files from the public Multi30k repository (or copies them from a local mirror),
//! verifies each against the SHA-256 sums recorded in `corpora/multi30k.sha256`, and writes atomically.

use crate::error::{DataError, Result};
use crate::read::{ParallelText, read_bytes, read_parallel, write_atomic};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const LANGUAGES: [&str; 4] = ["de", "en", "fr", "cs"];
pub const SPLITS: [&str; 3] = ["train", "val", "test_2016_flickr"];
/// Where [`fetch`] downloads from: `{BASE_URL}/{SPLIT}.{LANG}.gz`.
pub const BASE_URL: &str =
    "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw";
const SHA256SUMS: &str = include_str!("../../../corpora/multi30k.sha256");

/// A language pair such as `de-en` (source-target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguagePair {
    pub src: String,
    pub tgt: String,
}

impl std::str::FromStr for LanguagePair {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        let (src, tgt) = s.split_once('-').ok_or_else(|| {
            DataError::Invalid(format!("language pair must look like de-en, got {s:?}"))
        })?;
        for lang in [src, tgt] {
            if !LANGUAGES.contains(&lang) {
                return Err(DataError::Invalid(format!(
                    "multi30k has no language {lang:?}; it has {}",
                    LANGUAGES.join(", ")
                )));
            }
        }
        if src == tgt {
            return Err(DataError::Invalid(format!(
                "source and target are both {src}"
            )));
        }
        Ok(LanguagePair {
            src: src.into(),
            tgt: tgt.into(),
        })
    }
}

/// Checks that `split` is one of [`SPLITS`].
pub fn check_split(split: &str) -> Result<()> {
    if SPLITS.contains(&split) {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "multi30k has no split {split:?}; it has {}",
            SPLITS.join(", ")
        )))
    }
}

/// Path of one file: `DIR/SPLIT.LANG.gz`.
pub fn file_path(dir: &Path, split: &str, lang: &str) -> PathBuf {
    dir.join(format!("{split}.{lang}.gz"))
}

/// Reads one split of a language pair from `dir`.
pub fn read_split(dir: &Path, pair: &LanguagePair, split: &str) -> Result<ParallelText> {
    check_split(split)?;
    read_parallel(
        &file_path(dir, split, &pair.src),
        &file_path(dir, split, &pair.tgt),
    )
}

/// The recorded `(file name, SHA-256 hex)` of every file.
pub fn checksums() -> Vec<(&'static str, &'static str)> {
    SHA256SUMS
        .lines()
        .filter_map(|l| {
            l.split_once("  ")
                .map(|(sum, name)| (name.trim(), sum.trim()))
        })
        .collect()
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where [`fetch`] takes the files from.
#[derive(Debug, Clone)]
pub enum FetchSource {
    /// Download from a base URL (normally [`BASE_URL`]).
    Url(String),
    /// Copy from a local directory holding the same files.
    Mirror(PathBuf),
}

/// Fetches every file into `out`, verifying its checksum before it is written (atomically). Files already
/// present with the right checksum are kept. Returns the paths written or kept.
pub fn fetch(source: &FetchSource, out: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (name, expected) in checksums() {
        let dest = out.join(name);
        if dest.exists()
            && read_raw(&dest).map(|b| sha256_hex(&b)).ok().as_deref() == Some(expected)
        {
            paths.push(dest);
            continue;
        }
        let (origin, bytes) = match source {
            FetchSource::Mirror(dir) => {
                let p = dir.join(name);
                let b = read_raw(&p)?;
                (p, b)
            }
            FetchSource::Url(base) => {
                let url = format!("{}/{name}", base.trim_end_matches('/'));
                (PathBuf::from(&url), download(&url)?)
            }
        };
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(DataError::Checksum {
                path: origin,
                expected: expected.into(),
                actual,
            });
        }
        write_atomic(&dest, &bytes)?;
        paths.push(dest);
    }
    Ok(paths)
}

fn read_raw(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

fn download(url: &str) -> Result<Vec<u8>> {
    let io = |e: ureq::Error| DataError::io(url, std::io::Error::other(e.to_string()));
    let mut response = ureq::get(url).call().map_err(io)?;
    response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(io)
}

/// Decompressed line count of one file (for `corpus stats` and checks).
pub fn count_lines(path: &Path) -> Result<usize> {
    Ok(read_bytes(path)?
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count())
}

/// The Multi30k directory for tests: `$SEQLS_DATA_DIR` (a relative path is taken from `workspace_root`,
/// where `.ci/run` runs), or `None` with a printed notice when unset. Under `SEQLS_REQUIRE_DATA=1` a
/// missing corpus panics instead, so CI cannot skip silently.
pub fn test_data_dir(workspace_root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os(crate::corpus::DATA_DIR_ENV)
        .map(PathBuf::from)
        .map(|d| {
            if d.is_relative() {
                workspace_root.join(d)
            } else {
                d
            }
        });
    match dir {
        Some(d) if d.join("val.de.gz").exists() => Some(d),
        other => {
            if std::env::var("SEQLS_REQUIRE_DATA").as_deref() == Ok("1") {
                // Cannot fail: test helper: a missing corpus must fail the test run under SEQLS_REQUIRE_DATA=1.
                panic!("SEQLS_REQUIRE_DATA=1 but Multi30k is not at SEQLS_DATA_DIR={other:?}");
            }
            eprintln!("notice: SEQLS_DATA_DIR is unset; skipping a test that needs Multi30k");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_splits_are_checked() {
        assert_eq!(
            "de-en".parse::<LanguagePair>().unwrap(),
            LanguagePair {
                src: "de".into(),
                tgt: "en".into()
            }
        );
        assert!(
            "de-xx"
                .parse::<LanguagePair>()
                .unwrap_err()
                .to_string()
                .contains("no language \"xx\"")
        );
        assert!("deen".parse::<LanguagePair>().is_err());
        assert!(check_split("test2016").is_err());
    }

    #[test]
    fn twelve_checksums_are_recorded() {
        let sums = checksums();
        assert_eq!(sums.len(), 12);
        assert!(sums.iter().all(|(_, s)| s.len() == 64));
    }

    #[test]
    fn mirror_with_a_wrong_file_is_refused_and_nothing_is_written() {
        let mirror = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for (name, _) in checksums() {
            std::fs::write(mirror.path().join(name), b"not the real file").unwrap();
        }
        let err = fetch(&FetchSource::Mirror(mirror.path().into()), out.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256 is"), "{err}");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
}
