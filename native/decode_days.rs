//! The day of each decoded row: from its partition column, an event-time field, the Kafka
//! timestamp or a change event's `ts_ms`; a row without one, or outside the window around
//! today, is a dead letter.

use std::sync::Arc;

use arrow_json::ReaderBuilder;
use deltalake::arrow::array::{Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use crate::day::{self, DayWindow, EpochDay};
use crate::debezium::Change;
use crate::decode::{DaySource, DecodeSpec, Rejection};
use crate::error::{CoreError, CoreResult};
use crate::json::decode_json;
use crate::messages::Messages;
use crate::metadata;

impl DecodeSpec {
    pub(crate) fn derive_days(
        &self,
        messages: &Messages<'_>,
        json_rows: &RecordBatch,
        accepted: &[usize],
        changes: Option<&[Change]>,
        keep: &mut [bool],
        rejected: &mut Vec<Rejection>,
    ) -> CoreResult<Vec<Option<EpochDay>>> {
        let tz = self.options.timezone;
        let name = &self.options.partition_column;
        let mut days: Vec<Result<EpochDay, (&'static str, String)>> = match &self.options.day_source
        {
            DaySource::Column => {
                let column = json_rows.column_by_name(name).ok_or_else(|| {
                    CoreError::Internal(format!("partition column {name:?} was not decoded"))
                })?;
                day::column_days(column, name)?
            }
            DaySource::KafkaTimestamp => accepted
                .iter()
                .map(|&i| match metadata::timestamp_of(messages, i) {
                    Some(ts) => day::day_of_millis(ts, tz)
                        .ok_or(("no_day", format!("Kafka timestamp {ts} is out of range"))),
                    None => Err(("no_day", "the message has no Kafka timestamp".to_string())),
                })
                .collect(),
            DaySource::Field(field) => self.field_days(messages, accepted, field)?,
            DaySource::ChangeTime => accepted
                .iter()
                .map(|&i| match changes.and_then(|c| c.get(i)) {
                    Some(Change::Row {
                        ts_ms: Some(ts), ..
                    }) => day::day_of_millis(*ts, tz).ok_or((
                        "no_day",
                        format!("the change event's ts_ms {ts} is out of range"),
                    )),
                    _ => Err((
                        "no_day",
                        "the change event has no numeric ts_ms".to_string(),
                    )),
                })
                .collect(),
        };
        let window = DayWindow::around_today(self.options.day_window_years);
        Ok(days
            .drain(..)
            .enumerate()
            .map(|(row, result)| {
                match result.and_then(|d| window.check(d).map_err(|e| ("day_out_of_range", e))) {
                    Ok(d) => Some(d),
                    Err((kind, detail)) => {
                        if keep[row] {
                            keep[row] = false;
                            rejected.push(Rejection::new(accepted[row], kind, detail));
                        }
                        None
                    }
                }
            })
            .collect())
    }

    /// Reads an event-time field that is not (or not only) a table column, as text.
    fn field_days(
        &self,
        messages: &Messages<'_>,
        accepted: &[usize],
        field: &str,
    ) -> CoreResult<Vec<Result<EpochDay, (&'static str, String)>>> {
        let schema = Arc::new(Schema::new(vec![Field::new(field, DataType::Utf8, true)]));
        let builder = || ReaderBuilder::new(schema.clone()).with_coerce_primitive(true);
        let mut failures = Vec::new();
        let (batch, decoded) = decode_json(&builder, messages, accepted, &mut failures)?;
        let mut out: Vec<Result<EpochDay, (&'static str, String)>> = accepted
            .iter()
            .map(|_| {
                Err((
                    "no_day",
                    format!("event time field {field:?} is not a string or number"),
                ))
            })
            .collect();
        if let Some(batch) = batch {
            let values = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| CoreError::Internal("event time decoded to a non-string".into()))?;
            // `decoded` is an ordered subset of `accepted`; walk both in step.
            let mut slot = 0;
            for (row, &message_index) in decoded.iter().enumerate() {
                while accepted[slot] != message_index {
                    slot += 1;
                }
                out[slot] = if values.is_null(row) {
                    Err((
                        "no_day",
                        format!("event time field {field:?} is missing or null"),
                    ))
                } else {
                    let (tz, unit) = (self.options.timezone, self.options.epoch_unit);
                    day::day_of_event_time(values.value(row), tz, unit)
                        .map_err(|e| ("no_day", format!("event time field {field:?}: {e}")))
                };
            }
        }
        Ok(out)
    }
}
