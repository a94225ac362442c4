//! The one error type of `nasforge-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `nasforge-core`. Each message says what was wrong, where,
/// and what to do, because the CLI shows it to the user as it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user gave something we cannot use (an arch string, a parameter, a column name...).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The study database failed.
    #[error("study database: {0}")]
    Storage(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
