//! Dead letters: messages that cannot become rows, staged with their raw bytes, coordinates and
//! reason for the dead-letter table.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt16Array,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::decode::{
    utc_millis, DecodeSpec, Messages, Rejection, OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN,
};
use crate::error::CoreResult;

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
        Arc::new(BinaryArray::from_iter(
            rejected.iter().map(|r| Some(messages.payload(idx(r)))),
        )),
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
