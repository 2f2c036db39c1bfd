//! One error type for the native core. Each variant has a stable code; `js_error.rs` hands it
//! to JavaScript as the error's `code` (with the cause chain), and `ts/errors.ts` maps each code
//! onto a typed class. The codes are a contract with `ts/errors.ts` (a test checks both lists).

use std::sync::{Mutex, MutexGuard};

use deltalake::DeltaTableError;

/// Every failure the native core reports to JavaScript.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("table not found at {uri}: {reason}")]
    TableNotFound { uri: String, reason: String },

    #[error("{0}")]
    UnsupportedTable(String),

    #[error("{0}")]
    SchemaMismatch(String),

    #[error("commit still conflicting after {attempts} attempt(s): {reason}")]
    CommitConflict { attempts: u32, reason: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("storage error: {0}")]
    Storage(String),

    #[error("{operation} failed {failures} time(s) over {seconds:.1} s, giving up (delta.storage_retry.budget): {reason}")]
    StorageUnavailable {
        operation: &'static str,
        failures: u32,
        seconds: f64,
        reason: String,
    },

    #[error("arrow error: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),

    #[error("delta error: {0}")]
    Delta(#[from] DeltaTableError),

    #[error("staging error: {0}")]
    Staging(String),

    /// A staging file or directory operation failed; the I/O error is kept to tell a full disk.
    #[error("staging error: {context}: {source}")]
    StagingIo {
        context: String,
        source: std::io::Error,
    },

    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Every code [`CoreError::code`] gives.
    pub const CODES: &'static [&'static str] = &[
        "TABLE_NOT_FOUND",
        "UNSUPPORTED_TABLE",
        "SCHEMA_MISMATCH",
        "COMMIT_CONFLICT",
        "INVALID_ARGUMENT",
        "STORAGE",
        "STORAGE_UNAVAILABLE",
        "STAGING",
        "INTERNAL",
    ];

    /// The stable code `ts/errors.ts` maps onto an error class.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::TableNotFound { .. } => "TABLE_NOT_FOUND",
            CoreError::UnsupportedTable(_) => "UNSUPPORTED_TABLE",
            CoreError::SchemaMismatch(_) => "SCHEMA_MISMATCH",
            CoreError::CommitConflict { .. } => "COMMIT_CONFLICT",
            CoreError::InvalidArgument(_) => "INVALID_ARGUMENT",
            CoreError::Storage(_) => "STORAGE",
            CoreError::StorageUnavailable { .. } => "STORAGE_UNAVAILABLE",
            CoreError::Staging(_) | CoreError::StagingIo { .. } => "STAGING",
            CoreError::Io(_) => "STORAGE",
            CoreError::Arrow(_) | CoreError::Internal(_) => "INTERNAL",
            CoreError::Delta(err) => delta_error_code(err),
        }
    }
}

fn delta_error_code(err: &DeltaTableError) -> &'static str {
    match err {
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => {
            "TABLE_NOT_FOUND"
        }
        DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. } => "STORAGE",
        DeltaTableError::SchemaMismatch { .. } => "SCHEMA_MISMATCH",
        DeltaTableError::Transaction { .. } | DeltaTableError::VersionAlreadyExists(_) => {
            "COMMIT_CONFLICT"
        }
        _ => "INTERNAL",
    }
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<tokio::task::JoinError> for CoreError {
    fn from(err: tokio::task::JoinError) -> Self {
        CoreError::Internal(format!("background task failed: {err}"))
    }
}

impl CoreError {
    /// Whether a local disk ran out of space (or quota): a state that passes when space
    /// returns, unlike other I/O failures.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            CoreError::Io(e) | CoreError::StagingIo { source: e, .. } => Some(e),
            CoreError::Arrow(deltalake::arrow::error::ArrowError::IoError(_, e)) => Some(e),
            _ => None,
        };
        io.is_some_and(is_disk_full)
    }
}

/// Whether an I/O error says the disk (or the user's quota) is full.
pub fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            err.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

impl From<deltalake::datafusion::error::DataFusionError> for CoreError {
    fn from(err: deltalake::datafusion::error::DataFusionError) -> Self {
        CoreError::Internal(format!("planning the write: {err}"))
    }
}

/// Runs blocking work (decoding, file I/O) on tokio's blocking pool.
pub async fn off_thread<T, F>(work: F) -> CoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}

/// Locks state shared with background tasks; a lock poisoned by a panic is an internal error.
pub fn lock<T>(mutex: &Mutex<T>) -> CoreResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| {
        CoreError::Internal("a previous native call panicked while holding the stage".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_code() {
        let io = || std::io::Error::from(std::io::ErrorKind::Other);
        let samples = [
            CoreError::TableNotFound {
                uri: "t".into(),
                reason: "r".into(),
            },
            CoreError::UnsupportedTable("x".into()),
            CoreError::SchemaMismatch("x".into()),
            CoreError::CommitConflict {
                attempts: 1,
                reason: "r".into(),
            },
            CoreError::InvalidArgument("x".into()),
            CoreError::Storage("x".into()),
            CoreError::StorageUnavailable {
                operation: "commit",
                failures: 1,
                seconds: 1.0,
                reason: "r".into(),
            },
            CoreError::Arrow(deltalake::arrow::error::ArrowError::ComputeError(
                "x".into(),
            )),
            CoreError::Delta(DeltaTableError::NotATable("x".into())),
            CoreError::Delta(DeltaTableError::Generic("x".into())),
            CoreError::Staging("x".into()),
            CoreError::StagingIo {
                context: "c".into(),
                source: io(),
            },
            CoreError::Io(io()),
            CoreError::Internal("x".into()),
        ];
        let mut seen: Vec<&str> = samples.iter().map(CoreError::code).collect();
        for code in &seen {
            assert!(CoreError::CODES.contains(code), "{code} is not in CODES");
        }
        seen.sort_unstable();
        seen.dedup();
        let mut listed = CoreError::CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(seen, listed, "every listed code is given by some variant");
    }
}
