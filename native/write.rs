//! Commits: a segment's rows (consolidated, then appended or merged) or its dead letters, and a
//! txn action per topic-partition, in one Delta transaction, so the log holds data and Kafka
//! positions together or neither.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use napi_derive::napi;

use crate::dead_letters::{fresh_dead_letters, present_dead_letters};
use crate::dedup::{dedup, DedupOptions, DedupSpec, DedupStrategy};
use crate::error::{lock, CoreError, CoreResult};
use crate::merge::{merge_rows, MergeSpec, MergeStats};
use crate::positions::{
    backoff, check_positions_kept, commit_positions_only, is_conflict, AppIds, CommitWindows,
    PartitionAppId,
};
use crate::segment::SegmentData;
use crate::spill_read::{CoveredBatch, SegmentPart};

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

/// Everything a commit needs that does not change between attempts.
struct Prepared {
    part: CommitPart,
    source: Arc<SegmentPart>,
    ids: AppIds,
    dedup_spec: Option<DedupSpec>,
    merge_spec: Option<MergeSpec>,
    /// Plain appends of spilled rows stream from disk; everything else is read into memory once.
    streaming: bool,
    days: Vec<Vec<CoveredBatch>>,
}

/// The tables one commit attempt reads positions from and writes into.
struct Tables {
    /// The table written into.
    target: Arc<Mutex<DeltaTable>>,
    /// The table whose recorded positions decide what is new: the target itself, or for dead
    /// letters the rows' table (the source of truth of what was handled).
    positions: Option<Arc<Mutex<DeltaTable>>>,
}

/// Commits one part of a segment, retrying conflicts against the table's newest version.
/// `positions_from`: for dead letters, the rows' table.
pub async fn commit_segment(
    table: Arc<Mutex<DeltaTable>>,
    segment: Arc<Mutex<Option<SegmentData>>>,
    app_ids: Vec<PartitionAppId>,
    options: CommitOptions,
    positions_from: Option<Arc<Mutex<DeltaTable>>>,
) -> CoreResult<CommitResult> {
    let max_attempts = options.max_attempts.max(1);
    let prepared = prepare(&segment, app_ids, options).await?;
    let tables = Tables {
        target: table,
        positions: positions_from,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match attempt_commit(&tables, &prepared, attempt).await? {
            Ok(result) => return Ok(result),
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

async fn prepare(
    segment: &Mutex<Option<SegmentData>>,
    app_ids: Vec<PartitionAppId>,
    options: CommitOptions,
) -> CoreResult<Prepared> {
    let source = {
        let guard = lock(segment)?;
        let data = guard
            .as_ref()
            .ok_or_else(|| CoreError::InvalidArgument("the segment was released".into()))?;
        match options.part {
            CommitPart::Rows => SegmentPart::rows(data)?,
            CommitPart::DeadLetters => SegmentPart::dead_letters(data)?,
        }
    };
    let source = Arc::new(source);
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
    let ids = AppIds::new(app_ids);
    let consolidates =
        merge_spec.is_some() || dedup_spec.as_ref().is_some_and(|d| !d.keys.is_empty());
    let streaming = matches!(options.part, CommitPart::Rows) && source.has_files() && !consolidates;
    let days = if streaming {
        Vec::new()
    } else {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.read_by_day()).await??
    };
    Ok(Prepared {
        part: options.part,
        source,
        ids,
        dedup_spec,
        merge_spec,
        streaming,
        days,
    })
}

/// One attempt against the newest version: the windows from the recorded positions, then the
/// write with the txn actions. The outer error is final; the inner one may be a conflict.
async fn attempt_commit(
    tables: &Tables,
    prepared: &Prepared,
    attempt: u32,
) -> CoreResult<Result<CommitResult, DeltaTableError>> {
    let mut current = lock(&tables.target)?.clone();
    current.update_state().await?;
    // The table's properties can change under a running pipeline: checked on every attempt.
    check_positions_kept(&current)?;
    let ids = &prepared.ids;
    let own = ids.recorded_in(&current).await?;
    let handled = match &tables.positions {
        Some(rows_table) => {
            let mut rows_table = lock(rows_table)?.clone();
            rows_table.update_state().await?;
            ids.recorded_in(&rows_table).await?
        }
        None => own.clone(),
    };
    let windows = CommitWindows::plan(&prepared.source.coverages(), &|k| handled.get(k).copied())?;
    let txns = windows.transactions(&|k| own.get(k).copied(), &|k| ids.of(k))?;
    let total_rows = prepared.source.total_rows();
    let skipped = |attempts: u32| CommitResult {
        version: None,
        rows_written: 0,
        rows_skipped: total_rows as u32,
        attempts,
        rows_deduplicated: 0,
        merge: None,
    };
    let written = match prepared.part {
        CommitPart::Rows if txns.is_empty() => {
            // Nothing above the recorded positions: every row is already in the table.
            *lock(&tables.target)? = current;
            return Ok(Ok(skipped(attempt)));
        }
        CommitPart::Rows => write_part(&current, prepared, Arc::new(windows), txns).await?,
        CommitPart::DeadLetters => {
            // Dead letters the rows' table has not handled; those a crashed earlier flush may
            // already have written here (up to this table's own positions) are looked up.
            let present = present_dead_letters(&current, &windows, &own).await?;
            let fresh = fresh_dead_letters(&prepared.days, &windows, &present)?;
            if fresh.is_empty() && txns.is_empty() {
                *lock(&tables.target)? = current;
                return Ok(Ok(skipped(attempt)));
            }
            let properties = CommitProperties::default().with_application_transactions(txns);
            append_rows(&current, fresh, properties).await
        }
    };
    if matches!(prepared.part, CommitPart::Rows) {
        let rows = if written.outcome.is_ok() {
            written.rows
        } else {
            0
        };
        crate::metrics::WRITE.record(written.elapsed, rows);
    }
    Ok(written.outcome.map(|(updated, merge)| {
        let version = updated.version().map(|v| v as i64);
        if let Ok(mut target) = tables.target.lock() {
            *target = updated;
        }
        CommitResult {
            version,
            rows_written: written.rows as u32,
            rows_skipped: total_rows.saturating_sub(written.fresh_rows) as u32,
            attempts: attempt,
            rows_deduplicated: written.deduplicated as u32,
            merge,
        }
    }))
}

/// Writes the rows the windows keep: streamed, or consolidated and appended or merged.
async fn write_part(
    current: &DeltaTable,
    prepared: &Prepared,
    windows: Arc<CommitWindows>,
    txns: Vec<Transaction>,
) -> CoreResult<Attempt> {
    let properties = CommitProperties::default().with_application_transactions(txns);
    if prepared.streaming {
        stream_rows(current, &prepared.source, windows, properties).await
    } else {
        write_rows(
            current,
            &prepared.days,
            &windows,
            prepared.dedup_spec.clone(),
            prepared.merge_spec.as_ref(),
            properties,
        )
        .await
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
    elapsed: Duration,
}

/// Appends spilled and in-memory rows as they are read, never holding them all.
async fn stream_rows(
    current: &DeltaTable,
    source: &SegmentPart,
    windows: Arc<CommitWindows>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let plan = source.streaming_plan(windows, counter.clone())?;
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
        elapsed: started.elapsed(),
    })
}

/// Keeps the rows the windows allow, consolidates them (never before: a row's position must
/// not be folded into another's) and appends or merges them.
async fn write_rows(
    current: &DeltaTable,
    days: &[Vec<CoveredBatch>],
    windows: &CommitWindows,
    dedup_spec: Option<DedupSpec>,
    merge_spec: Option<&MergeSpec>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let started = Instant::now();
    let fresh_days = days
        .iter()
        .map(|batches| selected(batches, windows))
        .collect::<CoreResult<Vec<_>>>()?;
    let fresh_rows: usize = fresh_days.iter().flatten().map(RecordBatch::num_rows).sum();
    let (fresh, deduplicated) = consolidate(fresh_days, dedup_spec).await?;
    let rows: usize = fresh.iter().map(RecordBatch::num_rows).sum();
    let outcome = match merge_spec {
        Some(spec) if !fresh.is_empty() => merge_rows(current, fresh, spec, properties)
            .await
            .map(|(t, stats)| (t, Some(stats))),
        // Appended, or with nothing fresh only the positions recorded.
        _ => append_rows(current, fresh, properties).await.outcome,
    };
    Ok(Attempt {
        outcome,
        rows,
        fresh_rows,
        deduplicated,
        elapsed: started.elapsed(),
    })
}

/// The rows of each batch the windows keep, without the position columns.
fn selected(batches: &[CoveredBatch], windows: &CommitWindows) -> CoreResult<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    for (coverage, batch) in batches {
        out.extend(windows.select(coverage, batch)?);
    }
    Ok(out)
}

/// Appends rows (or, with none, records only the positions).
async fn append_rows(
    current: &DeltaTable,
    rows: Vec<RecordBatch>,
    properties: CommitProperties,
) -> Attempt {
    let started = Instant::now();
    let count: usize = rows.iter().map(RecordBatch::num_rows).sum();
    let outcome = if rows.is_empty() {
        commit_positions_only(current, properties).await
    } else {
        current
            .clone()
            .write(rows)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await
    };
    Attempt {
        outcome: outcome.map(|t| (t, None)),
        rows: count,
        fresh_rows: count,
        deduplicated: 0,
        elapsed: started.elapsed(),
    }
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
                let started = Instant::now();
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
