//! The table's schema changed by another writer under a running pipeline. Staged rows carry the
//! schema they were decoded with (each spill file its own, in its IPC header); a commit writes
//! them in the table's schema of the moment: a column added since is null in them. A column
//! dropped or retyped since cannot be written from them and stops the commit with an error
//! naming the columns. The stage decodes with the new schema from the next flush on.
//! Columns schema evolution added or widened (`evolve.rs`) are brought in the same way: a struct
//! gains its new fields as nulls, an integer column staged before it widened is cast to float or
//! string.

use std::sync::Arc;

use deltalake::arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::decode::{OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN};
use crate::error::{CoreError, CoreResult};

/// The schema rows are staged in: the table's columns, the delete flag when they are change
/// events (`debezium.rs`), then the internal position columns.
pub fn staged_schema(table_schema: &Schema, changes: bool) -> SchemaRef {
    let mut fields: Vec<Field> = table_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if changes {
        fields.push(crate::debezium::delete_field());
    }
    fields.push(Field::new(TOPIC_COLUMN, DataType::UInt16, false));
    fields.push(Field::new(PARTITION_COLUMN, DataType::Int32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// The columns of `new` that `old` does not have, in table order.
pub fn added_columns(old: &Schema, new: &Schema) -> Vec<String> {
    new.fields()
        .iter()
        .filter(|f| old.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone())
        .collect()
}

/// `batch` in the `target` staged schema: added nullable columns are null; a column the target
/// lacks (dropped) or types otherwise (retyped) is an error naming every such column.
pub fn conform(batch: RecordBatch, target: &SchemaRef) -> CoreResult<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch);
    }
    let mut problems = Vec::new();
    let source = batch.schema();
    for field in source.fields() {
        if target.field_with_name(field.name()).is_err() {
            problems.push(format!("{:?} was dropped", field.name()));
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        match batch.column_by_name(field.name()) {
            Some(column) => match conform_array(column, field.data_type()) {
                Ok(column) => columns.push(column),
                Err(()) => problems.push(format!(
                    "{:?} is now {} (staged as {})",
                    field.name(),
                    field.data_type(),
                    column.data_type()
                )),
            },
            None if field.is_nullable() => {
                columns.push(new_null_array(field.data_type(), batch.num_rows()));
            }
            None => problems.push(format!("{:?} was added as NOT NULL", field.name())),
        }
    }
    if !problems.is_empty() {
        return Err(CoreError::SchemaMismatch(format!(
            "the table's schema changed under the pipeline and staged rows cannot be written in \
             it: column {}; change the table back, or remove the staging directory to read \
             these messages again from Kafka",
            problems.join(", column ")
        )));
    }
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

/// `column` as `target`: the same type as it is; a struct with the target's fields (nullable
/// fields it lacks are null); a scalar widened by schema evolution (integer to float, a scalar
/// to string) cast. Anything else cannot be brought into the target.
fn conform_array(column: &ArrayRef, target: &DataType) -> Result<ArrayRef, ()> {
    if column.data_type() == target {
        return Ok(column.clone());
    }
    match (column.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let source = column.as_any().downcast_ref::<StructArray>().ok_or(())?;
            if source
                .fields()
                .iter()
                .any(|f| fields.find(f.name()).is_none())
            {
                return Err(());
            }
            let mut children = Vec::with_capacity(fields.len());
            for field in fields {
                children.push(match source.column_by_name(field.name()) {
                    Some(child) => conform_array(child, field.data_type())?,
                    None if field.is_nullable() => new_null_array(field.data_type(), source.len()),
                    None => return Err(()),
                });
            }
            StructArray::try_new(fields.clone(), children, source.nulls().cloned())
                .map(|a| Arc::new(a) as ArrayRef)
                .map_err(|_| ())
        }
        (from, to) if crate::evolve::wider(from, to) == *to && is_json_scalar(from) => {
            cast(column, to).map_err(|_| ())
        }
        _ => Err(()),
    }
}

fn is_json_scalar(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean | DataType::Int64 | DataType::Float64 | DataType::Utf8
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, Int64Array, StringArray};

    fn table(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    fn staged_rows(schema: &Schema) -> RecordBatch {
        let staged = staged_schema(schema, false);
        let columns: Vec<ArrayRef> = staged
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 2))
            .collect();
        let mut columns = columns;
        columns[0] = Arc::new(StringArray::from(vec!["a", "b"]));
        let n = columns.len();
        columns[n - 3] = Arc::new(deltalake::arrow::array::UInt16Array::from(vec![0, 0]));
        columns[n - 2] = Arc::new(deltalake::arrow::array::Int32Array::from(vec![0, 0]));
        columns[n - 1] = Arc::new(Int64Array::from(vec![1, 2]));
        RecordBatch::try_new(staged, columns).expect("batch")
    }

    #[test]
    fn an_added_column_is_null_in_rows_staged_before_it() {
        let old = table(vec![Field::new("id", DataType::Utf8, false)]);
        let new = table(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, true),
        ]);
        assert_eq!(added_columns(&old, &new), vec!["region"]);
        let rows = conform(staged_rows(&old), &staged_schema(&new, false)).expect("conform");
        assert_eq!(rows.schema(), staged_schema(&new, false));
        let region = rows.column_by_name("region").expect("region");
        assert_eq!(region.null_count(), 2);
    }

    #[test]
    fn a_dropped_or_retyped_column_is_an_error_naming_it() {
        let old = table(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("gone", DataType::Utf8, true),
            Field::new("n", DataType::Utf8, true),
        ]);
        let new = table(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]);
        let err =
            conform(staged_rows(&old), &staged_schema(&new, false)).expect_err("incompatible");
        let text = err.to_string();
        assert!(text.contains("\"gone\" was dropped"), "{text}");
        assert!(text.contains("\"n\" is now Int64"), "{text}");
    }
}
