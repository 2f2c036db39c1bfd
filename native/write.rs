//! Commits: a segment's rows (consolidated, then appended or merged) or its dead letters, and a
//! txn action per topic-partition, in one Delta transaction, so the log holds data and Kafka
//! positions together or neither.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::{SchemaMode, WriteBuilder};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use napi_derive::napi;

use crate::consolidate::{Consolidation, Counts, Plan};
use crate::dead_letters::{fresh_dead_letters, present_dead_letters};
use crate::dedup::{DedupOptions, DedupSpec, DedupStrategy};
use crate::error::{lock, CoreError, CoreResult};
use crate::merge::{merge_rows, MergeSpec, MergeStats};
use crate::metrics::{FlushPhase, FLUSH};
use crate::positions::{
    check_positions_kept, commit_positions_only, AppIds, CommitWindows, PartitionAppId,
};
use crate::retry::{with_commit_retry, with_retry, StorageRetry};
use crate::segment::SegmentData;
use crate::spill_read::{CoveredBatch, SegmentPart};
use crate::staged_source::SizedTable;
use crate::write_settings::{memory_budget, unit_budget, write_session, writer_properties};

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
    /// Columns (dotted paths for struct fields) the commit added to the table's schema.
    pub columns_added: Vec<String>,
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
    reading: Reading,
    /// Parquet settings of every file the commit writes.
    writer: WriterProperties,
    /// The columns the rows add to the table (schema evolution); written in merge schema mode.
    added: Vec<String>,
}

/// How a commit reads the staged rows.
enum Reading {
    /// Plain appends of spilled rows stream from disk as they are.
    Stream,
    /// Consolidating commits (dedup keys, MERGE) read, consolidate and write one unit of key
    /// buckets at a time.
    Consolidate(Arc<Plan>),
    /// Dead letters, and plain appends with nothing spilled: in memory already.
    InMemory(Vec<Vec<CoveredBatch>>),
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
    retry: StorageRetry,
) -> CoreResult<CommitResult> {
    let max_attempts = options.max_attempts;
    let prepared = prepare(&table, &segment, app_ids, options, retry).await?;
    let tables = Tables {
        target: table,
        positions: positions_from,
    };
    // Each attempt re-reads the newest version and the positions recorded in it, so one that
    // landed before its error surfaced is found, not written twice.
    let (tables, prepared) = (&tables, &prepared);
    let result = with_commit_retry(retry, "commit", max_attempts, |attempt| async move {
        Ok(attempt_commit(tables, prepared, attempt).await??)
    })
    .await?;
    crate::memory::release_free_memory();
    Ok(result)
}

async fn prepare(
    table: &Arc<Mutex<DeltaTable>>,
    segment: &Arc<Mutex<Option<SegmentData>>>,
    app_ids: Vec<PartitionAppId>,
    options: CommitOptions,
    retry: StorageRetry,
) -> CoreResult<Prepared> {
    if matches!(options.part, CommitPart::Rows) {
        let segment = segment.clone();
        tokio::task::spawn_blocking(move || -> CoreResult<bool> {
            match lock(&segment)?.as_mut() {
                Some(data) => data.spill_before_flush(),
                None => Ok(false),
            }
        })
        .await??;
    }
    let mut added = Vec::new();
    let mut source = {
        let guard = lock(segment)?;
        let data = guard
            .as_ref()
            .ok_or_else(|| CoreError::InvalidArgument("the segment was released".into()))?;
        match options.part {
            CommitPart::Rows => SegmentPart::rows(data)?,
            CommitPart::DeadLetters => SegmentPart::dead_letters(data)?,
        }
    };
    if matches!(options.part, CommitPart::Rows) {
        // Another writer may have changed the schema since these rows were staged.
        let current = with_retry(retry, "reading the table", || async {
            let mut current = lock(table)?.clone();
            current.update_state().await?;
            Ok(current)
        })
        .await?;
        let table_schema = current.snapshot()?.snapshot().arrow_schema();
        let (evolving, changes) = lock(segment)?
            .as_ref()
            .map_or((false, false), |d| (d.add_columns, d.changes));
        let target = match evolving {
            true => crate::evolve::union(&table_schema, &source.staged_columns()?),
            false => table_schema.as_ref().clone(),
        };
        added = crate::evolve::added_paths(table_schema.fields(), target.fields());
        // Change events carry their delete flag to the MERGE (`debezium.rs`).
        source.conform_to(&target, changes);
    }
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
                merge_schema: !added.is_empty(),
            });
            (dedup_spec, merge_spec)
        }
        CommitPart::DeadLetters => (None, None),
    };
    let ids = AppIds::new(app_ids);
    let keys = dedup_spec
        .as_ref()
        .map(|d| d.keys.clone())
        .unwrap_or_default();
    let reading = if matches!(options.part, CommitPart::Rows) && !keys.is_empty() {
        let budget = unit_budget(segment)?;
        let source = source.clone();
        let plan = tokio::task::spawn_blocking(move || Plan::new(&source, &keys, budget)).await??;
        Reading::Consolidate(Arc::new(plan))
    } else if matches!(options.part, CommitPart::Rows) && source.has_files() {
        Reading::Stream
    } else {
        let source = source.clone();
        Reading::InMemory(tokio::task::spawn_blocking(move || source.read_by_day()).await??)
    };
    let writer = writer_properties(memory_budget(segment)?, source.table_schema().ok().as_ref());
    Ok(Prepared {
        part: options.part,
        source,
        ids,
        dedup_spec,
        merge_spec,
        reading,
        writer,
        added,
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
        columns_added: Vec::new(),
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
            let Reading::InMemory(days) = &prepared.reading else {
                return Err(CoreError::Internal(
                    "dead letters are read into memory".into(),
                ));
            };
            let fresh = fresh_dead_letters(days, &windows, &present)?;
            if fresh.is_empty() && txns.is_empty() {
                *lock(&tables.target)? = current;
                return Ok(Ok(skipped(attempt)));
            }
            let properties = CommitProperties::default().with_application_transactions(txns);
            append_rows(&current, fresh, properties, &prepared.writer, false).await
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
            columns_added: prepared.added.clone(),
        }
    }))
}

/// Writes the rows the windows keep: streamed, consolidated unit by unit, or from memory.
async fn write_part(
    current: &DeltaTable,
    prepared: &Prepared,
    windows: Arc<CommitWindows>,
    txns: Vec<Transaction>,
) -> CoreResult<Attempt> {
    let properties = CommitProperties::default().with_application_transactions(txns);
    match &prepared.reading {
        Reading::Stream => stream_rows(current, prepared, windows, properties).await,
        Reading::Consolidate(plan) => {
            write_consolidated(current, prepared, plan.clone(), windows, properties).await
        }
        Reading::InMemory(days) => {
            let mut fresh = Vec::new();
            for batches in days {
                fresh.extend(selected(batches, &windows)?);
            }
            let evolving = !prepared.added.is_empty();
            Ok(append_rows(current, fresh, properties, &prepared.writer, evolving).await)
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
    elapsed: Duration,
}

/// Appends spilled and in-memory rows as they are read, never holding them all.
async fn stream_rows(
    current: &DeltaTable,
    prepared: &Prepared,
    windows: Arc<CommitWindows>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let source = &prepared.source;
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let plan = source.streaming_plan(windows, counter.clone())?;
    FLUSH.start(FlushPhase::Write, source.total_rows());
    let outcome = append_plan(current, plan, prepared, properties).await?;
    FLUSH.set_phase(FlushPhase::Idle);
    let rows = counter.load(Ordering::Relaxed);
    Ok(Attempt {
        outcome,
        rows,
        fresh_rows: rows,
        deduplicated: 0,
        elapsed: started.elapsed(),
    })
}

/// Consolidates the rows the windows allow unit by unit (never before the selection: a row's
/// position must not be folded into another's) and appends or merges them in one commit, as
/// they come: one unit in memory at a time.
async fn write_consolidated(
    current: &DeltaTable,
    prepared: &Prepared,
    plan: Arc<Plan>,
    windows: Arc<CommitWindows>,
    properties: CommitProperties,
) -> CoreResult<Attempt> {
    let started = Instant::now();
    let spec = prepared
        .dedup_spec
        .clone()
        .ok_or_else(|| CoreError::Internal("consolidating without keys".into()))?;
    let counts = Arc::new(Counts::default());
    let schema = prepared.source.table_schema()?;
    let units = Consolidation {
        part: prepared.source.clone(),
        plan,
        windows,
        spec,
        counts: counts.clone(),
        schema: schema.clone(),
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(units)])?;
    FLUSH.start(FlushPhase::Consolidate, prepared.source.total_rows());
    let outcome = match &prepared.merge_spec {
        Some(spec) => merge_consolidated(current, prepared, table, spec, properties).await?,
        None => {
            let plan = LogicalPlanBuilder::scan(
                "consolidated_rows",
                provider_as_source(Arc::new(table)),
                None,
            )?
            .build()?;
            append_plan(current, plan, prepared, properties).await?
        }
    };
    FLUSH.set_phase(FlushPhase::Idle);
    let fresh_rows = counts.fresh.load(Ordering::Relaxed);
    let rows = counts.written.load(Ordering::Relaxed);
    Ok(Attempt {
        outcome,
        rows,
        fresh_rows,
        deduplicated: fresh_rows.saturating_sub(rows),
        elapsed: started.elapsed(),
    })
}

type Outcome = Result<(DeltaTable, Option<MergeStats>), DeltaTableError>;

/// Appends the rows a plan streams, with the commit's Parquet settings and session.
async fn append_plan(
    current: &DeltaTable,
    plan: LogicalPlan,
    prepared: &Prepared,
    properties: CommitProperties,
) -> CoreResult<Outcome> {
    let write = current
        .clone()
        .write(Vec::new())
        .with_input_plan(plan)
        .with_save_mode(SaveMode::Append)
        .with_session_state(write_session()?)
        .with_writer_properties(prepared.writer.clone())
        .with_commit_properties(properties);
    Ok(with_evolution(write, !prepared.added.is_empty())
        .await
        .map(|t| (t, None)))
}

/// MERGEs the consolidated units; when none of them held a fresh row (the MERGE then commits
/// nothing), the positions are still recorded.
async fn merge_consolidated(
    current: &DeltaTable,
    prepared: &Prepared,
    table: StreamingTable,
    spec: &MergeSpec,
    properties: CommitProperties,
) -> CoreResult<Outcome> {
    let days = prepared.source.day_values(&spec.partition_column)?;
    let sized = SizedTable::new(
        table,
        prepared.source.total_rows(),
        prepared.source.total_bytes(),
    );
    let source = SessionContext::new().read_table(Arc::new(sized))?;
    let before = current.version();
    let session = write_session()?;
    let merged = merge_rows(
        current,
        source,
        days,
        spec,
        properties.clone(),
        &prepared.writer,
        session,
    )
    .await;
    Ok(match merged {
        Ok((table, stats)) if table.version() == before => {
            commit_positions_only(current, properties)
                .await
                .map(|t| (t, Some(stats)))
        }
        other => other.map(|(t, stats)| (t, Some(stats))),
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
    writer: &WriterProperties,
    evolving: bool,
) -> Attempt {
    let started = Instant::now();
    let count: usize = rows.iter().map(RecordBatch::num_rows).sum();
    let outcome = if rows.is_empty() {
        commit_positions_only(current, properties).await
    } else {
        let write = current
            .clone()
            .write(rows)
            .with_save_mode(SaveMode::Append)
            .with_writer_properties(writer.clone())
            .with_commit_properties(properties);
        with_evolution(write, evolving).await
    };
    Attempt {
        outcome: outcome.map(|t| (t, None)),
        rows: count,
        fresh_rows: count,
        deduplicated: 0,
        elapsed: started.elapsed(),
    }
}

/// Merge schema mode when the rows add columns (the commit then carries the new schema); the
/// default otherwise, which refuses rows that do not match the table.
fn with_evolution(write: WriteBuilder, evolving: bool) -> WriteBuilder {
    if evolving {
        write.with_schema_mode(SchemaMode::Merge)
    } else {
        write
    }
}
