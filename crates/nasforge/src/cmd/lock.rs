//! One writer per run directory.
//!
//! `search` and `train` hold an exclusive OS lock (`flock`) on `RUN/lock` for as long as they
//! write the run. The kernel releases it when the process ends, however it ends (kill -9
//! included), so a crashed run never leaves a stale lock behind; a second writer is refused
//! with the pid and host of the one that holds it. Readers (`runs`, `status`, `report`,
//! `dashboard`, `export`) never take it: SQLite's WAL mode lets them read while the run writes.
//!
//! The workers a `search --workers N` starts write the run too: the lock file names a token
//! that the search hands its workers, and a worker starts only while the search holds the
//! lock with that token ([`RunLock::admits`]).

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
    token: String,
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
        let since = nasforge_core::study::now();
        let token = format!("{:x}-{:x}", std::process::id(), since.to_bits());
        let holder = serde_json::json!({
            "command": command,
            "pid": std::process::id(),
            "host": crate::report::run::host(),
            "since": since,
            "token": token,
        });
        file.set_len(0)
            .and_then(|_| file.write_all(holder.to_string().as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(RunLock { _file: file, token })
    }

    /// What this lock's holder hands the workers it starts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a worker holding `token` may write `dir`: the process that wrote that token
    /// into the lock file still holds the lock. Refuses with exit code 2 otherwise.
    pub fn admits(dir: &Path, token: &str) -> Result<()> {
        let path = dir.join(LOCK_FILE);
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let held = matches!(file.try_lock(), Err(TryLockError::WouldBlock));
        let written = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|h| h["token"].as_str().map(str::to_string));
        if held && written.as_deref() == Some(token) {
            return Ok(());
        }
        bad_input(format!(
            "this worker belongs to a `nasforge search --workers` of {} that is no longer running; \
             continue the run with `nasforge search --resume --run-dir {}`",
            dir.display(),
            dir.display()
        ))
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
        let token = first.token().to_string();
        RunLock::admits(dir.path(), &token).unwrap();
        assert!(RunLock::admits(dir.path(), "another").is_err());
        drop(first);
        assert!(
            RunLock::admits(dir.path(), &token).is_err(),
            "not once the search let go"
        );
        RunLock::acquire(dir.path(), "search").unwrap();
    }
}
