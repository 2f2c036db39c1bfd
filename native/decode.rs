//! Decoding a packed batch of Kafka messages straight into Arrow rows of the table's schema.
//!
//! The JSON goes through arrow-json's tape decoder against the table schema (no per-message DOM,
//! see `json.rs`). A batch is split into chunks decoded in parallel on rayon; one bad message
//! costs its chunk a slow pass but never the batch, and its reason reaches the dead-letter sink.

use std::ops::Range;
use std::sync::Arc;

use arrow_json::ReaderBuilder;
use chrono_tz::Tz;
use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringBuilder,
    UInt16Array,
};
use deltalake::arrow::compute::{cast, concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;

use crate::day::{self, EpochDay, EpochUnit};
use crate::debezium::{Change, Unwrapped};
use crate::error::{CoreError, CoreResult};
use crate::json::{decode_json, screen_payload};
pub use crate::messages::Messages;
use crate::metadata::{KafkaMetadataColumns, MetadataColumn};
use crate::timestamps::TimestampFields;
use crate::transform::{Transform, TransformOptions};

/// Internal columns carried by staged rows (dropped before writing): the Kafka position of each
/// row, for exactly-once filtering and for ordering duplicates.
pub const TOPIC_COLUMN: &str = "__kdr_topic";
pub const PARTITION_COLUMN: &str = "__kdr_partition";
pub const OFFSET_COLUMN: &str = "__kdr_offset";

/// The smallest chunk worth a rayon task; smaller batches decode in one piece.
const MIN_CHUNK: usize = 1024;

pub use crate::rejection::Rejection;

/// Where a record's day comes from.
#[derive(Debug, Clone)]
pub enum DaySource {
    /// The partition column's own field in the record (`YYYY-MM-DD`).
    Column,
    /// An event-time field: ISO-8601 text or an epoch number in `DecodeOptions::epoch_unit`.
    Field(String),
    /// The Kafka message timestamp.
    KafkaTimestamp,
    /// A change event's `ts_ms` (`debezium.rs`).
    ChangeTime,
}

/// What decoding needs to know besides the messages.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub partition_column: String,
    pub day_source: DaySource,
    pub timezone: Tz,
    pub reject_unknown_fields: bool,
    pub metadata: KafkaMetadataColumns,
    pub topics: Vec<String>,
    /// Dedup key columns whose null sends the message to the dead-letter sink.
    pub reject_null_keys: Vec<String>,
    /// The unit of epoch numbers in event-time fields and timestamp columns.
    pub epoch_unit: EpochUnit,
    /// A record whose day is further than this from today is a dead letter.
    pub day_window_years: u32,
    /// A field the table lacks becomes a column (`evolve.rs`).
    pub add_columns: bool,
    /// A filter and derived columns (`transform.rs`).
    pub transform: TransformOptions,
    /// The messages are Debezium change events (`debezium.rs`): rows carry a delete flag.
    pub changes: bool,
}

/// The kind of the table's partition column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DayColumn {
    Utf8,
    Date32,
}

/// A decoding plan for one table: schemas resolved once, used for every batch.
#[derive(Debug)]
pub struct DecodeSpec {
    pub options: DecodeOptions,
    pub table_schema: SchemaRef,
    /// The columns whose types are settled: the table's as loaded, plus evolved columns once
    /// their rows were taken for a commit. `table_schema` less these are pending (`evolve.rs`).
    pub committed: SchemaRef,
    /// Table schema plus the internal position columns.
    pub staged_schema: SchemaRef,
    /// The table columns read from the JSON, all nullable so a missing field gets its own reason.
    pub(crate) json_schema: SchemaRef,
    day_column: DayColumn,
    metadata: Vec<MetadataColumn>,
    timestamps: TimestampFields,
    transform: Option<Transform>,
}

/// The outcome of decoding one batch.
pub struct Decoded {
    /// Accepted rows in the staged schema, in message order.
    pub rows: Option<RecordBatch>,
    /// The day of each accepted row.
    pub days: Vec<EpochDay>,
    pub rejected: Vec<Rejection>,
    /// Indexes of the messages `transform.filter` dropped.
    pub filtered: Vec<usize>,
}

impl DecodeSpec {
    pub fn new(table_schema: SchemaRef, options: DecodeOptions) -> CoreResult<Self> {
        Self::evolved(table_schema.clone(), table_schema, options)
    }

    /// A spec for `table_schema` of which only `committed` is settled (schema evolution).
    pub fn evolved(
        table_schema: SchemaRef,
        committed: SchemaRef,
        options: DecodeOptions,
    ) -> CoreResult<Self> {
        let partition = table_schema
            .field_with_name(&options.partition_column)
            .map_err(|_| {
                CoreError::SchemaMismatch(format!(
                    "the table has no column {:?} (delta.partition_column)",
                    options.partition_column
                ))
            })?;
        let day_column = match partition.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DayColumn::Utf8,
            DataType::Date32 => DayColumn::Date32,
            other => {
                return Err(CoreError::SchemaMismatch(format!(
                    "partition column {:?} is {other}; a day partition must be a string or a date",
                    options.partition_column
                )))
            }
        };
        let metadata = options.metadata.resolve(&table_schema)?;
        let derived_day = !matches!(options.day_source, DaySource::Column);
        let json_fields: Vec<Field> = table_schema
            .fields()
            .iter()
            .filter(|f| !metadata.iter().any(|m| &m.name == f.name()))
            .filter(|f| !(derived_day && f.name() == &options.partition_column))
            .filter(|f| !options.transform.derived_names().any(|d| d == f.name()))
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let json_schema: SchemaRef = Arc::new(Schema::new(json_fields));
        for name in options.transform.derived_names() {
            if name == options.partition_column || metadata.iter().any(|m| m.name == name) {
                return Err(CoreError::InvalidArgument(format!(
                    "transform.columns.{name}: the column takes the day or Kafka metadata already"
                )));
            }
        }
        let transform = Transform::plan(&options.transform, &json_schema, &table_schema)?;
        Ok(Self {
            transform,
            timestamps: TimestampFields::of(&json_schema),
            json_schema,
            staged_schema: crate::schema_change::staged_schema(&table_schema, options.changes),
            table_schema,
            committed,
            day_column,
            metadata,
            options,
        })
    }

    /// Decodes a whole batch, in parallel chunks.
    pub fn decode(&self, messages: &Messages<'_>) -> CoreResult<Decoded> {
        messages.validate()?;
        // Change events are unwrapped first: from here on a message's payload is its image.
        let unwrapped = self.options.changes.then(|| Unwrapped::of(messages));
        let view = unwrapped.as_ref().map(|u| u.view(messages));
        let messages = view.as_ref().unwrap_or(messages);
        let changes = unwrapped.as_ref().map(|u| u.changes.as_slice());
        let n = messages.len();
        let threads = rayon::current_num_threads().max(1);
        let chunk = (n / (threads * 4)).max(MIN_CHUNK);
        let ranges: Vec<Range<usize>> = (0..n)
            .step_by(chunk)
            .map(|start| start..(start + chunk).min(n))
            .collect();
        let parts: Vec<CoreResult<Decoded>> = ranges
            .into_par_iter()
            .map(|range| self.decode_chunk(messages, range, changes))
            .collect();
        let mut batches = Vec::with_capacity(parts.len());
        let mut days = Vec::with_capacity(n);
        let mut rejected = Vec::new();
        let mut filtered = Vec::new();
        for part in parts {
            let part = part?;
            batches.extend(part.rows);
            days.extend(part.days);
            rejected.extend(part.rejected);
            filtered.extend(part.filtered);
        }
        let rows = match batches.len() {
            0 => None,
            1 => batches.pop(),
            _ => Some(concat_batches(&self.staged_schema, &batches)?),
        };
        Ok(Decoded {
            rows,
            days,
            rejected,
            filtered,
        })
    }

    fn decode_chunk(
        &self,
        messages: &Messages<'_>,
        range: Range<usize>,
        changes: Option<&[Change]>,
    ) -> CoreResult<Decoded> {
        let mut rejected = Vec::new();
        // Tombstones of change events are skipped, counted with the filtered messages.
        let mut skipped = Vec::new();
        let candidates: Vec<usize> = range
            .filter(|&i| match screen(messages, i, changes) {
                Ok(true) => true,
                Ok(false) => {
                    skipped.push(i);
                    false
                }
                Err((kind, detail)) => {
                    rejected.push(Rejection::new(i, kind, detail));
                    false
                }
            })
            .collect();
        let json_builder = || {
            // With add_columns an unknown field must fail its message to be found, and a field
            // widened to string takes the numbers and booleans that made it one.
            let evolving = self.options.add_columns;
            ReaderBuilder::new(self.json_schema.clone())
                .with_strict_mode(self.options.reject_unknown_fields || evolving)
                .with_coerce_primitive(evolving)
        };
        let (json_rows, accepted) =
            decode_json(&json_builder, messages, &candidates, &mut rejected)?;
        let Some(json_rows) = json_rows else {
            return Ok(Decoded {
                rows: None,
                days: Vec::new(),
                rejected,
                filtered: skipped,
            });
        };

        let mut keep = vec![true; accepted.len()];
        self.check_required(&json_rows, &accepted, &mut keep, &mut rejected);
        self.check_metadata(messages, &accepted, &mut keep, &mut rejected);
        let json_rows = self.timestamps.read_numbers(
            self.options.epoch_unit,
            messages,
            &json_rows,
            &accepted,
            &mut keep,
            &mut rejected,
        )?;
        let days = self.derive_days(
            messages,
            &json_rows,
            &accepted,
            changes,
            &mut keep,
            &mut rejected,
        )?;

        let (json_rows, days, accepted) = retain(&json_rows, days, accepted, &keep)?;
        // Every row kept has its day.
        let days: Vec<EpochDay> = days.into_iter().flatten().collect();
        let (json_rows, days, accepted, derived, mut filtered) = match &self.transform {
            None => (json_rows, days, accepted, Vec::new(), Vec::new()),
            Some(transform) => {
                let topics = &self.options.topics;
                let out =
                    transform.apply(&json_rows, messages, &accepted, topics, &mut rejected)?;
                let (json_rows, days, accepted) = retain(&json_rows, days, accepted, &out.keep)?;
                (json_rows, days, accepted, out.columns, out.filtered)
            }
        };
        let rows = self.assemble(messages, &json_rows, &accepted, &days, &derived, changes)?;
        rejected.sort_by_key(|r| r.message_index);
        if !skipped.is_empty() {
            filtered.extend(skipped);
            filtered.sort_unstable();
        }
        Ok(Decoded {
            rows: Some(rows),
            days,
            rejected,
            filtered,
        })
    }

    /// Non-nullable table columns read from JSON must be present, and so must dedup keys when
    /// null keys are dead-lettered: reject rows where one is null.
    fn check_required(
        &self,
        json_rows: &RecordBatch,
        accepted: &[usize],
        keep: &mut [bool],
        rejected: &mut Vec<Rejection>,
    ) {
        for (column, field) in json_rows.columns().iter().zip(json_rows.schema().fields()) {
            // A missing day is reported by the day derivation, with its own reason.
            if field.name() == &self.options.partition_column {
                continue;
            }
            let required = self
                .table_schema
                .field_with_name(field.name())
                .is_ok_and(|f| !f.is_nullable());
            let key = self.options.reject_null_keys.contains(field.name());
            if !(required || key) || column.null_count() == 0 {
                continue;
            }
            let (kind, detail) = if required {
                (
                    "missing_field",
                    format!("required field {:?} is missing or null", field.name()),
                )
            } else {
                (
                    "null_key",
                    format!("dedup key {:?} is missing or null", field.name()),
                )
            };
            for (row, &message_index) in accepted.iter().enumerate() {
                if keep[row] && column.is_null(row) {
                    keep[row] = false;
                    rejected.push(Rejection::new(message_index, kind, detail.clone()));
                }
            }
        }
    }

    /// A message that would put null into a NOT NULL metadata column (no key, no headers, no
    /// timestamp, a key that is not text) is a dead letter, not a failed batch.
    fn check_metadata(
        &self,
        messages: &Messages<'_>,
        accepted: &[usize],
        keep: &mut [bool],
        rejected: &mut Vec<Rejection>,
    ) {
        // Nullable columns take null: no per-message check for them.
        for column in self.metadata.iter().filter(|c| c.can_refuse()) {
            for (row, &message_index) in accepted.iter().enumerate() {
                if !keep[row] {
                    continue;
                }
                if let Some((kind, detail)) = column.refusal(messages, message_index) {
                    keep[row] = false;
                    rejected.push(Rejection::new(message_index, kind, detail));
                }
            }
        }
    }

    /// Builds rows in the staged schema: JSON columns, the day, Kafka metadata, positions.
    fn assemble(
        &self,
        messages: &Messages<'_>,
        json_rows: &RecordBatch,
        accepted: &[usize],
        days: &[EpochDay],
        derived: &[(String, ArrayRef)],
        changes: Option<&[Change]>,
    ) -> CoreResult<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.staged_schema.fields().len());
        for field in self.table_schema.fields() {
            let name = field.name().as_str();
            let column: ArrayRef = if name == self.options.partition_column {
                self.day_array(days)
            } else if let Some(meta) = self.metadata.iter().find(|m| m.name == name) {
                meta.values(messages, accepted, &self.options.topics)
            } else if let Some((_, values)) = derived.iter().find(|(n, _)| n == name) {
                values.clone()
            } else {
                json_rows.column_by_name(name).cloned().ok_or_else(|| {
                    CoreError::Internal(format!("column {name:?} was not decoded"))
                })?
            };
            columns.push(conform(column, field.data_type(), name)?);
        }
        if let Some(changes) = changes {
            columns.push(Arc::new(BooleanArray::from_iter(accepted.iter().map(
                |&i| Some(matches!(changes[i], Change::Row { delete: true, .. })),
            ))));
        }
        columns.push(Arc::new(UInt16Array::from_iter_values(
            accepted.iter().map(|&i| messages.topic_indexes[i]),
        )));
        columns.push(Arc::new(Int32Array::from_iter_values(
            accepted.iter().map(|&i| messages.partitions[i]),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            accepted.iter().map(|&i| messages.offset(i)),
        )));
        Ok(RecordBatch::try_new(self.staged_schema.clone(), columns)?)
    }

    fn day_array(&self, days: &[EpochDay]) -> ArrayRef {
        match self.day_column {
            DayColumn::Date32 => Arc::new(Date32Array::from(days.to_vec())),
            // A batch holds few distinct days, in runs: each run's text is formatted once.
            DayColumn::Utf8 => {
                let mut last: Option<(EpochDay, String)> = None;
                let mut builder = StringBuilder::with_capacity(days.len(), days.len() * 10);
                for &d in days {
                    match &last {
                        Some((day, text)) if *day == d => builder.append_value(text),
                        _ => {
                            let text = day::format_day(d);
                            builder.append_value(&text);
                            last = Some((d, text));
                        }
                    }
                }
                Arc::new(builder.finish())
            }
        }
    }
}

/// The rows of a chunk where `keep` is true: JSON columns, days and message indexes alike.
fn retain<D>(
    json_rows: &RecordBatch,
    days: Vec<D>,
    accepted: Vec<usize>,
    keep: &[bool],
) -> CoreResult<(RecordBatch, Vec<D>, Vec<usize>)> {
    let json_rows = filter_record_batch(json_rows, &BooleanArray::from(keep.to_vec()))?;
    fn kept<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
        values
            .into_iter()
            .zip(keep)
            .filter_map(|(v, &k)| k.then_some(v))
            .collect()
    }
    let (days, accepted) = (kept(days, keep), kept(accepted, keep));
    Ok((json_rows, days, accepted))
}

/// A message must have a value holding a JSON object; anything else is rejected before
/// decoding. `Ok(false)`: a change event that writes nothing (skipped).
fn screen(
    messages: &Messages<'_>,
    i: usize,
    changes: Option<&[Change]>,
) -> Result<bool, (&'static str, String)> {
    match changes.map(|c| &c[i]) {
        Some(Change::Skip) => return Ok(false),
        Some(Change::Reject(kind, detail)) => return Err((kind, detail.clone())),
        Some(Change::Row { .. }) => {}
        None if messages.is_tombstone(i) => {
            return Err(("tombstone", "the message has no value (a tombstone)".into()))
        }
        None => {}
    }
    screen_payload(messages.payload(i)).map(|()| true)
}

/// Casts a built column to the table's exact type (e.g. Int32 partition into an Int64 column).
fn conform(column: ArrayRef, target: &DataType, name: &str) -> CoreResult<ArrayRef> {
    if column.data_type() == target {
        return Ok(column);
    }
    cast(&column, target).map_err(|e| {
        CoreError::SchemaMismatch(format!(
            "column {name:?} is {target} but its values are {}: {e}",
            column.data_type()
        ))
    })
}

/// Arrow's millisecond timestamp type with a UTC zone, for the dead-letter table.
pub fn utc_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
