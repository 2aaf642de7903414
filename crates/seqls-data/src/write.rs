//! Files written whole or not at all: a temporary file `.NAME.PID.tmp` in the same directory, flushed
//! and renamed over the target, with the temporaries of killed writers cleaned up. Every crate writes
//! its files through here.

use crate::error::{DataError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` atomically: a temporary file `.NAME.PID.tmp` in the same directory,
/// flushed to disk, then renamed over `path`. On any failure (a full disk, say) the temporary file is
/// removed and `path` keeps its previous contents. Temporary files of `path` left by processes that no
/// longer run (killed during a write) are removed first.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(contents))
}

/// [`write_atomic`] with the contents produced by `write` (streamed into the temporary file).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = write_temporary(path, write)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::io(path, e)
    })
}

/// Writes several files so that either all of them get their new contents or none does (as far as
/// renames within a directory can: every file is first written in full to its temporary file, and
/// only then are they renamed into place). On failure every temporary file is removed.
pub fn write_all_atomic(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let mut written: Vec<(PathBuf, &Path)> = Vec::new();
    let cleanup = |written: &[(PathBuf, &Path)]| {
        for (tmp, _) in written {
            let _ = std::fs::remove_file(tmp);
        }
    };
    for (path, contents) in files {
        match write_temporary(path, |file| file.write_all(contents)) {
            Ok(tmp) => written.push((tmp, path)),
            Err(e) => {
                cleanup(&written);
                return Err(e);
            }
        }
    }
    for (i, (tmp, path)) in written.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            cleanup(&written[i..]);
            return Err(DataError::io(*path, e));
        }
    }
    Ok(())
}

/// Writes the temporary file `.NAME.PID.tmp` next to `path` (creating the directory, removing stale
/// temporaries of `path` first), flushed to disk; returns its path. On failure it is removed.
fn write_temporary(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale_temporaries(&dir, Some(&name));
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        write(&mut file)?;
        file.flush()?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(DataError::io(&tmp, e))
        }
    }
}

/// The process id in a temporary file name `.NAME.PID.tmp` written by [`write_atomic`], with `NAME`.
fn temporary_owner(file_name: &str) -> Option<(&str, u32)> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (name, pid) = inner.rsplit_once('.')?;
    Some((name, pid.parse().ok()?))
}

/// Whether process `pid` runs on this machine (always `true` where that cannot be told).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes the temporary files of [`write_atomic`] in `dir` (only those of `name` when given) whose
/// writing process no longer runs; returns how many were removed. Errors are ignored: a leftover
/// temporary file is harmless.
pub fn remove_stale_temporaries(dir: &Path, name: Option<&str>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((owner_name, pid)) = file_name.to_str().and_then(temporary_owner) else {
            continue;
        };
        if name.is_some_and(|n| n != owner_name) || process_alive(pid) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes the lines of one side, each followed by `\n`, atomically.
pub fn write_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.bin");
        write_atomic(&path, b"old contents").unwrap();
        // As on a full disk: part of the data is written, then the write fails.
        let err = write_atomic_with(&path, |file| {
            file.write_all(b"new, half")?;
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        })
        .unwrap_err();
        assert!(err.to_string().contains(".checkpoint.bin."), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checkpoint.bin")]);
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        // No process has pid 0 in /proc.
        let dead = dir.path().join(".model.bpk.0.tmp");
        let other = dir.path().join(".log.jsonl.0.tmp");
        std::fs::write(&dead, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        write_atomic(&dir.path().join("model.bpk"), b"m").unwrap();
        assert!(!dead.exists());
        assert!(
            other.exists(),
            "only temporaries of the written name are touched"
        );
        assert_eq!(remove_stale_temporaries(dir.path(), None), 1);
        assert!(!other.exists());
        assert_eq!(temporary_owner(".a.b.12.tmp"), Some(("a.b", 12)));
        assert_eq!(temporary_owner("a.12.tmp"), None);
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_lines(&p, ["a", "b"]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
