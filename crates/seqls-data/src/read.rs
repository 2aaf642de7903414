//! Readers for parallel text: two line-aligned files (plain or `.gz`) or one TSV file (`src<TAB>tgt`).
//!
//! Lines are UTF-8; `\r\n` endings and a missing final newline are accepted. Pairs with an empty side are
//! skipped and counted in [`ReadStats::skipped_empty`].

use crate::error::{DataError, Result};
use std::io::Read;
use std::path::Path;

/// One source sentence and its translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub src: String,
    pub tgt: String,
}

/// Counts of what a reader kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadStats {
    /// Lines read (pairs before any filtering).
    pub lines: usize,
    /// Pairs dropped because one side is empty (after trimming).
    pub skipped_empty: usize,
}

/// A parallel corpus as read from disk.
#[derive(Debug, Clone, Default)]
pub struct ParallelText {
    pub pairs: Vec<Pair>,
    pub stats: ReadStats,
}

/// Reads a whole file into bytes, decompressing it when the name ends in `.gz`.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    let is_gz = path.extension().is_some_and(|e| e == "gz");
    let result = if is_gz {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    };
    result.map_err(|e| DataError::io(path, e))?;
    Ok(bytes)
}

/// Reads the lines of a UTF-8 text file (`.gz` accepted) without their `\n` / `\r\n` endings.
///
/// Invalid UTF-8 is an error naming the 1-based line.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    split_lines(&read_bytes(path)?, path)
}

/// Splits UTF-8 text into lines without their `\n` / `\r\n` endings (a missing final newline is
/// accepted). Invalid UTF-8 is an error naming `origin` (a path, or e.g. `<stdin>`) and the 1-based line.
pub fn split_lines(bytes: &[u8], origin: &Path) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut body: &[u8] = bytes;
    if body.last() == Some(&b'\n') {
        body = &body[..body.len() - 1];
    }
    if bytes.is_empty() {
        return Ok(lines);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| DataError::Parse {
            path: origin.to_path_buf(),
            line: i + 1,
            reason: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
        })?;
        lines.push(line.to_string());
    }
    Ok(lines)
}

fn collect_pairs(sides: impl Iterator<Item = (String, String)>) -> ParallelText {
    let mut text = ParallelText::default();
    for (src, tgt) in sides {
        text.stats.lines += 1;
        let (src, tgt) = (src.trim().to_string(), tgt.trim().to_string());
        if src.is_empty() || tgt.is_empty() {
            text.stats.skipped_empty += 1;
        } else {
            text.pairs.push(Pair { src, tgt });
        }
    }
    text
}

/// Reads two line-aligned files. Different line counts are an error that states both counts.
pub fn read_parallel(src_path: &Path, tgt_path: &Path) -> Result<ParallelText> {
    let src = read_lines(src_path)?;
    let tgt = read_lines(tgt_path)?;
    if src.len() != tgt.len() {
        return Err(DataError::LineCountMismatch {
            src_path: src_path.to_path_buf(),
            src_lines: src.len(),
            tgt_path: tgt_path.to_path_buf(),
            tgt_lines: tgt.len(),
        });
    }
    Ok(collect_pairs(src.into_iter().zip(tgt)))
}

/// Reads a TSV file whose every line is `source<TAB>target` (exactly one tab).
pub fn read_tsv(path: &Path) -> Result<ParallelText> {
    let lines = read_lines(path)?;
    let mut sides = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let tabs = line.matches('\t').count();
        if tabs != 1 {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("expected exactly one tab (source<TAB>target), found {tabs}"),
            });
        }
        // Cannot fail: the line was checked above to hold exactly one tab.
        let (src, tgt) = line.split_once('\t').expect("one tab");
        sides.push((src.to_string(), tgt.to_string()));
    }
    Ok(collect_pairs(sides.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    #[test]
    fn split_lines_names_the_origin_and_line_of_bad_utf8() {
        let err = split_lines(b"ok\r\nfine\n\xff\n", Path::new("<stdin>")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<stdin>:3: invalid UTF-8 at byte 0 of the line"
        );
        assert_eq!(
            split_lines(b"a\r\nb", Path::new("x")).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn crlf_and_missing_final_newline_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), "a.src", b"one\r\ntwo\r\nthree");
        let t = write(dir.path(), "a.tgt", b"eins\nzwei\ndrei\n");
        let text = read_parallel(&s, &t).unwrap();
        assert_eq!(text.pairs.len(), 3);
        assert_eq!(
            text.pairs[2],
            Pair {
                src: "three".into(),
                tgt: "drei".into()
            }
        );
    }

    #[test]
    fn empty_sides_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), "a.src", b"one\n\nthree\n");
        let t = write(dir.path(), "a.tgt", b"eins\nzwei\n  \n");
        let text = read_parallel(&s, &t).unwrap();
        assert_eq!(text.pairs.len(), 1);
        assert_eq!(
            text.stats,
            ReadStats {
                lines: 3,
                skipped_empty: 2
            }
        );
    }

    #[test]
    fn line_count_mismatch_names_both_files_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), "a.src", b"one\ntwo\n");
        let t = write(dir.path(), "a.tgt", b"eins\n");
        let msg = read_parallel(&s, &t).unwrap_err().to_string();
        assert!(msg.contains("a.src has 2 lines"), "{msg}");
        assert!(msg.contains("a.tgt has 1 lines"), "{msg}");
    }

    #[test]
    fn invalid_utf8_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let s = write(dir.path(), "bad.src", b"ok\nalso ok\nbad \xff byte\n");
        let msg = read_lines(&s).unwrap_err().to_string();
        assert!(msg.contains("bad.src:3: invalid UTF-8"), "{msg}");
    }

    #[test]
    fn tsv_without_exactly_one_tab_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.tsv", b"a\tb\nno tab here\n");
        let msg = read_tsv(&p).unwrap_err().to_string();
        assert!(msg.contains("c.tsv:2: expected exactly one tab"), "{msg}");
        let p = write(dir.path(), "d.tsv", b"a\tb\tc\n");
        let msg = read_tsv(&p).unwrap_err().to_string();
        assert!(msg.contains("d.tsv:1:") && msg.contains("found 2"), "{msg}");
    }

    #[test]
    fn tsv_and_gz_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c.tsv", b"a b\tx y\r\nc\td");
        let text = read_tsv(&p).unwrap();
        assert_eq!(
            text.pairs[0],
            Pair {
                src: "a b".into(),
                tgt: "x y".into()
            }
        );
        assert_eq!(
            text.pairs[1],
            Pair {
                src: "c".into(),
                tgt: "d".into()
            }
        );

        let gz = dir.path().join("x.de.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all("Ein Hund läuft.\nZwei Katzen".as_bytes())
            .unwrap();
        enc.finish().unwrap();
        assert_eq!(
            read_lines(&gz).unwrap(),
            vec!["Ein Hund läuft.", "Zwei Katzen"]
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let msg = read_lines(Path::new("/nonexistent/x.de"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("/nonexistent/x.de:"), "{msg}");
    }
}
