//! Schema evolution (`delta.schema_evolution: add_columns`): a JSON field the table lacks becomes
//! a nullable column, at the top level or inside a struct column, added by the commit that
//! writes the rows carrying it.
//!
//! Decoding runs in strict mode, so a message with a field the schema lacks fails; only then
//! (the common batch pays nothing) are the failed messages parsed once more and their fields
//! inferred with arrow-json's rules. Columns found that way are *pending* until the stage's rows
//! are taken for a commit: while pending, records that disagree on the type widen it (integer
//! and float to float, any other mix of scalars to string); once taken, the type is the table's
//! and a record that does not fit is a dead letter, like any type change of an existing column.

use std::sync::Arc;

use deltalake::arrow::array::{Array, Float64Array};
use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use serde_json::Value;

use crate::decode::{DecodeSpec, Decoded, Rejection};
use crate::error::CoreResult;
use crate::json::{decode_json, screen_payload};
use crate::messages::Messages;

/// The rejection kinds a new or widened field can cause.
fn may_evolve(rejection: &Rejection) -> bool {
    matches!(rejection.kind, "unknown_field" | "type_mismatch")
}

/// The table schema widened by the fields of the messages rejected for an unknown field or a
/// type mismatch: new fields appended (top level and inside structs), pending fields widened.
/// `None` when nothing changes. `committed` holds the columns whose types are settled.
pub fn widen(
    schema: &Schema,
    committed: &Schema,
    json_columns: &Schema,
    messages: &Messages<'_>,
    rejected: &[Rejection],
) -> Option<SchemaRef> {
    let values: Vec<Value> = rejected
        .iter()
        .filter(|r| may_evolve(r))
        .filter_map(|r| serde_json::from_slice::<Value>(messages.payload(r.message_index)).ok())
        .filter(Value::is_object)
        .collect();
    if values.is_empty() {
        return None;
    }
    let inferred =
        arrow_json::reader::infer_json_schema_from_iterator(values.iter().map(Ok)).ok()?;
    // Only the columns decoded from JSON take part: the day and metadata columns are not fields.
    let readable = |name: &str| json_columns.field_with_name(name).is_ok();
    let merged = merge_fields(
        schema.fields(),
        Some(committed.fields()),
        inferred.fields(),
        &readable,
    )?;
    Some(Arc::new(Schema::new_with_metadata(
        merged,
        schema.metadata().clone(),
    )))
}

/// Decodes a batch; with `add_columns`, fields the schema lacks (or pending fields of a
/// wider type) widen it first, and the spec they were decoded with is returned too.
pub fn decode_evolving(
    spec: &DecodeSpec,
    messages: &Messages<'_>,
) -> CoreResult<(Decoded, Option<DecodeSpec>)> {
    let decoded = spec.decode(messages)?;
    if !spec.options.add_columns {
        return Ok((decoded, None));
    }
    let mut schema = spec.table_schema.clone();
    let mut changed = false;
    if let Some(wider) = widen(
        &schema,
        &spec.committed,
        &spec.json_schema,
        messages,
        &decoded.rejected,
    ) {
        (schema, changed) = (wider, true);
    }
    if let Some(floats) = fractional_columns(&schema, &spec.committed, messages)? {
        (schema, changed) = (floats, true);
    }
    if !changed {
        return Ok((decoded, None));
    }
    let next = DecodeSpec::evolved(schema, spec.committed.clone(), spec.options.clone())?;
    Ok((next.decode(messages)?, Some(next)))
}

/// The pending integer columns (top level) that a message of the batch gives a fraction: arrow-json
/// would truncate it into the integer column without an error, so they are read once more as
/// floats, only while such columns are pending (between a new field and the next commit).
pub fn fractional_columns(
    schema: &Schema,
    committed: &Schema,
    messages: &Messages<'_>,
) -> CoreResult<Option<SchemaRef>> {
    let pending: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| {
            f.data_type() == &DataType::Int64 && committed.field_with_name(f.name()).is_err()
        })
        .map(|f| Field::new(f.name(), DataType::Float64, true))
        .collect();
    if pending.is_empty() {
        return Ok(None);
    }
    let floats = Arc::new(Schema::new(pending));
    let builder = || arrow_json::ReaderBuilder::new(floats.clone());
    let candidates: Vec<usize> = (0..messages.len())
        .filter(|&i| !messages.is_tombstone(i) && screen_payload(messages.payload(i)).is_ok())
        .collect();
    let mut ignored = Vec::new();
    let (Some(batch), _) = decode_json(&builder, messages, &candidates, &mut ignored)? else {
        return Ok(None);
    };
    let mut widened: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut changed = false;
    for (column, field) in batch.columns().iter().zip(floats.fields()) {
        let values = column.as_any().downcast_ref::<Float64Array>();
        if values.is_some_and(|v| v.iter().flatten().any(|x| x.fract() != 0.0)) {
            if let Some(f) = widened.iter_mut().find(|f| f.name() == field.name()) {
                *f = f.clone().with_data_type(DataType::Float64);
                changed = true;
            }
        }
    }
    Ok(changed.then(|| {
        Arc::new(Schema::new_with_metadata(
            widened,
            schema.metadata().clone(),
        ))
    }))
}

/// `current` with the `inferred` fields merged in; `None` when nothing changes. `committed` is
/// the settled shape at this level (absent inside a struct that is itself pending).
fn merge_fields(
    current: &Fields,
    committed: Option<&Fields>,
    inferred: &Fields,
    readable: &dyn Fn(&str) -> bool,
) -> Option<Fields> {
    let mut out: Vec<Field> = current.iter().map(|f| f.as_ref().clone()).collect();
    let mut changed = false;
    // Inference yields fields in hash order: sorted, added columns come out the same every time.
    let mut inferred: Vec<&Arc<Field>> = inferred.iter().collect();
    inferred.sort_by(|a, b| a.name().cmp(b.name()));
    for field in inferred {
        let settled = committed.and_then(|c| c.find(field.name()).map(|(_, f)| f.clone()));
        match out.iter().position(|f| f.name() == field.name()) {
            None => {
                if let Some(settled_type) = settle(field.data_type()) {
                    out.push(Field::new(field.name(), settled_type, true));
                    changed = true;
                }
            }
            Some(_) if !readable(field.name()) => {}
            Some(index) => {
                let existing = out[index].clone();
                if let Some(next) = merge_type(
                    existing.data_type(),
                    settled.as_ref().map(|f| f.data_type()),
                    field.data_type(),
                ) {
                    out[index] = existing.with_data_type(next);
                    changed = true;
                }
            }
        }
    }
    changed.then(|| Fields::from(out))
}

/// The type of a field already in the schema after seeing `inferred`: structs gain fields;
/// a pending scalar widens; a settled one never changes.
fn merge_type(
    current: &DataType,
    settled: Option<&DataType>,
    inferred: &DataType,
) -> Option<DataType> {
    match (current, inferred) {
        (DataType::Struct(fields), DataType::Struct(new)) => {
            let settled_fields = match settled {
                Some(DataType::Struct(s)) => Some(s),
                _ => None,
            };
            merge_fields(fields, settled_fields, new, &|_| true).map(DataType::Struct)
        }
        _ if settled.is_some() => None,
        (a, b) if a == b => None,
        (a, b) if is_scalar(a) && is_scalar(b) => Some(wider(a, b)),
        _ => None,
    }
}

/// The wider of two scalar types: integer and float make float, any other mix makes string.
pub fn wider(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        _ if a == b => a.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        _ => DataType::Utf8,
    }
}

fn is_scalar(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean | DataType::Int64 | DataType::Float64 | DataType::Utf8
    )
}

/// The column type of a type inferred from JSON: a field seen only as null is a string (as
/// Spark infers it), so it is a column from its first record; an empty object has no type.
fn settle(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Null => Some(DataType::Utf8),
        DataType::List(item) => Some(DataType::List(Arc::new(Field::new(
            item.name(),
            settle(item.data_type())?,
            true,
        )))),
        DataType::Struct(fields) if fields.is_empty() => None,
        DataType::Struct(fields) => {
            let mut settled = Vec::with_capacity(fields.len());
            for field in fields {
                settled.push(Field::new(field.name(), settle(field.data_type())?, true));
            }
            Some(DataType::Struct(Fields::from(settled)))
        }
        other => Some(other.clone()),
    }
}

/// The dotted paths of `new`'s fields that `old` lacks (`region`, `device.os`), in order.
pub fn added_paths(old: &Fields, new: &Fields) -> Vec<String> {
    let mut out = Vec::new();
    collect_added(old, new, "", &mut out);
    out
}

fn collect_added(old: &Fields, new: &Fields, prefix: &str, out: &mut Vec<String>) {
    for field in new {
        let path = format!("{prefix}{}", field.name());
        match old.find(field.name()) {
            None => out.push(path),
            Some((_, before)) => {
                if let (DataType::Struct(a), DataType::Struct(b)) =
                    (before.data_type(), field.data_type())
                {
                    collect_added(a, b, &format!("{path}."), out);
                }
            }
        }
    }
}

/// The table's schema with the columns (and struct fields) `staged` has beyond it appended: what
/// a commit of evolved rows writes. The table's types win where both have a column.
pub fn union(table: &Schema, staged: &Schema) -> Schema {
    Schema::new_with_metadata(
        union_fields(table.fields(), staged.fields()),
        table.metadata().clone(),
    )
}

fn union_fields(table: &Fields, staged: &Fields) -> Fields {
    let mut out: Vec<Field> = Vec::with_capacity(staged.len());
    for field in table {
        let merged = match (field.data_type(), staged.find(field.name())) {
            (DataType::Struct(a), Some((_, s))) => match s.data_type() {
                DataType::Struct(b) => field
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Struct(union_fields(a, b))),
                _ => field.as_ref().clone(),
            },
            _ => field.as_ref().clone(),
        };
        out.push(merged);
    }
    for field in staged {
        if table.find(field.name()).is_none() {
            out.push(field.as_ref().clone().with_nullable(true));
        }
    }
    Fields::from(out)
}

#[cfg(test)]
#[path = "evolve_tests.rs"]
mod tests;
