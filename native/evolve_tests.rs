use super::*;
use crate::decode::Rejection;

fn schema(fields: Vec<Field>) -> Schema {
    Schema::new(fields)
}

/// Messages holding `payloads`, every one rejected with `kind`.
fn rejected_all(payloads: &[&str], kind: &'static str) -> (Vec<u8>, Vec<u32>, Vec<Rejection>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for p in payloads {
        bytes.extend_from_slice(p.as_bytes());
        ends.push(bytes.len() as u32);
    }
    let rejected = (0..payloads.len())
        .map(|i| Rejection::new(i, kind, String::new()))
        .collect();
    (bytes, ends, rejected)
}

fn widened(
    table: &Schema,
    committed: &Schema,
    payloads: &[&str],
    kind: &'static str,
) -> Option<SchemaRef> {
    let (bytes, ends, rejected) = rejected_all(payloads, kind);
    let n = payloads.len();
    let (topics, partitions, offsets, timestamps) =
        (vec![0u16; n], vec![0i32; n], vec![0f64; n], vec![-1f64; n]);
    let messages = Messages {
        payloads: &bytes,
        payload_ends: &ends,
        payload_starts: None,
        topic_indexes: &topics,
        partitions: &partitions,
        offsets: &offsets,
        timestamps: &timestamps,
        keys: None,
        headers: None,
        absent: None,
    };
    widen(table, committed, table, &messages, &rejected)
}

fn base() -> Schema {
    schema(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "device",
            DataType::Struct(vec![Field::new("model", DataType::Utf8, true)].into()),
            true,
        ),
    ])
}

#[test]
fn new_fields_become_nullable_columns_and_struct_fields() {
    let table = base();
    let out = widened(
        &table,
        &table,
        &[
            r#"{"id":"a","region":"eu","device":{"model":"x","os":"ios"}}"#,
            r#"{"id":"b","n":1}"#,
        ],
        "unknown_field",
    )
    .expect("widened");
    assert_eq!(
        added_paths(table.fields(), out.fields()),
        vec!["device.os", "n", "region"]
    );
    let region = out.field_with_name("region").expect("region");
    assert!(region.is_nullable());
    assert_eq!(region.data_type(), &DataType::Utf8);
    assert_eq!(
        out.field_with_name("n").expect("n").data_type(),
        &DataType::Int64
    );
}

#[test]
fn conflicting_types_widen_to_float_or_string() {
    let table = base();
    let out = widened(
        &table,
        &table,
        &[
            r#"{"id":"a","f":1,"s":1,"z":null}"#,
            r#"{"id":"b","f":1.5,"s":true}"#,
        ],
        "unknown_field",
    )
    .expect("widened");
    assert_eq!(
        out.field_with_name("f").expect("f").data_type(),
        &DataType::Float64
    );
    assert_eq!(
        out.field_with_name("s").expect("s").data_type(),
        &DataType::Utf8
    );
    // Seen only as null: a string column, as Spark infers it.
    assert_eq!(
        out.field_with_name("z").expect("z").data_type(),
        &DataType::Utf8
    );
}

#[test]
fn a_pending_column_widens_and_a_settled_one_never_changes() {
    let committed = base();
    let mut fields: Vec<Field> = committed
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("n", DataType::Int64, true));
    let pending = schema(fields);
    let out = widened(
        &pending,
        &committed,
        &[r#"{"id":"a","n":"many"}"#],
        "type_mismatch",
    )
    .expect("widened");
    assert_eq!(
        out.field_with_name("n").expect("n").data_type(),
        &DataType::Utf8
    );
    // Once settled (its rows taken for a commit) the same record changes nothing: a dead letter.
    assert!(widened(
        &pending,
        &pending,
        &[r#"{"id":"a","n":"many"}"#],
        "type_mismatch"
    )
    .is_none());
    // Nor does a record retyping a column of the table.
    assert!(widened(&committed, &committed, &[r#"{"id":1}"#], "type_mismatch").is_none());
}

#[test]
fn union_appends_staged_columns_after_the_tables() {
    let table = base();
    let staged = widened(
        &table,
        &table,
        &[r#"{"id":"a","region":"eu","device":{"os":"ios"}}"#],
        "unknown_field",
    )
    .expect("widened");
    let both = union(&table, &staged);
    assert_eq!(both.fields(), staged.fields());
    assert!(!both.field_with_name("id").expect("id").is_nullable());
    assert_eq!(union(&table, &table).fields(), table.fields());
}
