//! One error type for the native core, mapped onto typed JavaScript errors.
//!
//! napi's promise bridge only carries its own `Status` as `err.code`, so each error crosses the
//! boundary as a message prefixed with `[KDR:<CODE>]`; `ts/errors.ts` parses that prefix and throws
//! the class registered for the code. The codes are a contract with `ts/errors.ts`.

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

    #[error("arrow error: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),

    #[error("delta error: {0}")]
    Delta(#[from] DeltaTableError),

    #[error("staging error: {0}")]
    Staging(String),

    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// The stable code `ts/errors.ts` maps onto an error class.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::TableNotFound { .. } => "TABLE_NOT_FOUND",
            CoreError::UnsupportedTable(_) => "UNSUPPORTED_TABLE",
            CoreError::SchemaMismatch(_) => "SCHEMA_MISMATCH",
            CoreError::CommitConflict { .. } => "COMMIT_CONFLICT",
            CoreError::InvalidArgument(_) => "INVALID_ARGUMENT",
            CoreError::Storage(_) => "STORAGE",
            CoreError::Staging(_) => "STAGING",
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

impl From<CoreError> for napi::Error {
    fn from(err: CoreError) -> Self {
        napi::Error::new(
            napi::Status::GenericFailure,
            format!("[KDR:{}] {}", err.code(), err),
        )
    }
}

impl From<tokio::task::JoinError> for CoreError {
    fn from(err: tokio::task::JoinError) -> Self {
        CoreError::Internal(format!("background task failed: {err}"))
    }
}

impl From<std::io::Error> for CoreError {
    fn from(err: std::io::Error) -> Self {
        CoreError::Storage(err.to_string())
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for CoreError {
    fn from(err: deltalake::datafusion::error::DataFusionError) -> Self {
        CoreError::Internal(format!("planning the write: {err}"))
    }
}

/// Locks state shared with background tasks; a lock poisoned by a panic is an internal error.
pub fn lock<T>(mutex: &Mutex<T>) -> CoreResult<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| {
        CoreError::Internal("a previous native call panicked while holding the stage".into())
    })
}
