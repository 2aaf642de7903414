//! The named corpus `multi30k` (Multi30k task 1, raw): languages de, en, fr, cs; splits `train` (29,000
//! pairs), `val` (1,014) and the test sets `test_2016_flickr` (1,000), `test_2017_flickr` (1,000; no
//! Czech), `test_2017_mscoco` (461; no Czech) and `test_2018_flickr` (1,071), stored as `SPLIT.LANG.gz`.
//! A split exists for a language pair when both of its files are in the data directory.
//!
//! [`fetch`] downloads the files from the public Multi30k repository (or copies them from a local mirror),
//! verifies each against the SHA-256 sums recorded in `corpora/multi30k.sha256`, and writes atomically.

use crate::error::{DataError, Result};
use crate::read::{ParallelText, read_parallel};
use crate::write::write_atomic;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const LANGUAGES: [&str; 4] = ["de", "en", "fr", "cs"];
/// The environment variable naming the Multi30k directory when `data.data_dir` / `--data-dir` is unset.
pub const DATA_DIR_ENV: &str = "SEQLS_DATA_DIR";
/// The test set that `test` names.
pub const DEFAULT_TEST: &str = "test_2016_flickr";
/// The published test sets, oldest first.
pub const TEST_SPLITS: [&str; 4] = [
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
];
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
        let (src, tgt) = s
            .split_once('-')
            .ok_or_else(|| DataError::LanguagePair(s.to_string()))?;
        for lang in [src, tgt] {
            if !LANGUAGES.contains(&lang) {
                return Err(DataError::UnknownLanguage {
                    lang: lang.to_string(),
                    known: &LANGUAGES,
                });
            }
        }
        if src == tgt {
            return Err(DataError::SameLanguage(src.to_string()));
        }
        Ok(LanguagePair {
            src: src.into(),
            tgt: tgt.into(),
        })
    }
}

/// The splits of `pair` present in `dir` (both language files exist): `train`, `val`, then the
/// test sets in name order.
pub fn available_splits(dir: &Path, pair: &LanguagePair) -> Vec<String> {
    let suffix = format!(".{}.gz", pair.src);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(&suffix).map(str::to_string))
                .filter(|split| file_path(dir, split, &pair.tgt).is_file())
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|s| (s != "train", s != "val", s.clone()));
    names
}

/// Checks that `split` of `pair` is in `dir`; the error lists the splits that are.
pub fn check_split(dir: &Path, pair: &LanguagePair, split: &str) -> Result<()> {
    let available = available_splits(dir, pair);
    if available.iter().any(|s| s == split) {
        return Ok(());
    }
    let known = if TEST_SPLITS.contains(&split) || split == "train" || split == "val" {
        ""
    } else {
        " (Multi30k's test sets are test_2016_flickr, test_2017_flickr, test_2017_mscoco and test_2018_flickr)"
    };
    Err(DataError::NoSplit {
        pair: format!("{}-{}", pair.src, pair.tgt),
        split: split.to_string(),
        dir: dir.to_path_buf(),
        hint: known,
        available: if available.is_empty() {
            "none (see `seqls corpus fetch multi30k`)".to_string()
        } else {
            available.join(", ")
        },
    })
}

/// Path of one file: `DIR/SPLIT.LANG.gz`.
pub fn file_path(dir: &Path, split: &str, lang: &str) -> PathBuf {
    dir.join(format!("{split}.{lang}.gz"))
}

/// Reads one split of a language pair from `dir`.
pub fn read_split(dir: &Path, pair: &LanguagePair, split: &str) -> Result<ParallelText> {
    check_split(dir, pair, split)?;
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

/// The Multi30k directory for tests: `$SEQLS_DATA_DIR` (a relative path is taken from `workspace_root`,
/// where `.ci/run` runs), or `None` with a printed notice when unset. Under `SEQLS_REQUIRE_DATA=1` a
/// missing corpus panics instead, so CI cannot skip silently.
pub fn test_data_dir(workspace_root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os(DATA_DIR_ENV).map(PathBuf::from).map(|d| {
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
    }

    #[test]
    fn splits_are_the_file_pairs_present() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "train.de.gz",
            "train.en.gz",
            "val.de.gz",
            "val.en.gz",
            "test_2017_flickr.de.gz",
            "test_2017_flickr.en.gz",
            "test_2016_flickr.de.gz",
            "test_2016_flickr.en.gz",
            "test_2017_mscoco.de.gz",
            "test_2018_flickr.fr.gz",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let pair: LanguagePair = "de-en".parse().unwrap();
        assert_eq!(
            available_splits(dir.path(), &pair),
            ["train", "val", "test_2016_flickr", "test_2017_flickr"]
        );
        assert!(check_split(dir.path(), &pair, "test_2017_flickr").is_ok());
        let err = check_split(dir.path(), &pair, "test_2017_mscoco")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no split \"test_2017_mscoco\"")
                && err.ends_with("available: train, val, test_2016_flickr, test_2017_flickr"),
            "{err}"
        );
        let err = check_split(dir.path(), &pair, "test2016")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Multi30k's test sets are"), "{err}");
    }

    #[test]
    fn fifteen_checksums_are_recorded() {
        let sums = checksums();
        assert_eq!(sums.len(), 15);
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
