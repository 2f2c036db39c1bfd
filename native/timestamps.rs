//! Epoch numbers in timestamp columns. arrow-json reads a JSON number into a timestamp column as
//! a count of the column's own unit (microseconds in Delta), so a producer's epoch milliseconds
//! would land in 1970. Such numbers are read again in `delta.epoch_unit`: one more decode of only
//! the table's top-level timestamp fields, as text, tells numbers from ISO-8601 strings (which
//! arrow-json already parsed right) and gives their exact digits.

use std::sync::Arc;

use arrow_json::ReaderBuilder;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};

use crate::day::EpochUnit;
use crate::decode::Rejection;
use crate::error::{CoreError, CoreResult};
use crate::json::decode_json;
use crate::messages::Messages;

/// The timestamp columns among the fields decoded from JSON.
#[derive(Debug)]
pub struct TimestampFields {
    /// Index in the JSON schema and the column's unit.
    columns: Vec<(usize, TimeUnit)>,
    /// The same fields as nullable text, for the second decode.
    text_schema: SchemaRef,
}

/// What a row of a timestamp column becomes: its value in the column's unit, or why not.
type Reread = Result<Option<i64>, String>;

impl TimestampFields {
    pub fn of(json_schema: &SchemaRef) -> Self {
        let mut columns = Vec::new();
        let mut text_fields = Vec::new();
        for (index, field) in json_schema.fields().iter().enumerate() {
            if let DataType::Timestamp(unit, _) = field.data_type() {
                columns.push((index, *unit));
                text_fields.push(Field::new(field.name(), DataType::Utf8, true));
            }
        }
        Self {
            columns,
            text_schema: Arc::new(Schema::new(text_fields)),
        }
    }

    /// Returns `json_rows` with every number in a timestamp column read in `unit`; a number out
    /// of range rejects its row (its `keep` turns false).
    pub fn read_numbers(
        &self,
        unit: EpochUnit,
        messages: &Messages<'_>,
        json_rows: &RecordBatch,
        accepted: &[usize],
        keep: &mut [bool],
        rejected: &mut Vec<Rejection>,
    ) -> CoreResult<RecordBatch> {
        if self.columns.is_empty() {
            return Ok(json_rows.clone());
        }
        let text = self.decode_as_text(messages, accepted)?;
        let mut columns: Vec<ArrayRef> = json_rows.columns().to_vec();
        for (k, &(index, column_unit)) in self.columns.iter().enumerate() {
            let texts = text.column(k).as_string::<i32>();
            if !texts.iter().flatten().any(is_number) {
                continue;
            }
            let name = self.text_schema.field(k).name();
            let raw = cast(&columns[index], &DataType::Int64)?;
            let raw = raw.as_primitive::<Int64Type>();
            let mut values = Vec::with_capacity(raw.len());
            for row in 0..raw.len() {
                let value = match texts.is_null(row) {
                    true => Ok(None),
                    false if is_number(texts.value(row)) => {
                        in_unit(texts.value(row), unit, column_unit).map(Some)
                    }
                    false => Ok((!raw.is_null(row)).then(|| raw.value(row))),
                };
                values.push(keep_or_reject(value, name, row, accepted, keep, rejected));
            }
            let fixed: ArrayRef = Arc::new(Int64Array::from(values));
            columns[index] = cast(&fixed, json_rows.schema().field(index).data_type())?;
        }
        Ok(RecordBatch::try_new(json_rows.schema(), columns)?)
    }

    fn decode_as_text(
        &self,
        messages: &Messages<'_>,
        accepted: &[usize],
    ) -> CoreResult<RecordBatch> {
        let builder = || ReaderBuilder::new(self.text_schema.clone()).with_coerce_primitive(true);
        let mut failures = Vec::new();
        let (text, decoded) = decode_json(&builder, messages, accepted, &mut failures)?;
        // Every accepted message decoded against the whole schema, so it decodes as text too.
        match text {
            Some(text) if decoded.len() == accepted.len() => Ok(text),
            _ => Err(CoreError::Internal(
                "timestamp fields of decoded messages did not decode as text".into(),
            )),
        }
    }
}

/// The value of a re-read row, or `None` with the row rejected (its `keep` turned false).
fn keep_or_reject(
    value: Reread,
    name: &str,
    row: usize,
    accepted: &[usize],
    keep: &mut [bool],
    rejected: &mut Vec<Rejection>,
) -> Option<i64> {
    match value {
        Ok(v) => v,
        Err(why) => {
            if keep[row] {
                keep[row] = false;
                rejected.push(Rejection::new(
                    accepted[row],
                    "type_mismatch",
                    format!("column {name:?}: {why}"),
                ));
            }
            None
        }
    }
}

/// Whether a timestamp field's text came from a JSON number. A string value that reads as a
/// number (`"1795435200000"`) would not have parsed as a timestamp, so its row is not among the
/// accepted ones; a bare date (`"2026-11-23"`) is not a number.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.starts_with(|c: char| c.is_ascii_digit()) && text.parse::<f64>().is_ok()
}

fn per_second(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// An epoch number in `unit` as a count of `column` units; exact for integers.
fn in_unit(text: &str, unit: EpochUnit, column: TimeUnit) -> Result<i64, String> {
    let from = i128::from(unit.per_second());
    let to = per_second(column);
    let out_of_range = || format!("epoch number {text} is out of range");
    if let Ok(integer) = text.parse::<i64>() {
        let scaled = i128::from(integer) * to / from;
        return i64::try_from(scaled).map_err(|_| out_of_range());
    }
    let number: f64 = text.parse().map_err(|_| out_of_range())?;
    let scaled = (number * to as f64 / from as f64).round();
    if scaled.is_finite() && scaled.abs() < 9.0e18 {
        Ok(scaled as i64)
    } else {
        Err(out_of_range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_scale_from_the_epoch_unit_to_the_column_unit() {
        let us = TimeUnit::Microsecond;
        assert_eq!(
            in_unit("1795435200000", EpochUnit::Millis, us),
            Ok(1_795_435_200_000_000)
        );
        assert_eq!(
            in_unit("1795435200", EpochUnit::Seconds, us),
            Ok(1_795_435_200_000_000)
        );
        assert_eq!(
            in_unit("1795435200000000", EpochUnit::Micros, us),
            Ok(1_795_435_200_000_000)
        );
        assert_eq!(in_unit("1.5", EpochUnit::Millis, us), Ok(1_500));
        assert!(in_unit("9223372036854775807", EpochUnit::Seconds, us).is_err());
        assert!(in_unit("1e300", EpochUnit::Millis, us).is_err());
        assert!(is_number("-12.5e3") && is_number("0"));
        assert!(!is_number("2026-11-23T10:00:00Z") && !is_number("2026-11-23"));
        assert!(!is_number("") && !is_number("-") && !is_number("inf"));
    }
}
