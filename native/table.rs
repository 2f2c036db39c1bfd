//! The target Delta table: opening it, checking that we can write to it exactly once, reading
//! the Kafka positions recorded in its log, and creating tables (for tooling and dead letters).

use std::collections::HashMap;
use std::future::Future;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::day::EpochUnit;
use crate::dead_letters::{unhandled_dead_letters, DeadLetterRecord};
use crate::error::{CoreError, CoreResult};
use crate::js_error::{spawn, OrThrow};
use crate::metadata::KafkaMetadataColumns;
use crate::positions::{record_starts, PartitionAppId, TxnVersion};
use crate::retry::{StorageRetry, StorageRetryOptions};
use crate::segment::StagedSegment;
use crate::stage::Stage;
use crate::target::{table_info, Target};
use crate::write::{commit_segment, CommitOptions, CommitResult};

/// How records are written.
#[napi(string_enum)]
#[derive(Debug, PartialEq)]
pub enum WriteMode {
    /// Append every consolidated record.
    #[napi(value = "INSERT")]
    Insert,
    /// Update matching rows, insert the others.
    #[napi(value = "MERGE")]
    Merge,
}

/// Where the day of a record comes from.
#[napi(string_enum)]
#[derive(Debug)]
pub enum DaySourceKind {
    /// The partition column's own field in the record, as `YYYY-MM-DD`.
    #[napi(value = "column")]
    Column,
    /// An event-time field (ISO-8601 text or an epoch number in `epochUnit`).
    #[napi(value = "field")]
    Field,
    /// The Kafka message timestamp.
    #[napi(value = "kafka_timestamp")]
    KafkaTimestamp,
    /// A change event's `ts_ms` (`format: 'debezium'`).
    #[napi(value = "change_time")]
    ChangeTime,
}

/// What a message's value holds.
#[napi(string_enum)]
#[derive(Debug, PartialEq)]
pub enum MessageFormat {
    /// A JSON object: one row.
    #[napi(value = "json")]
    Json,
    /// A Debezium change event (JSON): its row image is upserted, or deleted with op d.
    #[napi(value = "debezium")]
    Debezium,
}

/// How a stage turns messages into rows of this table.
#[napi(object)]
pub struct StageOptions {
    pub partition_column: String,
    pub day_source: DaySourceKind,
    /// The event-time field, with `daySource: 'field'`.
    pub day_field: Option<String>,
    /// IANA time zone the day is taken in.
    pub timezone: String,
    /// Reject messages with fields the table does not have (otherwise they are ignored).
    pub reject_unknown_fields: bool,
    /// A field the table lacks becomes a nullable column, added by the commit of its rows
    /// (`delta.schema_evolution: add_columns`); default false.
    pub add_columns: Option<bool>,
    /// The topics consumed; messages refer to them by index.
    pub topics: Vec<String>,
    /// The list grows while running (`Stage.addTopics`, a pattern subscription): a staging
    /// manifest's list is then adopted as its beginning (see `Stage.topics`); default false.
    pub topics_grow: Option<bool>,
    pub kafka_metadata: Option<KafkaMetadataColumns>,
    /// Columns (dedup keys) whose null or missing value sends a message to the dead letters.
    pub reject_null_keys: Option<Vec<String>>,
    /// The unit of epoch numbers in the event-time field and in timestamp columns; default ms.
    pub epoch_unit: Option<EpochUnit>,
    /// A message whose day is more than this many years from today is a dead letter; default 10.
    pub day_window_years: Option<u32>,
    /// A filter and derived columns evaluated on each decoded batch.
    pub transform: Option<crate::transform::TransformOptions>,
    /// What message values hold; default json.
    pub format: Option<MessageFormat>,
    /// Spill staged rows to local disk beyond a memory budget; absent: everything stays in
    /// memory until the flush.
    pub staging: Option<StagingOptions>,
}

/// Where and when a stage spills its rows to disk.
#[napi(object)]
pub struct StagingOptions {
    /// The directory, owned by this process while the stage lives.
    pub dir: String,
    /// Staged Arrow memory beyond which rows are spilled.
    pub max_memory_bytes: f64,
    /// Who writes it (consumer group and table): staging written by another pipeline is
    /// never used.
    pub identity: String,
    /// The key rows are consolidated on at the flush (dedup or MERGE keys): spilled rows are
    /// bucketed by it so a flush consolidates a day bucket by bucket. Absent: not bucketed.
    pub bucket_keys: Option<Vec<String>>,
}

/// A column of a table.
#[napi(object)]
pub struct ColumnInfo {
    pub name: String,
    /// The Delta type, e.g. `string`, `long`, `timestamp`, or a JSON text for nested types.
    pub data_type: String,
    pub nullable: bool,
}

/// What a table is.
#[napi(object)]
pub struct TableInfo {
    pub uri: String,
    pub version: i64,
    pub columns: Vec<ColumnInfo>,
    pub partition_columns: Vec<String>,
    pub min_writer_version: i32,
    pub writer_features: Vec<String>,
    pub properties: HashMap<String, String>,
}

/// Rows and files of one partition, from the statistics in the table's log.
#[napi(object)]
pub struct PartitionSummary {
    /// Partition values as `column=value` pairs joined by `/`, e.g. `date_col=2026-11-23`.
    pub partition: String,
    pub files: u32,
    /// Rows per the files' statistics; files written without statistics count as 0.
    pub rows: f64,
    pub bytes: f64,
}

/// A Delta table we write into.
#[napi]
pub struct DeltaTarget {
    target: Target,
}

/// The storage options and retry policy of an open (the retry's defaults live in the
/// TypeScript wrapper, `DEFAULT_STORAGE_RETRY`).
fn settings(
    storage_options: Option<HashMap<String, String>>,
    retry: StorageRetryOptions,
) -> (HashMap<String, String>, StorageRetry) {
    (storage_options.unwrap_or_default(), retry.into())
}

/// The promise of a `DeltaTarget` for a table being opened.
fn opening<'env>(
    env: &'env Env,
    open: impl Future<Output = CoreResult<Target>> + Send + 'static,
) -> napi::Result<PromiseRaw<'env, DeltaTarget>> {
    spawn(env, async move {
        Ok(DeltaTarget {
            target: open.await?,
        })
    })
}

#[napi]
impl DeltaTarget {
    /// Opens an existing table. Fails with `TABLE_NOT_FOUND` when there is none at `uri`.
    #[napi(ts_return_type = "Promise<DeltaTarget>")]
    pub fn open<'env>(
        env: &'env Env,
        uri: String,
        storage_options: Option<HashMap<String, String>>,
        retry: StorageRetryOptions,
    ) -> napi::Result<PromiseRaw<'env, DeltaTarget>> {
        let (options, retry) = settings(storage_options, retry);
        opening(env, Target::open(uri, options, retry))
    }

    /// Opens the dead-letter table at `uri`, creating it (partitioned by day) when absent.
    #[napi(ts_return_type = "Promise<DeltaTarget>")]
    pub fn open_dead_letters<'env>(
        env: &'env Env,
        uri: String,
        storage_options: Option<HashMap<String, String>>,
        retry: StorageRetryOptions,
    ) -> napi::Result<PromiseRaw<'env, DeltaTarget>> {
        let (options, retry) = settings(storage_options, retry);
        opening(env, Target::open_dead_letters(uri, options, retry))
    }

    /// The table's location.
    #[napi(getter, catch_unwind)]
    pub fn uri(&self) -> String {
        self.target.uri.clone()
    }

    /// The table's schema, partitioning, protocol and properties at the loaded version.
    #[napi(catch_unwind)]
    pub fn info(&self, env: &Env) -> napi::Result<TableInfo> {
        self.target
            .current()
            .and_then(|table| table_info(&self.target.uri, &table))
            .or_throw(env)
    }

    /// Fails with `UNSUPPORTED_TABLE` when delta-rs cannot write this table, when the table
    /// would expire the Kafka positions we record, or when MERGE meets an append-only table.
    #[napi(catch_unwind)]
    pub fn check_writable(&self, env: &Env, mode: WriteMode) -> napi::Result<()> {
        self.target.check_writable(mode).or_throw(env)
    }

    /// Fails with `INVALID_ARGUMENT` when `deleteWhen` is not a condition over the table's
    /// columns.
    #[napi(catch_unwind)]
    pub fn check_delete_when(&self, env: &Env, delete_when: String) -> napi::Result<()> {
        self.target
            .arrow_schema()
            .and_then(|schema| {
                crate::merge::check_delete_when(&schema, &delete_when)
                    .map_err(CoreError::InvalidArgument)
            })
            .or_throw(env)
    }

    /// Rows and files per partition at the latest version, from the log (no data is read).
    #[napi(ts_return_type = "Promise<Array<PartitionSummary>>")]
    pub fn partition_summary<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<PartitionSummary>>> {
        let target = self.target.clone();
        spawn(env, async move { target.partition_summary().await })
    }

    /// Reloads the table to its latest version and returns that version.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn refresh<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, i64>> {
        let target = self.target.clone();
        spawn(env, async move {
            let table = target.refresh("reading the table").await?;
            Ok(table.version().map_or(-1, |v| v as i64))
        })
    }

    /// Writes a checkpoint of the newest version and removes the expired log files.
    #[napi(ts_return_type = "Promise<CheckpointResult>")]
    pub fn checkpoint<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, crate::maintenance::CheckpointResult>> {
        let target = self.target.clone();
        spawn(
            env,
            async move { crate::maintenance::checkpoint(&target).await },
        )
    }

    /// Removes the data files no version references, past the retention (see `maintenance.rs`).
    #[napi(ts_return_type = "Promise<VacuumResult>")]
    pub fn vacuum<'env>(
        &self,
        env: &'env Env,
        options: crate::maintenance::VacuumOptions,
    ) -> napi::Result<PromiseRaw<'env, crate::maintenance::VacuumResult>> {
        let target = self.target.clone();
        spawn(env, async move {
            crate::maintenance::vacuum(&target, options).await
        })
    }

    /// Duplicate and missing Kafka offsets in the newest version (see `verify.rs`); the dead
    /// letters' offsets are not missing.
    #[napi(ts_return_type = "Promise<OffsetAudit>")]
    pub fn audit_offsets<'env>(
        &self,
        env: &'env Env,
        columns: crate::verify::OffsetColumns,
        dead_letters: Option<&DeltaTarget>,
        limit: u32,
    ) -> napi::Result<PromiseRaw<'env, crate::verify::OffsetAudit>> {
        let target = self.target.clone();
        let dead_letters = dead_letters.map(|d| d.target.clone());
        spawn(env, async move {
            let table = target.refresh("scanning the Kafka offsets").await?;
            let dead = match &dead_letters {
                Some(d) => Some(d.refresh("scanning the dead letters").await?),
                None => None,
            };
            crate::verify::audit_offsets(&table, &columns, dead.as_ref(), limit).await
        })
    }

    /// Every day's file counts at the newest version, from the log (no data is read).
    #[napi(ts_return_type = "Promise<Array<DayFiles>>")]
    pub fn day_files<'env>(
        &self,
        env: &'env Env,
        column: String,
        target_size_bytes: f64,
    ) -> napi::Result<PromiseRaw<'env, Vec<crate::optimize::DayFiles>>> {
        let target = self.target.clone();
        spawn(env, async move {
            crate::optimize::day_files(&target, &column, target_size_bytes).await
        })
    }

    /// Compacts one day's small files in a commit of its own (see `optimize.rs`).
    #[napi(ts_return_type = "Promise<OptimizeResult>")]
    pub fn optimize_day<'env>(
        &self,
        env: &'env Env,
        column: String,
        day: String,
        options: crate::optimize::OptimizeOptions,
    ) -> napi::Result<PromiseRaw<'env, crate::optimize::OptimizeResult>> {
        let target = self.target.clone();
        spawn(env, async move {
            crate::optimize::optimize_day(&target, &column, &day, &options).await
        })
    }

    /// The versions the table's log records for these application ids, at its latest version.
    #[napi(ts_return_type = "Promise<Array<TxnVersion>>")]
    pub fn txn_versions<'env>(
        &self,
        env: &'env Env,
        app_ids: Vec<String>,
    ) -> napi::Result<PromiseRaw<'env, Vec<TxnVersion>>> {
        let target = self.target.clone();
        spawn(env, async move { target.txn_versions(app_ids).await })
    }

    /// Makes `stage` decode with the table's schema as loaded now, when another writer changed
    /// it; returns the columns added (none when the schema is the stage's already).
    #[napi(catch_unwind)]
    pub fn follow_schema(&self, env: &Env, stage: &Stage) -> napi::Result<Vec<String>> {
        self.target
            .arrow_schema()
            .and_then(|schema| stage.follow(schema))
            .or_throw(env)
    }

    /// A stage that decodes messages into rows of this table.
    #[napi(catch_unwind)]
    pub fn create_stage(&self, env: &Env, options: StageOptions) -> napi::Result<Stage> {
        self.target.create_stage(options).or_throw(env)
    }

    /// Commits one part of the segment (its rows, or its dead letters) in one transaction that
    /// also records, per topic-partition, the last offset covered. Rows the table already holds
    /// (by its recorded offsets) are dropped, so a replay never duplicates; the rest are
    /// consolidated per day and appended or merged; conflicts are retried against the new
    /// version, transient storage failures within `delta.storage_retry`.
    ///
    /// `positionsFrom`: for dead letters, the rows' table, whose recorded positions decide
    /// which dead letters are new (it is the record of what was handled).
    #[napi(ts_return_type = "Promise<CommitResult>")]
    pub fn commit<'env>(
        &self,
        env: &'env Env,
        segment: &StagedSegment,
        app_ids: Vec<PartitionAppId>,
        options: CommitOptions,
        positions_from: Option<&DeltaTarget>,
    ) -> napi::Result<PromiseRaw<'env, CommitResult>> {
        let table = self.target.table.clone();
        let data = segment.data.clone();
        let positions = positions_from.map(|t| t.target.table.clone());
        let retry = self.target.retry;
        spawn(env, async move {
            commit_segment(table, data, app_ids, options, positions, retry).await
        })
    }

    /// The segment's dead letters this table has not handled yet (above its recorded
    /// positions), for a sink outside Delta; a replay after a crash returns them again.
    #[napi(ts_return_type = "Promise<Array<DeadLetterRecord>>")]
    pub fn pending_dead_letters<'env>(
        &self,
        env: &'env Env,
        segment: &StagedSegment,
        app_ids: Vec<PartitionAppId>,
    ) -> napi::Result<PromiseRaw<'env, Vec<DeadLetterRecord>>> {
        let table = self.target.table.clone();
        let data = segment.data.clone();
        spawn(env, async move {
            unhandled_dead_letters(table, data, app_ids).await
        })
    }

    /// Records where partitions start (`version`: the offset before the first to read) for
    /// app ids the table has no version for yet, in one commit of txn actions only; ids with a
    /// version are left as they are. Returns the ids recorded.
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn record_starts<'env>(
        &self,
        env: &'env Env,
        starts: Vec<TxnVersion>,
        max_attempts: u32,
    ) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let table = self.target.table.clone();
        let retry = self.target.retry;
        spawn(env, async move {
            record_starts(table, starts, max_attempts, retry).await
        })
    }
}
