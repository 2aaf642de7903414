//! An advisory lock on a run directory, so that one process at a time trains in it.
//!
//! The lock is an OS file lock (`flock`) on `RUN/.lock`, which the kernel releases when its holder
//! exits, however it exits (a kill -9 included); the file also records the holder's pid, host and
//! command, so that a second writer can be told who holds it. On a filesystem shared by several
//! hosts the lock is only as good as that filesystem's locking (NFS v4 and Lustre support it).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// Why a run directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another live process holds the lock.
    #[error(
        "{dir} is in use by {holder}: two processes must not write one run directory; wait for it to finish or choose another --run-dir"
    )]
    Held { dir: PathBuf, holder: String },
    /// The lock is held, but the process it names no longer runs on this host (a lock inherited by a
    /// child process, or a stale lock on a network filesystem).
    #[error(
        "{dir} is locked, but its holder ({holder}) no longer runs on this host: if no seqls process uses {dir}, delete {lock} and start again"
    )]
    Stale {
        dir: PathBuf,
        holder: String,
        lock: PathBuf,
    },
}

/// A held lock on a run directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Who holds a lock, as written into the lock file: `pid host command…`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    pid: u32,
    host: String,
    command: String,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut parts = text.trim().splitn(3, ' ');
        Some(Holder {
            pid: parts.next()?.parse().ok()?,
            host: parts.next()?.to_string(),
            command: parts.next().unwrap_or("").to_string(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "process {} on host {} (`{}`)",
            self.pid, self.host, self.command
        )
    }
}

/// This machine's host name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

impl RunLock {
    /// Takes the lock of `dir` (which must exist) at once, or fails naming the holder.
    pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(match Holder::parse(&text) {
                    Some(h)
                        if h.host == host_name() && !seqls_data::write::process_alive(h.pid) =>
                    {
                        LockError::Stale {
                            dir: dir.to_path_buf(),
                            holder: h.describe(),
                            lock: path.clone(),
                        }
                    }
                    Some(h) => LockError::Held {
                        dir: dir.to_path_buf(),
                        holder: h.describe(),
                    },
                    None => LockError::Held {
                        dir: dir.to_path_buf(),
                        holder: "another process".into(),
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = Holder::me();
        let record = format!("{} {} {}\n", me.pid, me.host, me.command);
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    /// Who holds the lock of `dir` now, if anyone: `Some("process N on host H (`cmd`)")`. Takes and
    /// releases the lock when it is free.
    pub fn holder(dir: &Path) -> Option<String> {
        if !dir.join(LOCK_FILE).exists() {
            return None;
        }
        match RunLock::acquire(dir) {
            Ok(_) => None,
            Err(LockError::Held { holder, .. }) | Err(LockError::Stale { holder, .. }) => {
                Some(holder)
            }
            Err(LockError::Io { .. }) => None,
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_first_holder_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn holder_records_round_trip() {
        let h = Holder {
            pid: 12,
            host: "node7".into(),
            command: "seqls train --alpha 0.1".into(),
        };
        let text = format!("{} {} {}\n", h.pid, h.host, h.command);
        assert_eq!(Holder::parse(&text), Some(h));
        assert_eq!(Holder::parse("garbage"), None);
    }
}
