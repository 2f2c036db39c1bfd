//! Table maintenance an operator schedules: a checkpoint of the newest version, then the
//! cleanup of the log it makes expendable.

use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use napi_derive::napi;

use crate::error::CoreResult;
use crate::retry::with_retry;
use crate::target::Target;

/// What a checkpoint did.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct CheckpointResult {
    /// The version checkpointed: the table's newest.
    pub version: i64,
    /// JSON commits (and older checkpoints) removed: those before the checkpoint and older than
    /// the table's `delta.logRetentionDuration` (30 days unless set).
    pub log_files_removed: u32,
}

/// Writes a checkpoint of the newest version (its txn actions included: every partition's
/// position survives the cleanup), then removes the expired log files. Both are safe beside
/// running writers: a checkpoint only summarizes a committed version, and the cleanup keeps
/// every file after the newest checkpoint.
pub async fn checkpoint(target: &Target) -> CoreResult<CheckpointResult> {
    let table = target.refresh("reading the table").await?;
    with_retry(target.retry, "writing a checkpoint", || async {
        create_checkpoint(&table, None).await?;
        Ok(())
    })
    .await?;
    let removed = with_retry(target.retry, "cleaning up the log", || async {
        Ok(cleanup_metadata(&table, None).await?)
    })
    .await?;
    Ok(CheckpointResult {
        version: table.version().map_or(-1, |v| v as i64),
        log_files_removed: removed as u32,
    })
}
