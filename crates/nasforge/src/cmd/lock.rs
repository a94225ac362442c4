//! One writer per run directory.
//!
//! `search` and `train` hold an exclusive OS lock (`flock`) on `RUN/lock` for as long as they
//! write the run. The kernel releases it when the process ends, however it ends (kill -9
//! included), so a crashed run never leaves a stale lock behind; a second writer is refused
//! with the pid and host of the one that holds it. Readers (`runs`, `status`, `report`,
//! `dashboard`, `export`) never take it: SQLite's WAL mode lets them read while the run writes.

use super::bad_input;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = "lock";

/// The exclusive right to write one run directory; released when dropped or when the process
/// dies.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `dir` (which must exist) for `command`, or refuses with exit code 2
    /// when another process holds it.
    pub fn acquire(dir: &Path, command: &str) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .map(|h| {
                        format!(
                            "`nasforge {}` (pid {} on host {})",
                            h["command"].as_str().unwrap_or("?"),
                            h["pid"],
                            h["host"].as_str().unwrap_or("?")
                        )
                    })
                    .unwrap_or_else(|| "another process".into());
                return bad_input(format!(
                    "{} is being written by {holder}; a run has one writer. Wait for it to end \
                     (`nasforge status {}` follows it), stop it, or start a new run in another --run-dir",
                    dir.display(),
                    dir.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        let holder = serde_json::json!({
            "command": command,
            "pid": std::process::id(),
            "host": crate::report::run::host(),
            "since": nasforge_core::study::now(),
        });
        file.set_len(0)
            .and_then(|_| file.write_all(holder.to_string().as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "search").unwrap();
        let err = RunLock::acquire(dir.path(), "search").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("one writer"),
            "{msg}"
        );
        assert!(err.downcast_ref::<super::super::BadInput>().is_some());
        drop(first);
        RunLock::acquire(dir.path(), "search").unwrap();
    }
}
