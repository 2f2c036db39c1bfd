//! `transform.filter` and `transform.columns` on the decode path.

use super::*;
use crate::transform::{DerivedColumn, TransformOptions, TRANSFORM_FAILED};

/// The decode tests' table plus `label`, derived by the tests.
fn schema_with_label() -> SchemaRef {
    let mut fields: Vec<Field> = table_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("label", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

fn spec(filter: Option<&str>, label: Option<&str>) -> CoreResult<DecodeSpec> {
    let mut options = options(DaySource::Column);
    options.transform = TransformOptions {
        filter: filter.map(String::from),
        columns: label.map(|expression| {
            vec![DerivedColumn {
                name: "label".into(),
                expression: expression.into(),
            }]
        }),
    };
    DecodeSpec::new(schema_with_label(), options)
}

fn strings(rows: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = rows.column_by_name(name).expect("column");
    column
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

const DAY: &str = "2026-11-23";

fn event(id: &str, amount: &str) -> String {
    format!(r#"{{"id":"{id}","amount":{amount},"date_col":"{DAY}"}}"#)
}

fn decode_all(spec: &DecodeSpec, payloads: &[String]) -> Decoded {
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    spec.decode(&pack(&refs).messages()).expect("decode")
}

#[test]
fn the_filter_drops_rows_without_dead_letters_and_derived_columns_read_kafka_context() {
    let spec = spec(
        Some("amount > 1 AND id <> 'skip'"),
        Some("concat(upper(id), '@', kafka_topic, '/', CAST(kafka_partition AS VARCHAR))"),
    )
    .expect("spec");
    let payloads = [
        event("a", "5"),
        event("b", "0.5"),
        event("skip", "9"),
        event("c", "null"),
        event("d", "2"),
    ];
    let decoded = decode_all(&spec, &payloads);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    // b fails the predicate, skip is excluded, c's null amount makes it null: not true.
    assert_eq!(decoded.filtered, vec![1, 2, 3]);
    let rows = decoded.rows.expect("rows");
    assert_eq!(
        strings(&rows, "id"),
        vec![Some("a".into()), Some("d".into())]
    );
    assert_eq!(
        strings(&rows, "label"),
        vec![Some("A@events/0".into()), Some("D@events/0".into())]
    );
    assert_eq!(decoded.days.len(), 2);
}

#[test]
fn a_row_whose_derived_column_fails_is_a_dead_letter_and_the_others_stay() {
    // 'x' cannot be cast to an integer: only that row fails.
    let spec = spec(None, Some("CAST(CAST(id AS INT) * 2 AS VARCHAR)")).expect("spec");
    let payloads = [event("1", "1"), event("x", "1"), event("3", "1")];
    let decoded = decode_all(&spec, &payloads);
    assert_eq!(kinds(&decoded), vec![(1, TRANSFORM_FAILED)]);
    assert!(
        decoded.rejected[0]
            .detail
            .starts_with("transform.columns.label: "),
        "{}",
        decoded.rejected[0].detail
    );
    let rows = decoded.rows.expect("rows");
    assert_eq!(
        strings(&rows, "id"),
        vec![Some("1".into()), Some("3".into())]
    );
    assert_eq!(
        strings(&rows, "label"),
        vec![Some("2".into()), Some("6".into())]
    );
}

#[test]
fn a_bad_expression_is_refused_when_the_stage_is_built_naming_its_key() {
    let message = |r: CoreResult<DecodeSpec>| match r {
        Err(CoreError::InvalidArgument(m)) => m,
        other => panic!("expected an invalid argument, got {:?}", other.map(|_| ())),
    };
    assert!(message(spec(Some("no_such_column = 1"), None)).starts_with("transform.filter: "));
    assert!(message(spec(Some("amount + 1"), None)).contains("not a condition"));
    assert!(message(spec(None, Some("upper(nope)"))).starts_with("transform.columns.label: "));
}

#[test]
fn functions_executable_only_once_simplified_are_planned_simplified() {
    // coalesce fails at evaluation unless the expression was simplified first.
    let spec = spec(
        Some("coalesce(kafka_key, 'none') = 'none'"),
        Some("coalesce(CAST(amount AS VARCHAR), '-')"),
    )
    .expect("spec");
    let payloads = [event("a", "5"), event("b", "null")];
    let decoded = decode_all(&spec, &payloads);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let rows = decoded.rows.expect("rows");
    assert_eq!(
        strings(&rows, "label"),
        vec![Some("5.0".into()), Some("-".into())]
    );
}
