//! Commits: a segment's rows (consolidated, then appended or merged) or its dead letters, and a
//! txn action per topic-partition, in one Delta transaction, so the log holds data and Kafka
//! positions together or neither.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deltalake::arrow::array::{BooleanArray, Int32Array, Int64Array, RecordBatch, UInt16Array};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::Transaction;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use napi_derive::napi;

use crate::decode::{OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN};
use crate::dedup::{dedup, DedupOptions, DedupSpec, DedupStrategy};
use crate::error::{CoreError, CoreResult};
use crate::merge::{merge_rows, MergeSpec, MergeStats};
use crate::segment::{column, SegmentData};
use crate::spill::PartitionKey;
use crate::spill_read::SegmentPart;
use crate::stage::lock;

/// The txn application id that records one topic-partition's position.
#[napi(object)]
pub struct PartitionAppId {
    pub topic_index: u32,
    pub partition: i32,
    pub app_id: String,
}

/// What a commit did.
#[napi(object)]
pub struct CommitResult {
    /// The table version committed; absent when the table already held everything.
    pub version: Option<i64>,
    /// Rows written by this commit.
    pub rows_written: u32,
    /// Rows left out because the table already held them (a replay after a crash, or another
    /// instance that committed them first).
    pub rows_skipped: u32,
    /// Commit attempts made (1 without conflicts).
    pub attempts: u32,
    /// Rows folded into another row with the same key, or dropped as its duplicates.
    pub rows_deduplicated: u32,
    /// What the MERGE did, in MERGE mode.
    pub merge: Option<MergeStats>,
}

/// How rows are merged in MERGE mode.
#[napi(object)]
#[derive(Clone)]
pub struct MergeOptions {
    /// The columns matching incoming rows to table rows (within a day partition).
    pub keys: Vec<String>,
    /// The day partition column; the merge reads only the days present in the segment.
    pub partition_column: String,
    /// SQL predicate over the incoming row's columns: matching rows delete the table's row.
    pub delete_when: Option<String>,
}

/// How a segment is committed.
#[napi(object)]
pub struct CommitOptions {
    pub part: CommitPart,
    /// Attempts before a commit conflict is reported (at least 1).
    pub max_attempts: u32,
    /// Consolidation per day before writing; absent: every row is written.
    pub dedup: Option<DedupOptions>,
    /// MERGE into the table instead of appending.
    pub merge: Option<MergeOptions>,
}

/// Which part of a segment a commit writes.
#[napi(string_enum)]
#[derive(Clone, Copy)]
pub enum CommitPart {
    /// The rows, into the target table.
    #[napi(value = "rows")]
    Rows,
    /// The dead letters, into the dead-letter table.
    #[napi(value = "dead_letters")]
    DeadLetters,
}

/// Reads the recorded version of each application id.
pub async fn read_txn_versions(
    table: &DeltaTable,
    app_ids: &[String],
) -> CoreResult<HashMap<String, i64>> {
    let state = table.snapshot()?;
    let log_store = table.log_store();
    let mut versions = HashMap::with_capacity(app_ids.len());
    for app_id in app_ids {
        if let Some(version) = state
            .transaction_version(log_store.as_ref(), app_id)
            .await?
        {
            versions.insert(app_id.clone(), version);
        }
    }
    Ok(versions)
}

fn is_conflict(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::Transaction { .. } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// Commits one part of a segment, retrying conflicts against the table's newest version.
pub async fn commit_segment(
    table: Arc<Mutex<DeltaTable>>,
    segment: Arc<Mutex<Option<SegmentData>>>,
    app_ids: Vec<PartitionAppId>,
    options: CommitOptions,
) -> CoreResult<CommitResult> {
    let max_attempts = options.max_attempts.max(1);
    let part = options.part;
    let (source, positions) = {
        let guard = lock(&segment)?;
        let data = guard
            .as_ref()
            .ok_or_else(|| CoreError::InvalidArgument("the segment was released".into()))?;
        let source = match options.part {
            CommitPart::Rows => SegmentPart::rows(data)?,
            CommitPart::DeadLetters => SegmentPart::dead_letters(data)?,
        };
        (Arc::new(source), data.positions.clone())
    };
    let (dedup_spec, merge_spec) = match options.part {
        CommitPart::Rows => {
            let dedup_spec = options.dedup.map(DedupSpec::from);
            let merge_spec = options.merge.map(|m| MergeSpec {
                keys: m.keys,
                partition_column: m.partition_column,
                delete_when: m.delete_when,
                strategy: dedup_spec
                    .as_ref()
                    .map_or(DedupStrategy::Last, |d| d.strategy),
                order_by: dedup_spec.as_ref().and_then(|d| d.order_by.clone()),
            });
            (dedup_spec, merge_spec)
        }
        CommitPart::DeadLetters => (None, None),
    };
    let ids: HashMap<PartitionKey, String> = app_ids
        .into_iter()
        .map(|a| ((a.topic_index as u16, a.partition), a.app_id))
        .collect();
    if let Some((topic, partition)) = positions.keys().find(|k| !ids.contains_key(k)) {
        return Err(CoreError::InvalidArgument(format!(
            "no application id given for topic #{topic} partition {partition}"
        )));
    }
    let id_list: Vec<String> = ids.values().cloned().collect();
    let total_rows = source.total_rows();
    let consolidates =
        merge_spec.is_some() || dedup_spec.as_ref().is_some_and(|d| !d.keys.is_empty());
    // Plain appends of spilled rows stream from disk; everything else is read into memory once.
    let streaming = matches!(part, CommitPart::Rows) && source.has_files() && !consolidates;
    let days = if streaming {
        Vec::new()
    } else {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.read_by_day()).await??
    };

    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut current = lock(&table)?.clone();
        current.update_state().await?;
        let recorded = read_txn_versions(&current, &id_list).await?;
        let recorded_for =
            |key: &PartitionKey| ids.get(key).and_then(|id| recorded.get(id)).copied();

        let txns: Vec<Transaction> = positions
            .iter()
            .filter(|(key, &last)| recorded_for(key).is_none_or(|done| last > done))
            .map(|(key, &last)| Transaction::new(&ids[key], last))
            .collect();
        if txns.is_empty() {
            *lock(&table)? = current;
            return Ok(CommitResult {
                version: None,
                rows_written: 0,
                rows_skipped: total_rows as u32,
                attempts: attempt,
                rows_deduplicated: 0,
                merge: None,
            });
        }
        let properties = CommitProperties::default().with_application_transactions(txns);
        let started = std::time::Instant::now();
        let written = if streaming {
            let recorded: HashMap<PartitionKey, i64> = positions
                .keys()
                .filter_map(|k| recorded_for(k).map(|v| (*k, v)))
                .collect();
            stream_rows(&current, &source, recorded, properties).await?
        } else {
            write_rows(
                &current,
                &days,
                &recorded_for,
                dedup_spec.clone(),
                merge_spec.as_ref(),
                properties,
            )
            .await?
        };
        if matches!(part, CommitPart::Rows) {
            let rows = if written.outcome.is_ok() {
                written.rows
            } else {
                0
            };
            crate::metrics::WRITE.record(started.elapsed(), rows);
        }
        match written.outcome {
            Ok((updated, merge)) => {
                let version = updated.version().map(|v| v as i64);
                *lock(&table)? = updated;
                return Ok(CommitResult {
                    version,
                    rows_written: written.rows as u32,
                    rows_skipped: total_rows.saturating_sub(written.fresh_rows) as u32,
                    attempts: attempt,
                    rows_deduplicated: (written.deduplicated + source.spilled_deduplicated) as u32,
                    merge,
                });
            }
            Err(err) if is_conflict(&err) && attempt < max_attempts => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(err) if is_conflict(&err) => {
                return Err(CoreError::CommitConflict {
                    attempts: attempt,
                    reason: err.to_string(),
                })
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// One commit attempt: its outcome and what it would write.
struct Attempt {
    outcome: Result<(DeltaTable, Option<MergeStats>), DeltaTableError>,
    /// Rows written (after consolidation).
    rows: usize,
    /// Rows the table did not hold yet (before consolidation).
    fresh_rows: usize,
    deduplicated: usize,
}

/// Appends spilled and in-memory rows as they are read, never holding them all.
async fn stream_rows(
    current: &DeltaTable,
    source: &SegmentPart,
    recorded: HashMap<PartitionKey, i64>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let counter = Arc::new(AtomicUsize::new(0));
    let plan = source.streaming_plan(recorded, counter.clone())?;
    let outcome = current
        .clone()
        .write(Vec::new())
        .with_input_plan(plan)
        .with_save_mode(SaveMode::Append)
        .with_commit_properties(properties)
        .await
        .map(|t| (t, None));
    let rows = counter.load(Ordering::Relaxed);
    Ok(Attempt {
        outcome,
        rows,
        fresh_rows: rows,
        deduplicated: 0,
    })
}

/// Drops rows the table holds, consolidates the rest and appends or merges them.
async fn write_rows(
    current: &DeltaTable,
    days: &[Vec<RecordBatch>],
    recorded_for: &(dyn Fn(&PartitionKey) -> Option<i64> + Sync),
    dedup_spec: Option<DedupSpec>,
    merge_spec: Option<&MergeSpec>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let fresh_days = days
        .iter()
        .map(|batches| uncommitted_rows(batches, recorded_for))
        .collect::<CoreResult<Vec<_>>>()?;
    let fresh_rows: usize = fresh_days.iter().flatten().map(RecordBatch::num_rows).sum();
    let (fresh, deduplicated) = consolidate(fresh_days, dedup_spec).await?;
    let rows: usize = fresh.iter().map(RecordBatch::num_rows).sum();
    let outcome = if fresh.is_empty() {
        commit_positions_only(current, properties)
            .await
            .map(|t| (t, None))
    } else if let Some(spec) = merge_spec {
        merge_rows(current, fresh, spec, properties)
            .await
            .map(|(t, stats)| (t, Some(stats)))
    } else {
        current
            .clone()
            .write(fresh)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await
            .map(|t| (t, None))
    };
    Ok(Attempt {
        outcome,
        rows,
        fresh_rows,
        deduplicated,
    })
}

/// Consolidates each day's rows on the worker pool (off the async runtime's threads); returns
/// the rows to write, one batch per day when consolidated, and how many rows were removed.
async fn consolidate(
    days: Vec<Vec<RecordBatch>>,
    spec: Option<DedupSpec>,
) -> CoreResult<(Vec<RecordBatch>, usize)> {
    let Some(spec) = spec.filter(|s| !s.keys.is_empty()) else {
        return Ok((days.into_iter().flatten().collect(), 0));
    };
    tokio::task::spawn_blocking(move || {
        crate::threads::install(|| {
            let mut out = Vec::with_capacity(days.len());
            let mut removed = 0;
            for batches in days.iter().filter(|b| !b.is_empty()) {
                let started = std::time::Instant::now();
                let rows = match batches.as_slice() {
                    [only] => only.clone(),
                    _ => concat_batches(&batches[0].schema(), batches)?,
                };
                let consolidated = dedup(&rows, &spec)?;
                crate::metrics::DEDUP.record(started.elapsed(), rows.num_rows());
                removed += consolidated.removed;
                out.push(consolidated.batch);
            }
            Ok((out, removed))
        })?
    })
    .await?
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)))
}

/// A commit that carries only txn actions: every message of the segment was rejected or
/// already written, but the positions must still move past them.
async fn commit_positions_only(
    table: &DeltaTable,
    properties: CommitProperties,
) -> Result<DeltaTable, DeltaTableError> {
    let state = table.snapshot()?;
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    CommitBuilder::from(properties)
        .build(Some(state), table.log_store(), operation)
        .await?;
    let mut updated = table.clone();
    updated.update_state().await?;
    Ok(updated)
}

/// The rows the table does not hold yet, without the internal position columns.
pub fn uncommitted_rows(
    batches: &[RecordBatch],
    recorded_for: &dyn Fn(&PartitionKey) -> Option<i64>,
) -> CoreResult<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let topics = column::<UInt16Array>(batch, TOPIC_COLUMN)?;
        let partitions = column::<Int32Array>(batch, PARTITION_COLUMN)?;
        let offsets = column::<Int64Array>(batch, OFFSET_COLUMN)?;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|r| {
                let key = (topics.value(r), partitions.value(r));
                Some(recorded_for(&key).is_none_or(|done| offsets.value(r) > done))
            })
            .collect();
        let kept = if keep.true_count() == batch.num_rows() {
            batch.clone()
        } else {
            filter_record_batch(batch, &keep)?
        };
        if kept.num_rows() > 0 {
            out.push(strip_positions(&kept)?);
        }
    }
    Ok(out)
}

/// Drops the internal position columns (always the last three).
pub fn strip_positions(batch: &RecordBatch) -> CoreResult<RecordBatch> {
    let keep: Vec<usize> = (0..batch.num_columns() - 3).collect();
    Ok(batch.project(&keep)?)
}
