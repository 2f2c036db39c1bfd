//! The target table's operations behind `DeltaTarget` (table.rs, the binding): opening it
//! (or the dead-letter table, created when absent), the checks before writing, and reading its
//! newest version and recorded positions, each with transient storage failures retried.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::{TransactionError, PROTOCOL};
use deltalake::kernel::DataType as DeltaDataType;
use deltalake::{ensure_table_uri, DeltaTable, DeltaTableBuilder, DeltaTableError};

use crate::create::create;
use crate::day;
use crate::dead_letters::dead_letter_schema;
use crate::decode::{DaySource, DecodeOptions, DecodeSpec};
use crate::error::{lock, CoreError, CoreResult};
use crate::positions::{check_positions_kept, read_txn_versions, TxnVersion};
use crate::retry::{classify_core, with_retry, Failure, StorageRetry};
use crate::spill::Staging;
use crate::stage::Stage;
use crate::table::{
    ColumnInfo, DaySourceKind, MessageFormat, PartitionSummary, StageOptions, TableInfo, WriteMode,
};

/// How far from today a record's day may be, by default.
const DEFAULT_DAY_WINDOW_YEARS: u32 = 10;

/// A loaded table (shared with the commits in flight) and how its storage failures are retried.
#[derive(Clone)]
pub struct Target {
    pub table: Arc<Mutex<DeltaTable>>,
    pub uri: String,
    pub retry: StorageRetry,
}

impl Target {
    /// Opens an existing table; `TABLE_NOT_FOUND` when there is none.
    pub async fn open(
        uri: String,
        options: HashMap<String, String>,
        retry: StorageRetry,
    ) -> CoreResult<Self> {
        let table = with_retry(retry, "opening the table", || load(&uri, options.clone())).await?;
        Ok(Self::new(table, uri, retry))
    }

    /// Opens the dead-letter table, creating it (partitioned by day) when absent.
    pub async fn open_dead_letters(
        uri: String,
        options: HashMap<String, String>,
        retry: StorageRetry,
    ) -> CoreResult<Self> {
        let table = with_retry(retry, "opening the dead-letter table", || async {
            // Asked first rather than learnt from a failed load, which delta-rs's kernel logs
            // at ERROR on every first start.
            if has_table(&uri, options.clone()).await? {
                return load(&uri, options.clone()).await;
            }
            match create(
                &uri,
                &dead_letter_schema(),
                &["day".to_string()],
                options.clone(),
            )
            .await
            {
                // Version 0 exists after all: another instance created it, or an earlier
                // attempt of ours whose answer was lost did.
                Err(err) if classify_core(&err) == Failure::Conflict => {
                    load(&uri, options.clone()).await
                }
                created => created,
            }
        })
        .await?;
        Ok(Self::new(table, uri, retry))
    }

    fn new(table: DeltaTable, uri: String, retry: StorageRetry) -> Self {
        Self {
            table: Arc::new(Mutex::new(table)),
            uri,
            retry,
        }
    }

    /// The table at the loaded version.
    pub fn current(&self) -> CoreResult<DeltaTable> {
        Ok(lock(&self.table)?.clone())
    }

    /// The table at its newest version (kept as the loaded one).
    pub async fn refresh(&self, what: &'static str) -> CoreResult<DeltaTable> {
        let (table, ()) = self
            .reload_and_read(what, |table| async { Ok((table, ())) })
            .await?;
        Ok(table)
    }

    /// Loads the newest version, reads from it with `read`, and keeps it as the current one;
    /// the load and the read are retried together on transient storage failures.
    async fn reload_and_read<T, F, Fut>(
        &self,
        what: &'static str,
        read: F,
    ) -> CoreResult<(DeltaTable, T)>
    where
        F: Fn(DeltaTable) -> Fut,
        Fut: std::future::Future<Output = CoreResult<(DeltaTable, T)>>,
    {
        let (table, value) = with_retry(self.retry, what, || async {
            let mut table = self.current()?;
            table.update_state().await?;
            read(table).await
        })
        .await?;
        *lock(&self.table)? = table.clone();
        Ok((table, value))
    }

    /// The table's columns as Arrow sees them, at the loaded version.
    pub fn arrow_schema(&self) -> CoreResult<SchemaRef> {
        Ok(self.current()?.snapshot()?.snapshot().arrow_schema())
    }

    /// `UNSUPPORTED_TABLE` when delta-rs cannot write this table, when it would expire the
    /// Kafka positions we record, or when MERGE meets an append-only table.
    pub fn check_writable(&self, mode: WriteMode) -> CoreResult<()> {
        let table = self.current()?;
        let state = table.snapshot()?;
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
            return Err(CoreError::UnsupportedTable(reason));
        }
        check_positions_kept(&table)?;
        if mode == WriteMode::Merge && PROTOCOL.check_append_only(state.snapshot()).is_err() {
            return Err(CoreError::UnsupportedTable(format!(
                "the table at {} is append-only (delta.appendOnly=true); MERGE would update rows",
                self.uri
            )));
        }
        Ok(())
    }

    /// Rows and files per partition at the newest version, from the log.
    pub async fn partition_summary(&self) -> CoreResult<Vec<PartitionSummary>> {
        let table = self.refresh("reading the table").await?;
        let state = table.snapshot()?;
        let mut by_partition: BTreeMap<String, PartitionSummary> = BTreeMap::new();
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
        Ok(by_partition.into_values().collect())
    }

    /// The versions the newest version's log records for these application ids.
    pub async fn txn_versions(&self, app_ids: Vec<String>) -> CoreResult<Vec<TxnVersion>> {
        let ids = &app_ids;
        let (_, versions) = self
            .reload_and_read("reading positions", |table| async move {
                let versions = read_txn_versions(&table, ids).await?;
                Ok((table, versions))
            })
            .await?;
        Ok(app_ids
            .into_iter()
            .map(|app_id| {
                let version = versions.get(&app_id).map(|&v| v as f64);
                TxnVersion { app_id, version }
            })
            .collect())
    }

    /// A stage that decodes messages into rows of this table.
    pub fn create_stage(&self, options: StageOptions) -> CoreResult<Stage> {
        let schema = self.arrow_schema()?;
        let day_source = match options.day_source {
            DaySourceKind::Column => DaySource::Column,
            DaySourceKind::KafkaTimestamp => DaySource::KafkaTimestamp,
            DaySourceKind::ChangeTime => DaySource::ChangeTime,
            DaySourceKind::Field => DaySource::Field(options.day_field.ok_or_else(|| {
                CoreError::InvalidArgument("daySource 'field' needs dayField".into())
            })?),
        };
        let topics_grow = options.topics_grow.unwrap_or(false);
        let staging = match options.staging {
            Some(o) => Some(Staging::open(
                std::path::Path::new(&o.dir),
                o.identity,
                options.topics.clone(),
                topics_grow,
                o.max_memory_bytes.max(0.0) as usize,
                o.bucket_keys.unwrap_or_default(),
            )?),
            None => None,
        };
        // A growing list starts with what the staged rows refer to (the manifest's list).
        let topics = match &staging {
            Some(s) => s.topics().to_vec(),
            None => options.topics,
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
                topics,
                reject_null_keys: options.reject_null_keys.unwrap_or_default(),
                epoch_unit: options.epoch_unit.unwrap_or_default(),
                day_window_years: options.day_window_years.unwrap_or(DEFAULT_DAY_WINDOW_YEARS),
                add_columns: options.add_columns.unwrap_or(false),
                transform: options.transform.unwrap_or_default(),
                changes: options.format == Some(MessageFormat::Debezium),
            },
        )?;
        Ok(Stage::new(spec, staging))
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

pub async fn load(uri: &str, storage_options: HashMap<String, String>) -> CoreResult<DeltaTable> {
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
pub async fn has_table(uri: &str, storage_options: HashMap<String, String>) -> CoreResult<bool> {
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
