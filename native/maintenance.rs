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

/// How a vacuum runs.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct VacuumOptions {
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
    /// Honour a `delta.deletedFileRetentionDuration` shorter than the floor of 7 days.
    pub force: bool,
}

/// What a vacuum removed (or, in a dry run, would remove).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct VacuumResult {
    /// Paths relative to the table's root.
    pub files: Vec<String>,
    pub dry_run: bool,
    /// The retention applied: files younger than this stay.
    pub retention_hours: f64,
}

/// Below this a vacuum may remove the files of a reader's still-open snapshot, or of a writer's
/// commit still in flight; it takes `force`.
const RETENTION_FLOOR_HOURS: f64 = 7.0 * 24.0;

/// Removes the table's data files no version still references (removed by a MERGE, a compaction
/// or an overwrite) and the orphans of writes that never committed (a flush killed before its
/// commit), once older than the table's `delta.deletedFileRetentionDuration` and never younger
/// than 7 days unless forced.
pub async fn vacuum(target: &Target, options: VacuumOptions) -> CoreResult<VacuumResult> {
    use deltalake::operations::vacuum::VacuumMode;
    use deltalake::table::config::TablePropertiesExt;

    let table = target.refresh("reading the table").await?;
    let table_hours = table
        .snapshot()?
        .table_config()
        .deleted_file_retention_duration()
        .as_secs_f64()
        / 3600.0;
    let hours = if options.force {
        table_hours
    } else {
        table_hours.max(RETENTION_FLOOR_HOURS)
    };
    let retention = chrono::Duration::milliseconds((hours * 3_600_000.0) as i64);
    let (_, metrics) = with_retry(target.retry, "vacuuming the table", || async {
        Ok(table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(options.dry_run)
            .await?)
    })
    .await?;
    let mut files = metrics.files_deleted;
    files.sort();
    Ok(VacuumResult {
        files,
        dry_run: options.dry_run,
        retention_hours: hours,
    })
}
