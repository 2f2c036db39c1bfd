//! Dead letters: messages that cannot become rows, staged with their raw bytes, coordinates and
//! reason for the dead-letter sink, and what a dead-letter commit writes of them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::AsArray;
use deltalake::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array,
};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use deltalake::datafusion::prelude::{col, lit, Expr, SessionContext};
use deltalake::DeltaTable;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::decode::{
    utc_millis, DecodeSpec, Messages, Rejection, OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN,
};
use crate::error::{lock, CoreError, CoreResult};
use crate::positions::{column, AppIds, CommitWindows, PartitionAppId, PartitionKey};
use crate::segment::SegmentData;
use crate::spill_read::{CoveredBatch, SegmentPart};

/// The schema of the dead-letter table.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(dead_letter_fields()))
}

/// Dead letters as staged: the table's columns plus the internal position columns.
fn staged_dead_letter_schema() -> SchemaRef {
    let mut fields = dead_letter_fields();
    fields.push(Field::new(TOPIC_COLUMN, DataType::UInt16, false));
    fields.push(Field::new(PARTITION_COLUMN, DataType::Int32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn dead_letter_fields() -> Vec<Field> {
    vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", utc_millis(), true),
        Field::new("key", DataType::Binary, true),
        Field::new("payload", DataType::Binary, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("failed_at", utc_millis(), false),
        Field::new("day", DataType::Utf8, false),
    ]
}

pub fn dead_letter_batch(
    spec: &DecodeSpec,
    messages: &Messages<'_>,
    rejected: &[Rejection],
) -> CoreResult<RecordBatch> {
    let now = chrono::Utc::now();
    let today = now.format("%Y-%m-%d").to_string();
    let idx = |r: &Rejection| r.message_index;
    let topics = &spec.options.topics;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rejected.iter().map(|r| {
            let t = messages.topic_indexes[idx(r)] as usize;
            topics.get(t).map_or("", String::as_str)
        }))),
        Arc::new(Int32Array::from_iter_values(
            rejected.iter().map(|r| messages.partitions[idx(r)]),
        )),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|r| messages.offset(idx(r))),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter(rejected.iter().map(|r| {
                let ts = messages.timestamps[idx(r)];
                (ts.is_finite() && ts >= 0.0).then_some(ts as i64)
            }))
            .with_timezone("UTC"),
        ),
        Arc::new(BinaryArray::from_iter(
            rejected.iter().map(|r| messages.key(idx(r))),
        )),
        Arc::new(BinaryArray::from_iter(rejected.iter().map(|r| {
            (!messages.is_tombstone(idx(r))).then(|| messages.payload(idx(r)))
        }))),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|r| r.kind),
        )),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|r| r.detail.as_str()),
        )),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                rejected.iter().map(|_| now.timestamp_millis()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|_| today.as_str()),
        )),
        Arc::new(UInt16Array::from_iter_values(
            rejected.iter().map(|r| messages.topic_indexes[idx(r)]),
        )),
        Arc::new(Int32Array::from_iter_values(
            rejected.iter().map(|r| messages.partitions[idx(r)]),
        )),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|r| messages.offset(idx(r))),
        )),
    ];
    Ok(RecordBatch::try_new(staged_dead_letter_schema(), columns)?)
}

/// Dead letters already in the dead-letter table among those a commit would write: only where
/// this table's own recorded version (`own`) is ahead of the rows' table (a crash between the
/// two commits of a flush), so a healthy flush reads nothing. Keyed by topic, partition, offset.
pub async fn present_dead_letters(
    table: &DeltaTable,
    windows: &CommitWindows,
    own: &HashMap<PartitionKey, i64>,
) -> CoreResult<HashSet<(String, i32, i64)>> {
    let mut replayed: Option<Expr> = None;
    for (key, recorded, reach) in windows.iter() {
        let Some(&own) = own.get(&key) else { continue };
        let upper = own.min(reach);
        if recorded.is_some_and(|r| upper <= r) {
            continue;
        }
        let mut range = col("partition")
            .eq(lit(key.1))
            .and(col("offset").lt_eq(lit(upper)));
        if let Some(r) = recorded {
            range = range.and(col("offset").gt(lit(r)));
        }
        replayed = Some(match replayed {
            Some(e) => e.or(range),
            None => range,
        });
    }
    let Some(predicate) = replayed else {
        return Ok(HashSet::new());
    };
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    let rows = ctx
        .read_table(provider)?
        .filter(predicate)?
        .select_columns(&["topic", "partition", "offset"])?
        .collect()
        .await?;
    let mut present = HashSet::new();
    for batch in &rows {
        // The scan may hand strings over as views and integers widened: read them as ours.
        let as_type = |name: &str, to: &DataType| -> CoreResult<ArrayRef> {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| CoreError::Internal(format!("dead-letter scan lacks {name:?}")))?;
            Ok(cast(column, to)?)
        };
        let (topics, partitions, offsets) = (
            as_type("topic", &DataType::Utf8)?,
            as_type("partition", &DataType::Int32)?,
            as_type("offset", &DataType::Int64)?,
        );
        let topics = topics.as_string::<i32>();
        let partitions = partitions.as_primitive::<Int32Type>();
        let offsets = offsets.as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            present.insert((
                topics.value(r).to_string(),
                partitions.value(r),
                offsets.value(r),
            ));
        }
    }
    Ok(present)
}

/// The dead letters the windows keep and the table does not hold yet, without the position
/// columns.
pub fn fresh_dead_letters(
    days: &[Vec<CoveredBatch>],
    windows: &CommitWindows,
    present: &HashSet<(String, i32, i64)>,
) -> CoreResult<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for (coverage, batch) in days.iter().flatten() {
        let Some(kept) = windows.select(coverage, batch)? else {
            continue;
        };
        if present.is_empty() {
            out.push(kept);
            continue;
        }
        let topics = column::<StringArray>(&kept, "topic")?;
        let partitions = column::<Int32Array>(&kept, "partition")?;
        let offsets = column::<Int64Array>(&kept, "offset")?;
        let keep: BooleanArray = (0..kept.num_rows())
            .map(|r| {
                let id = (
                    topics.value(r).to_string(),
                    partitions.value(r),
                    offsets.value(r),
                );
                Some(!present.contains(&id))
            })
            .collect();
        let fresh = filter_record_batch(&kept, &keep)?;
        if fresh.num_rows() > 0 {
            out.push(fresh);
        }
    }
    Ok(out)
}

/// A dead letter for a sink outside Delta (a Kafka topic): the original message and why it
/// could not become a row.
#[napi(object)]
pub struct DeadLetterRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: f64,
    /// The Kafka timestamp in epoch milliseconds, when the message had one.
    pub timestamp: Option<f64>,
    pub key: Option<Buffer>,
    pub payload: Option<Buffer>,
    pub reason: String,
    pub detail: String,
}

/// The segment's dead letters above the rows' table's recorded positions: what a flush must
/// deliver before that table's commit moves the positions past them.
pub async fn unhandled_dead_letters(
    table: Arc<Mutex<DeltaTable>>,
    segment: Arc<Mutex<Option<SegmentData>>>,
    app_ids: Vec<PartitionAppId>,
) -> CoreResult<Vec<DeadLetterRecord>> {
    let part = {
        let guard = lock(&segment)?;
        let data = guard
            .as_ref()
            .ok_or_else(|| CoreError::InvalidArgument("the segment was released".into()))?;
        Arc::new(SegmentPart::dead_letters(data)?)
    };
    let reader = part.clone();
    let batches = tokio::task::spawn_blocking(move || reader.read_by_day()).await??;
    let mut current = lock(&table)?.clone();
    current.update_state().await?;
    let recorded = AppIds::new(app_ids).recorded_in(&current).await?;
    let windows = CommitWindows::plan(&part.coverages(), &|k| recorded.get(k).copied())?;
    let mut records = Vec::new();
    for (coverage, batch) in batches.iter().flatten() {
        if let Some(kept) = windows.select(coverage, batch)? {
            records.extend(records_of(&kept)?);
        }
    }
    Ok(records)
}

fn records_of(batch: &RecordBatch) -> CoreResult<Vec<DeadLetterRecord>> {
    let topics = column::<StringArray>(batch, "topic")?;
    let partitions = column::<Int32Array>(batch, "partition")?;
    let offsets = column::<Int64Array>(batch, "offset")?;
    let timestamps = column::<TimestampMillisecondArray>(batch, "timestamp")?;
    let keys = column::<BinaryArray>(batch, "key")?;
    let payloads = column::<BinaryArray>(batch, "payload")?;
    let reasons = column::<StringArray>(batch, "reason")?;
    let details = column::<StringArray>(batch, "detail")?;
    let bytes =
        |a: &BinaryArray, r: usize| (!a.is_null(r)).then(|| Buffer::from(a.value(r).to_vec()));
    Ok((0..batch.num_rows())
        .map(|r| DeadLetterRecord {
            topic: topics.value(r).to_string(),
            partition: partitions.value(r),
            offset: offsets.value(r) as f64,
            timestamp: (!timestamps.is_null(r)).then(|| timestamps.value(r) as f64),
            key: bytes(keys, r),
            payload: bytes(payloads, r),
            reason: reasons.value(r).to_string(),
            detail: details.value(r).to_string(),
        })
        .collect())
}
