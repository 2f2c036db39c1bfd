//! Compaction of a day's small files: which days have them (from the log, no data read), and
//! one day's bin-packing into target-size files in a commit of its own.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use deltalake::{FilterOp, FilterValue};
use napi_derive::napi;

use crate::error::{CoreError, CoreResult};
use crate::retry::with_commit_retry;
use crate::target::Target;
use crate::write_settings::writer_properties;

/// A day's data files at the newest version.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct DayFiles {
    /// The partition value, `YYYY-MM-DD`.
    pub day: String,
    pub files: u32,
    /// Files no larger than the target size: what a compaction would bin-pack.
    pub small_files: u32,
    pub bytes: f64,
}

/// How a day is compacted.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// The size compacted files aim at; files larger are left alone.
    pub target_size_bytes: f64,
    /// Bounds the Parquet writer's row groups as a flush's does (`buffer.max_memory`).
    pub memory_budget_bytes: Option<f64>,
    /// Attempts when ingestion (a MERGE or a late row of the day) changed the day first.
    pub max_attempts: u32,
}

/// What one day's compaction did; all zero when the day had nothing to compact (another
/// instance did it first, or it has at most one small file).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct OptimizeResult {
    pub day: String,
    pub files_removed: u32,
    pub files_added: u32,
    /// Bytes of the files rewritten.
    pub bytes_rewritten: f64,
    /// The version committed; absent when nothing was.
    pub version: Option<i64>,
}

/// Every day's file counts, oldest first, from the newest version's log.
pub async fn day_files(
    target: &Target,
    column: &str,
    target_size_bytes: f64,
) -> CoreResult<Vec<DayFiles>> {
    let table = target.refresh("reading the table").await?;
    let state = table.snapshot()?;
    let mut days: BTreeMap<String, DayFiles> = BTreeMap::new();
    for file in state.log_data().iter() {
        let values = file.partition_values_map();
        let Some(Some(day)) = values.get(column) else {
            continue;
        };
        let entry = days.entry(day.clone()).or_insert_with(|| DayFiles {
            day: day.clone(),
            files: 0,
            small_files: 0,
            bytes: 0.0,
        });
        entry.files += 1;
        if (file.size() as f64) <= target_size_bytes {
            entry.small_files += 1;
        }
        entry.bytes += file.size() as f64;
    }
    Ok(days.into_values().collect())
}

/// Bin-packs the day's files up to the target size and commits the rewrite (`dataChange=false`:
/// readers and our txn positions are unaffected) in one commit. Each attempt plans on the newest
/// version, so a day another instance compacted meanwhile is found with nothing to do.
pub async fn optimize_day(
    target: &Target,
    column: &str,
    day: &str,
    options: &OptimizeOptions,
) -> CoreResult<OptimizeResult> {
    let target_size =
        NonZeroU64::new(options.target_size_bytes.max(1.0) as u64).ok_or_else(|| {
            CoreError::InvalidArgument("the target file size must be positive".into())
        })?;
    with_commit_retry(
        target.retry,
        "compacting a day",
        options.max_attempts,
        |_| attempt(target, column, day, target_size, options),
    )
    .await
}

async fn attempt(
    target: &Target,
    column: &str,
    day: &str,
    target_size: NonZeroU64,
    options: &OptimizeOptions,
) -> CoreResult<OptimizeResult> {
    let table = target.refresh("reading the table").await?;
    let schema = target.arrow_schema()?;
    let writer = writer_properties(
        options.memory_budget_bytes.map(|b| b as usize),
        Some(&schema),
    );
    let filters = [(column, FilterOp::Eq, FilterValue::Scalar(day))];
    let (table, metrics) = table
        .optimize()
        .with_filters(&filters)
        .with_target_size(target_size)
        .with_writer_properties(writer)
        // One bin at a time: a bin holds up to a target size of rows in flight, beside ingestion.
        .with_max_concurrent_tasks(1)
        .await?;
    let committed = metrics.num_files_removed > 0;
    Ok(OptimizeResult {
        day: day.to_string(),
        files_removed: metrics.num_files_removed as u32,
        files_added: metrics.num_files_added as u32,
        bytes_rewritten: metrics.files_removed.total_size as f64,
        version: committed.then(|| table.version().map_or(-1, |v| v as i64)),
    })
}
