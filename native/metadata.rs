//! Kafka metadata columns: table columns that take a message's topic, partition, offset,
//! timestamp, key or headers instead of a JSON field. A message without a key, headers or
//! timestamp gives such a column null (an empty key stays empty); one that would put null into a
//! NOT NULL column is a dead letter with its own reason, never a failed batch.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use deltalake::arrow::datatypes::{DataType, SchemaRef};

use crate::error::{CoreError, CoreResult};
use crate::messages::Messages;

/// Table columns that receive Kafka metadata rather than a JSON field.
#[napi_derive::napi(object)]
#[derive(Debug, Clone, Default)]
pub struct KafkaMetadataColumns {
    pub topic: Option<String>,
    pub partition: Option<String>,
    pub offset: Option<String>,
    pub timestamp: Option<String>,
    pub key: Option<String>,
    /// A string column receiving the headers as a JSON object.
    pub headers: Option<String>,
}

/// Which part of a message a metadata column takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetadataPart {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Headers,
}

/// One metadata column of the table, resolved against its schema.
#[derive(Debug, Clone)]
pub struct MetadataColumn {
    pub name: String,
    pub part: MetadataPart,
    data_type: DataType,
    nullable: bool,
}

impl KafkaMetadataColumns {
    fn parts(&self) -> impl Iterator<Item = (&str, MetadataPart)> {
        [
            (&self.topic, MetadataPart::Topic),
            (&self.partition, MetadataPart::Partition),
            (&self.offset, MetadataPart::Offset),
            (&self.timestamp, MetadataPart::Timestamp),
            (&self.key, MetadataPart::Key),
            (&self.headers, MetadataPart::Headers),
        ]
        .into_iter()
        .filter_map(|(name, part)| name.as_deref().map(|n| (n, part)))
    }

    /// The mapped columns as the table declares them; a column the table lacks is refused.
    pub fn resolve(&self, table_schema: &SchemaRef) -> CoreResult<Vec<MetadataColumn>> {
        self.parts()
            .map(|(name, part)| {
                let field = table_schema.field_with_name(name).map_err(|_| {
                    CoreError::SchemaMismatch(format!(
                        "delta.kafka_metadata maps onto column {name:?}, which the table does not have"
                    ))
                })?;
                Ok(MetadataColumn {
                    name: name.to_string(),
                    part,
                    data_type: field.data_type().clone(),
                    nullable: field.is_nullable(),
                })
            })
            .collect()
    }
}

impl MetadataColumn {
    /// Whether some message could be refused for this column: only a NOT NULL one of a part a
    /// message may lack.
    pub fn can_refuse(&self) -> bool {
        !self.nullable
            && matches!(
                self.part,
                MetadataPart::Timestamp | MetadataPart::Key | MetadataPart::Headers
            )
    }

    /// Why message `i` cannot fill this column, when it is NOT NULL and the message lacks the
    /// part: a reason kind and a detail naming the column.
    pub fn refusal(&self, messages: &Messages<'_>, i: usize) -> Option<(&'static str, String)> {
        if self.nullable {
            return None;
        }
        let name = &self.name;
        let (kind, what) = match self.part {
            MetadataPart::Topic | MetadataPart::Partition | MetadataPart::Offset => return None,
            MetadataPart::Timestamp if timestamp_of(messages, i).is_none() => {
                ("no_timestamp", "has no Kafka timestamp")
            }
            MetadataPart::Headers if messages.headers(i).is_none() => {
                ("no_headers", "has no headers")
            }
            MetadataPart::Key => match messages.key(i) {
                None => ("no_key", "has no key"),
                Some(bytes) if self.takes_text() && std::str::from_utf8(bytes).is_err() => {
                    ("key_not_utf8", "has a key that is not UTF-8 text")
                }
                Some(_) => return None,
            },
            _ => return None,
        };
        Some((
            kind,
            format!("the message {what}, and column {name:?} (delta.kafka_metadata) is NOT NULL"),
        ))
    }

    fn takes_text(&self) -> bool {
        !matches!(
            self.data_type,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        )
    }

    /// A column of `part` outside the table, of the type its values come in (keys as text):
    /// the Kafka context `transform` expressions read.
    pub fn context(name: &str, part: MetadataPart) -> Self {
        let data_type = match part {
            MetadataPart::Topic | MetadataPart::Key | MetadataPart::Headers => DataType::Utf8,
            MetadataPart::Partition => DataType::Int32,
            MetadataPart::Offset => DataType::Int64,
            MetadataPart::Timestamp => DataType::Timestamp(
                deltalake::arrow::datatypes::TimeUnit::Millisecond,
                Some("UTC".into()),
            ),
        };
        Self {
            name: name.to_string(),
            part,
            data_type,
            nullable: true,
        }
    }

    /// The column as a field of the type [`MetadataColumn::values`] gives.
    pub fn field(&self) -> deltalake::arrow::datatypes::Field {
        deltalake::arrow::datatypes::Field::new(&self.name, self.data_type.clone(), self.nullable)
    }

    /// The column's values for the messages at `accepted`, before the cast to the table's type.
    pub fn values(
        &self,
        messages: &Messages<'_>,
        accepted: &[usize],
        topics: &[String],
    ) -> ArrayRef {
        let each = accepted.iter().copied();
        match self.part {
            MetadataPart::Topic => Arc::new(StringArray::from_iter_values(each.map(|i| {
                let index = messages.topic_indexes[i] as usize;
                topics.get(index).map_or("", String::as_str)
            }))),
            MetadataPart::Partition => Arc::new(Int32Array::from_iter_values(
                each.map(|i| messages.partitions[i]),
            )),
            MetadataPart::Offset => Arc::new(Int64Array::from_iter_values(
                each.map(|i| messages.offset(i)),
            )),
            MetadataPart::Timestamp => Arc::new(
                TimestampMillisecondArray::from_iter(each.map(|i| timestamp_of(messages, i)))
                    .with_timezone("UTC"),
            ),
            MetadataPart::Key if self.takes_text() => {
                // A key that is not UTF-8 cannot be text: null in a nullable string column (a
                // binary column keeps it), a dead letter for a NOT NULL one (`refusal`).
                Arc::new(StringArray::from_iter(each.map(|i| {
                    messages
                        .key(i)
                        .and_then(|bytes| std::str::from_utf8(bytes).ok())
                })))
            }
            MetadataPart::Key => Arc::new(BinaryArray::from_iter(each.map(|i| messages.key(i)))),
            MetadataPart::Headers => {
                Arc::new(StringArray::from_iter(each.map(|i| messages.headers(i))))
            }
        }
    }
}

/// The message's Kafka timestamp in epoch milliseconds, when it has one.
pub fn timestamp_of(messages: &Messages<'_>, i: usize) -> Option<i64> {
    let ts = messages.timestamps[i];
    (ts.is_finite() && ts >= 0.0).then_some(ts as i64)
}
