//! The target Delta table: opening it, checking that we can write to it exactly once, reading
//! the Kafka positions recorded in its log, and creating tables (for tooling and dead letters).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::{TransactionError, PROTOCOL};
use deltalake::kernel::DataType as DeltaDataType;
use deltalake::{ensure_table_uri, DeltaTable, DeltaTableBuilder, DeltaTableError};
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::create::create;
use crate::day::{self, EpochUnit};
use crate::dead_letters::dead_letter_schema;
use crate::dead_letters::{unhandled_dead_letters, DeadLetterRecord};
use crate::decode::{DaySource, DecodeOptions, DecodeSpec};
use crate::error::{lock, CoreError, CoreResult};
use crate::metadata::KafkaMetadataColumns;
use crate::positions::check_positions_kept;
use crate::positions::{record_starts, PartitionAppId, TxnVersion};
use crate::segment::StagedSegment;
use crate::spill::Staging;
use crate::stage::Stage;
use crate::write::{commit_segment, CommitOptions, CommitResult};

/// How far from today a record's day may be, by default.
const DEFAULT_DAY_WINDOW_YEARS: u32 = 10;

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
    /// The topics consumed; messages refer to them by index.
    pub topics: Vec<String>,
    pub kafka_metadata: Option<KafkaMetadataColumns>,
    /// Columns (dedup keys) whose null or missing value sends a message to the dead letters.
    pub reject_null_keys: Option<Vec<String>>,
    /// The unit of epoch numbers in the event-time field and in timestamp columns; default ms.
    pub epoch_unit: Option<EpochUnit>,
    /// A message whose day is more than this many years from today is a dead letter; default 10.
    pub day_window_years: Option<u32>,
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
    table: Arc<Mutex<DeltaTable>>,
    uri: String,
}

impl DeltaTarget {
    fn current(&self) -> CoreResult<DeltaTable> {
        Ok(lock(&self.table)?.clone())
    }

    /// The table's columns as Arrow sees them, at the loaded version.
    fn arrow_schema(&self) -> CoreResult<SchemaRef> {
        Ok(self.current()?.snapshot()?.snapshot().arrow_schema())
    }
}

fn table_not_found(uri: &str, err: DeltaTableError) -> CoreError {
    match err {
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => {
            CoreError::TableNotFound {
                uri: uri.to_string(),
                reason: err.to_string(),
            }
        }
        other => other.into(),
    }
}

async fn load(uri: &str, storage_options: HashMap<String, String>) -> CoreResult<DeltaTable> {
    let url = ensure_table_uri(uri).map_err(|e| table_not_found(uri, e))?;
    let mut table = DeltaTableBuilder::from_url(url)
        .map_err(|e| table_not_found(uri, e))?
        .with_storage_options(storage_options)
        .build()
        .map_err(|e| table_not_found(uri, e))?;
    table.load().await.map_err(|e| table_not_found(uri, e))?;
    Ok(table)
}

/// Whether a Delta log exists at `uri`, without loading it.
async fn has_table(uri: &str, storage_options: HashMap<String, String>) -> CoreResult<bool> {
    if !uri.contains("://") && !std::path::Path::new(uri).exists() {
        return Ok(false);
    }
    let url = ensure_table_uri(uri).map_err(|e| table_not_found(uri, e))?;
    let table = DeltaTableBuilder::from_url(url)
        .map_err(|e| table_not_found(uri, e))?
        .with_storage_options(storage_options)
        .build()
        .map_err(|e| table_not_found(uri, e))?;
    Ok(table.verify_deltatable_existence().await?)
}

pub fn table_info(uri: &str, table: &DeltaTable) -> CoreResult<TableInfo> {
    let state = table.snapshot()?;
    let metadata = state.metadata();
    let protocol = state.protocol();
    let schema = state.schema();
    let columns = schema
        .fields()
        .map(|f| ColumnInfo {
            name: f.name().to_string(),
            data_type: match f.data_type() {
                DeltaDataType::Primitive(p) => p.to_string(),
                other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
            },
            nullable: f.is_nullable(),
        })
        .collect();
    Ok(TableInfo {
        uri: uri.to_string(),
        version: state.version() as i64,
        columns,
        partition_columns: metadata.partition_columns().to_vec(),
        min_writer_version: protocol.min_writer_version(),
        writer_features: protocol
            .writer_features()
            .map(|fs| fs.iter().map(|f| f.as_ref().to_string()).collect())
            .unwrap_or_default(),
        properties: metadata.configuration().clone(),
    })
}

#[napi]
impl DeltaTarget {
    /// Opens an existing table. Fails with `TABLE_NOT_FOUND` when there is none at `uri`.
    #[napi(factory)]
    pub async fn open(
        uri: String,
        storage_options: Option<HashMap<String, String>>,
    ) -> napi::Result<DeltaTarget> {
        let table = load(&uri, storage_options.unwrap_or_default()).await?;
        Ok(DeltaTarget {
            table: Arc::new(Mutex::new(table)),
            uri,
        })
    }

    /// Opens the dead-letter table at `uri`, creating it (partitioned by day) when absent.
    #[napi(factory)]
    pub async fn open_dead_letters(
        uri: String,
        storage_options: Option<HashMap<String, String>>,
    ) -> napi::Result<DeltaTarget> {
        let options = storage_options.unwrap_or_default();
        // Asked first rather than learnt from a failed load, which delta-rs's kernel logs at
        // ERROR on every first start.
        let table = if has_table(&uri, options.clone()).await? {
            load(&uri, options).await?
        } else {
            create(&uri, &dead_letter_schema(), &["day".to_string()], options).await?
        };
        Ok(DeltaTarget {
            table: Arc::new(Mutex::new(table)),
            uri,
        })
    }

    /// The table's location.
    #[napi(getter)]
    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// The table's schema, partitioning, protocol and properties at the loaded version.
    #[napi]
    pub fn info(&self) -> napi::Result<TableInfo> {
        Ok(table_info(&self.uri, &self.current()?)?)
    }

    /// Fails with `UNSUPPORTED_TABLE` when delta-rs cannot write this table, when the table
    /// would expire the Kafka positions we record, or when MERGE meets an append-only table.
    #[napi]
    pub fn check_writable(&self, mode: WriteMode) -> napi::Result<()> {
        let table = self.current()?;
        let state = table.snapshot().map_err(CoreError::from)?;
        if let Err(err) = PROTOCOL.can_write_to(state) {
            let reason = match err {
                TransactionError::UnsupportedTableFeatures(features) => format!(
                    "the table at {} requires writer feature(s) that delta-rs cannot write: {}",
                    self.uri,
                    features
                        .iter()
                        .map(|f| f.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!("cannot write to the table at {}: {other}", self.uri),
            };
            return Err(CoreError::UnsupportedTable(reason).into());
        }
        check_positions_kept(&table)?;
        if mode == WriteMode::Merge && PROTOCOL.check_append_only(state.snapshot()).is_err() {
            return Err(CoreError::UnsupportedTable(format!(
                "the table at {} is append-only (delta.appendOnly=true); MERGE would update rows",
                self.uri
            ))
            .into());
        }
        Ok(())
    }

    /// Fails with `INVALID_ARGUMENT` when `deleteWhen` is not a condition over the table's
    /// columns.
    #[napi]
    pub fn check_delete_when(&self, delete_when: String) -> napi::Result<()> {
        let schema = self.arrow_schema()?;
        crate::merge::check_delete_when(&schema, &delete_when)
            .map_err(|reason| CoreError::InvalidArgument(reason).into())
    }

    /// Rows and files per partition at the latest version, from the log (no data is read).
    #[napi]
    pub async fn partition_summary(&self) -> napi::Result<Vec<PartitionSummary>> {
        let mut table = self.current()?;
        table.update_state().await.map_err(CoreError::from)?;
        let state = table.snapshot().map_err(CoreError::from)?;
        let mut by_partition: std::collections::BTreeMap<String, PartitionSummary> =
            std::collections::BTreeMap::new();
        for file in state.log_data().iter() {
            let mut values: Vec<(String, Option<String>)> =
                file.partition_values_map().into_iter().collect();
            values.sort();
            let partition = values
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("/");
            let entry = by_partition
                .entry(partition.clone())
                .or_insert(PartitionSummary {
                    partition,
                    files: 0,
                    rows: 0.0,
                    bytes: 0.0,
                });
            entry.files += 1;
            entry.rows += file.num_records().unwrap_or(0) as f64;
            entry.bytes += file.size() as f64;
        }
        *lock(&self.table)? = table;
        Ok(by_partition.into_values().collect())
    }

    /// Reloads the table to its latest version and returns that version.
    #[napi]
    pub async fn refresh(&self) -> napi::Result<i64> {
        let mut table = self.current()?;
        table.update_state().await.map_err(CoreError::from)?;
        let version = table.version().map_or(-1, |v| v as i64);
        *lock(&self.table)? = table;
        Ok(version)
    }

    /// The versions the table's log records for these application ids, at its latest version.
    #[napi]
    pub async fn txn_versions(&self, app_ids: Vec<String>) -> napi::Result<Vec<TxnVersion>> {
        let mut table = self.current()?;
        table.update_state().await.map_err(CoreError::from)?;
        let versions = crate::positions::read_txn_versions(&table, &app_ids).await?;
        *lock(&self.table)? = table;
        Ok(app_ids
            .into_iter()
            .map(|app_id| {
                let version = versions.get(&app_id).map(|&v| v as f64);
                TxnVersion { app_id, version }
            })
            .collect())
    }

    /// Makes `stage` decode with the table's schema as loaded now, when another writer changed
    /// it; returns the columns added (none when the schema is the stage's already).
    #[napi]
    pub fn follow_schema(&self, stage: &Stage) -> napi::Result<Vec<String>> {
        Ok(stage.follow(self.arrow_schema()?)?)
    }

    /// A stage that decodes messages into rows of this table.
    #[napi]
    pub fn create_stage(&self, options: StageOptions) -> napi::Result<Stage> {
        let schema = self.arrow_schema()?;
        let day_source = match options.day_source {
            DaySourceKind::Column => DaySource::Column,
            DaySourceKind::KafkaTimestamp => DaySource::KafkaTimestamp,
            DaySourceKind::Field => DaySource::Field(options.day_field.ok_or_else(|| {
                CoreError::InvalidArgument("daySource 'field' needs dayField".into())
            })?),
        };
        let spec = DecodeSpec::new(
            schema,
            DecodeOptions {
                partition_column: options.partition_column,
                day_source,
                timezone: day::parse_timezone(&options.timezone)
                    .map_err(CoreError::InvalidArgument)?,
                reject_unknown_fields: options.reject_unknown_fields,
                metadata: options.kafka_metadata.unwrap_or_default(),
                topics: options.topics,
                reject_null_keys: options.reject_null_keys.unwrap_or_default(),
                epoch_unit: options.epoch_unit.unwrap_or_default(),
                day_window_years: options.day_window_years.unwrap_or(DEFAULT_DAY_WINDOW_YEARS),
            },
        )?;
        let staging = match options.staging {
            Some(o) => Some(Staging::open(
                std::path::Path::new(&o.dir),
                o.identity,
                spec.options.topics.clone(),
                o.max_memory_bytes.max(0.0) as usize,
                o.bucket_keys.unwrap_or_default(),
            )?),
            None => None,
        };
        Ok(Stage::new(spec, staging))
    }

    /// Commits one part of the segment (its rows, or its dead letters) in one transaction that
    /// also records, per topic-partition, the last offset covered. Rows the table already holds
    /// (by its recorded offsets) are dropped, so a replay never duplicates; the rest are
    /// consolidated per day and appended or merged; conflicts are retried against the new
    /// version.
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
        let table = self.table.clone();
        let data = segment.data.clone();
        let positions = positions_from.map(|t| t.table.clone());
        env.spawn_future(async move {
            let result = commit_segment(table, data, app_ids, options, positions).await?;
            Ok(result)
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
        let table = self.table.clone();
        let data = segment.data.clone();
        env.spawn_future(async move {
            let records = unhandled_dead_letters(table, data, app_ids).await?;
            Ok(records)
        })
    }

    /// Records where partitions start (`version`: the offset before the first to read) for
    /// app ids the table has no version for yet, in one commit of txn actions only; ids with a
    /// version are left as they are. Returns the ids recorded.
    #[napi]
    pub async fn record_starts(
        &self,
        starts: Vec<TxnVersion>,
        max_attempts: u32,
    ) -> napi::Result<Vec<String>> {
        let recorded = record_starts(self.table.clone(), starts, max_attempts).await?;
        Ok(recorded)
    }
}
