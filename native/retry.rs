//! Retrying transient storage failures (timeouts, 5xx and throttling the object store's own
//! retries gave up on, a dropped connection on a commit, a full local disk) with bounded,
//! exponential backoff.
//!
//! object_store already retries idempotent requests a few times, but not a conditional PUT (the
//! commit file) that timed out or lost its connection, and it gives up within seconds to
//! minutes. A commit that failed that way may have landed: every retry starts from the table's
//! newest version and its recorded positions, so a commit that did land is found and not
//! repeated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use delta_kernel::Error as KernelError;
use deltalake::kernel::transaction::TransactionError;
use deltalake::{DeltaTableError, ObjectStoreError};
use napi_derive::napi;

use crate::error::{CoreError, CoreResult};

/// How long and how often transient storage failures are retried (`delta.storage_retry`).
#[napi(object)]
#[derive(Clone, Copy)]
pub struct StorageRetryOptions {
    /// Give up once this many seconds have passed since the first failure of one operation.
    pub budget_seconds: f64,
    /// The first wait; each further one doubles, up to `maxBackoffSeconds`.
    pub initial_backoff_seconds: f64,
    pub max_backoff_seconds: f64,
}

/// A validated [`StorageRetryOptions`].
#[derive(Clone, Copy, Debug)]
pub struct StorageRetry {
    budget: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl From<StorageRetryOptions> for StorageRetry {
    fn from(o: StorageRetryOptions) -> Self {
        let seconds =
            |s: f64| Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 });
        Self {
            budget: seconds(o.budget_seconds),
            initial_backoff: seconds(o.initial_backoff_seconds),
            max_backoff: seconds(o.max_backoff_seconds).max(seconds(o.initial_backoff_seconds)),
        }
    }
}

/// Transient storage failures retried since the process started (all tables).
pub static STORAGE_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Transient storage failures retried since the process started, for the metrics.
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn native_storage_retries() -> f64 {
    STORAGE_RETRIES.load(Ordering::Relaxed) as f64
}

/// What to do about a failed storage operation.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Another writer committed first: try again on the newest version.
    Conflict,
    /// The store or the disk failed in a way that may pass: wait and try again.
    Transient,
    /// Retrying cannot help (a missing table, denied access, a bug, bad data).
    Final,
}

/// How long to wait before another attempt after a commit conflict.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)))
}

/// Another writer committed the version first, or changed what this commit read.
fn is_conflict(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::VersionAlreadyExists(_)
                    | TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_),
            }
    )
}

/// Classifies a delta-rs error.
pub fn classify(err: &DeltaTableError) -> Failure {
    if is_conflict(err) {
        return Failure::Conflict;
    }
    let transient = match err {
        DeltaTableError::ObjectStore { source } => store_transient(source),
        DeltaTableError::Io { source } => io_transient(source),
        DeltaTableError::KernelError(source) => kernel_transient(source),
        DeltaTableError::Transaction {
            source: TransactionError::LogStoreError { .. },
        } => true,
        DeltaTableError::Generic(text) => flattened_store_failure(text),
        other => chain_transient(other),
    };
    if transient {
        Failure::Transient
    } else {
        Failure::Final
    }
}

/// Classifies one of our errors: only delta-rs's storage failures can be transient.
pub fn classify_core(err: &CoreError) -> Failure {
    match err {
        CoreError::Delta(source) => classify(source),
        _ => Failure::Final,
    }
}

fn store_transient(err: &ObjectStoreError) -> bool {
    // Generic is how object_store reports HTTP failures, timeouts and local I/O errors; the
    // others (NotFound, PermissionDenied, Unauthenticated, a bad path or key) will not pass.
    match err {
        // A Generic without a known cause underneath (an HTTP status, a timeout) may pass.
        ObjectStoreError::Generic { source, .. } => {
            storage_cause(Some(source.as_ref())).is_none_or(|cause| cause.transient())
        }
        ObjectStoreError::JoinError { .. } => true,
        _ => false,
    }
}

fn io_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    !matches!(
        err.kind(),
        K::NotFound | K::PermissionDenied | K::InvalidInput | K::InvalidData | K::Unsupported
    )
}

fn kernel_transient(err: &KernelError) -> bool {
    match err {
        KernelError::Backtraced { source, .. } => kernel_transient(source),
        KernelError::ObjectStore(source) => store_transient(source),
        KernelError::IOError(source) => io_transient(source),
        _ => false,
    }
}

/// delta-rs turns some kernel errors into text (`Generic(e.to_string())`, e.g. listing the log
/// while loading a snapshot); the kernel's text of an object store error that can pass is
/// recognised there, the others (not found, denied) stay final.
fn flattened_store_failure(text: &str) -> bool {
    text.contains("Error interacting with object store: Generic ")
}

/// The storage failure found first down a cause chain.
enum StorageCause<'a> {
    Store(&'a ObjectStoreError),
    Io(&'a std::io::Error),
}

impl StorageCause<'_> {
    fn transient(&self) -> bool {
        match self {
            StorageCause::Store(store) => store_transient(store),
            StorageCause::Io(io) => io_transient(io),
        }
    }
}

/// The first object store or I/O error at or below `first` in its cause chain.
fn storage_cause<'a>(
    first: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<StorageCause<'a>> {
    let mut next = first;
    while let Some(e) = next {
        if let Some(store) = e.downcast_ref::<ObjectStoreError>() {
            return Some(StorageCause::Store(store));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(StorageCause::Io(io));
        }
        next = e.source();
    }
    None
}

/// Errors that wrap a store failure further down (a Parquet write through the store).
fn chain_transient(err: &DeltaTableError) -> bool {
    storage_cause(std::error::Error::source(err)).is_some_and(|cause| cause.transient())
}

/// The retries of one operation: call [`Retrying::wait`] after each transient failure.
pub struct Retrying {
    policy: StorageRetry,
    what: &'static str,
    first_failure: Option<Instant>,
    failures: u32,
}

impl Retrying {
    /// `what`: the operation, for the log and the final error (e.g. "commit").
    pub fn new(policy: StorageRetry, what: &'static str) -> Self {
        Self {
            policy,
            what,
            first_failure: None,
            failures: 0,
        }
    }

    /// Waits before the next attempt, or returns the final error once the budget is spent.
    pub async fn wait(&mut self, reason: String) -> CoreResult<()> {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        self.failures += 1;
        let elapsed = first.elapsed();
        let pause = self.backoff();
        if elapsed + pause > self.policy.budget {
            return Err(CoreError::StorageUnavailable {
                operation: self.what,
                failures: self.failures,
                seconds: elapsed.as_secs_f64(),
                reason,
            });
        }
        STORAGE_RETRIES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "kafka_delta_rust::storage",
            operation = self.what,
            failures = self.failures,
            retry_in_ms = pause.as_millis() as u64,
            error = %reason,
            "storage failure, retrying"
        );
        tokio::time::sleep(pause).await;
        Ok(())
    }

    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(20);
        self.policy
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.policy.max_backoff)
    }
}

/// Runs `operation` until it succeeds, fails for good, or the budget runs out.
pub async fn with_retry<T, F, Fut>(
    policy: StorageRetry,
    what: &'static str,
    mut operation: F,
) -> CoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CoreResult<T>>,
{
    let mut retrying = Retrying::new(policy, what);
    loop {
        match operation().await {
            Err(err) if classify_core(&err) == Failure::Transient => {
                retrying.wait(err.to_string()).await?
            }
            other => return other,
        }
    }
}

/// Runs a commit's `attempt` (given its number, from 1) until it lands: a conflict (another
/// writer committed first) is tried again on the newest version up to `max_attempts` times, then
/// reported as `COMMIT_CONFLICT`; transient storage failures are retried within the budget.
pub async fn with_commit_retry<T, F, Fut>(
    policy: StorageRetry,
    what: &'static str,
    max_attempts: u32,
    mut attempt: F,
) -> CoreResult<T>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = CoreResult<T>>,
{
    let max_attempts = max_attempts.max(1);
    let mut retrying = Retrying::new(policy, what);
    let mut conflicts = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let err = match attempt(attempts).await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        match classify_core(&err) {
            Failure::Conflict if conflicts + 1 < max_attempts => {
                conflicts += 1;
                tokio::time::sleep(backoff(conflicts)).await;
            }
            Failure::Conflict => {
                return Err(CoreError::CommitConflict {
                    attempts: conflicts + 1,
                    reason: err.to_string(),
                })
            }
            Failure::Transient => retrying.wait(err.to_string()).await?,
            Failure::Final => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> DeltaTableError {
        DeltaTableError::ObjectStore {
            source: ObjectStoreError::Generic {
                store: "S3",
                source: text.to_string().into(),
            },
        }
    }

    #[test]
    fn store_failures_are_transient_and_missing_or_denied_are_not() {
        assert_eq!(classify(&generic("connection reset")), Failure::Transient);
        let denied = DeltaTableError::ObjectStore {
            source: ObjectStoreError::PermissionDenied {
                path: "t".into(),
                source: "no".into(),
            },
        };
        assert_eq!(classify(&denied), Failure::Final);
        let kernel =
            DeltaTableError::KernelError(KernelError::ObjectStore(ObjectStoreError::Generic {
                store: "S3",
                source: "503".to_string().into(),
            }));
        assert_eq!(classify(&kernel), Failure::Transient);
        let flattened = DeltaTableError::Generic(format!(
            "Error interacting with object store: {}",
            ObjectStoreError::Generic {
                store: "S3",
                source: "503 Slow Down".to_string().into(),
            }
        ));
        assert_eq!(classify(&flattened), Failure::Transient);
        let missing = DeltaTableError::Generic(format!(
            "Error interacting with object store: {}",
            ObjectStoreError::NotFound {
                path: "t/_delta_log".into(),
                source: "gone".into(),
            }
        ));
        assert_eq!(classify(&missing), Failure::Final);
        assert_eq!(
            classify(&DeltaTableError::VersionAlreadyExists(3)),
            Failure::Conflict
        );
        assert_eq!(
            classify(&DeltaTableError::NotATable("x".into())),
            Failure::Final
        );
    }

    #[test]
    fn a_full_disk_is_transient_a_denied_file_is_not() {
        let full = DeltaTableError::Io {
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(classify(&full), Failure::Transient);
        let denied = DeltaTableError::Io {
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(classify(&denied), Failure::Final);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = StorageRetry::from(StorageRetryOptions {
            budget_seconds: 60.0,
            initial_backoff_seconds: 1.0,
            max_backoff_seconds: 4.0,
        });
        let mut retrying = Retrying::new(policy, "commit");
        let mut waits = Vec::new();
        for failures in 1..=5 {
            retrying.failures = failures;
            waits.push(retrying.backoff().as_secs());
        }
        assert_eq!(waits, vec![1, 2, 4, 4, 4]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_budget_ends_the_retries_with_a_final_error() {
        let policy = StorageRetry::from(StorageRetryOptions {
            budget_seconds: 0.1,
            initial_backoff_seconds: 0.01,
            max_backoff_seconds: 0.04,
        });
        let started = Instant::now();
        let err = with_retry(policy, "commit", || async {
            Err::<(), _>(CoreError::Delta(generic("503 Slow Down")))
        })
        .await
        .err()
        .map(|e| (e.code(), e.to_string()));
        let (code, text) = err.unwrap_or_default();
        assert_eq!(code, "STORAGE_UNAVAILABLE");
        assert!(
            text.contains("commit") && text.contains("503 Slow Down"),
            "{text}"
        );
        assert!(started.elapsed() <= Duration::from_millis(100));
    }

    fn conflict() -> CoreError {
        CoreError::Delta(DeltaTableError::VersionAlreadyExists(7))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn conflicts_are_retried_up_to_the_attempts_then_reported_as_a_conflict() {
        let policy = StorageRetry::from(StorageRetryOptions {
            budget_seconds: 1.0,
            initial_backoff_seconds: 0.01,
            max_backoff_seconds: 0.01,
        });
        // Two conflicts, then the third attempt lands on the newest version.
        let landed = with_commit_retry(policy, "compaction", 3, |attempt| async move {
            if attempt < 3 {
                Err(conflict())
            } else {
                Ok(attempt)
            }
        })
        .await;
        assert_eq!(landed.ok(), Some(3));
        let mut tried = 0;
        let exhausted = with_commit_retry(policy, "compaction", 3, |_| {
            tried += 1;
            async { Err::<(), _>(conflict()) }
        })
        .await;
        assert_eq!(tried, 3);
        assert!(
            matches!(
                exhausted,
                Err(CoreError::CommitConflict { attempts: 3, .. })
            ),
            "{exhausted:?}"
        );
        // A failure retrying cannot help ends at once.
        let mut tried = 0;
        let missing = with_commit_retry(policy, "compaction", 3, |_| {
            tried += 1;
            async { Err::<(), _>(CoreError::Delta(DeltaTableError::NotATable("t".into()))) }
        })
        .await;
        assert_eq!(tried, 1);
        assert!(matches!(missing, Err(CoreError::Delta(_))), "{missing:?}");
    }
}
