use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn batch(ids: &[Option<&str>], versions: &[Option<i64>], names: &[Option<&str>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("version", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids.to_vec())),
        Arc::new(Int64Array::from(versions.to_vec())),
        Arc::new(StringArray::from(names.to_vec())),
    ];
    RecordBatch::try_new(schema, columns).expect("batch")
}

type Row = (Option<String>, Option<i64>, Option<String>);

fn rows(batch: &RecordBatch) -> Vec<Row> {
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("ids");
    let versions = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("versions");
    let names = batch
        .column(2)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("names");
    (0..batch.num_rows())
        .map(|r| {
            (
                ids.is_valid(r).then(|| ids.value(r).to_string()),
                versions.is_valid(r).then(|| versions.value(r)),
                names.is_valid(r).then(|| names.value(r).to_string()),
            )
        })
        .collect()
}

fn row(id: Option<&str>, version: Option<i64>, name: Option<&str>) -> Row {
    (id.map(String::from), version, name.map(String::from))
}

fn spec(strategy: DedupStrategy, order_by: Option<&str>) -> DedupSpec {
    DedupSpec {
        keys: vec!["id".into()],
        order_by: order_by.map(String::from),
        strategy,
    }
}

fn sample() -> RecordBatch {
    batch(
        &[
            Some("a"),
            Some("b"),
            Some("a"),
            None,
            Some("a"),
            None,
            Some("b"),
        ],
        &[
            Some(2),
            Some(1),
            Some(3),
            Some(1),
            Some(1),
            Some(1),
            Some(1),
        ],
        &[
            Some("a2"),
            Some("b1"),
            None,
            Some("n1"),
            Some("a1"),
            Some("n1"),
            Some("b1'"),
        ],
    )
}

#[test]
fn last_by_arrival_keeps_the_latest_row_of_each_key_and_every_null_key_row() {
    let out = dedup(&sample(), &spec(DedupStrategy::Last, None)).expect("dedup");
    assert_eq!(out.removed, 3);
    assert_eq!(
        rows(&out.batch),
        vec![
            row(None, Some(1), Some("n1")),
            row(Some("a"), Some(1), Some("a1")),
            row(None, Some(1), Some("n1")),
            row(Some("b"), Some(1), Some("b1'")),
        ]
    );
}

#[test]
fn last_by_order_column_breaks_ties_by_arrival() {
    let out = dedup(&sample(), &spec(DedupStrategy::Last, Some("version"))).expect("dedup");
    assert_eq!(
        rows(&out.batch),
        vec![
            row(Some("a"), Some(3), None),
            row(None, Some(1), Some("n1")),
            row(None, Some(1), Some("n1")),
            row(Some("b"), Some(1), Some("b1'")),
        ]
    );
}

#[test]
fn first_by_order_column_keeps_the_smallest_and_the_earliest_on_ties() {
    let out = dedup(&sample(), &spec(DedupStrategy::First, Some("version"))).expect("dedup");
    assert_eq!(
        rows(&out.batch),
        vec![
            row(Some("b"), Some(1), Some("b1")),
            row(None, Some(1), Some("n1")),
            row(Some("a"), Some(1), Some("a1")),
            row(None, Some(1), Some("n1")),
        ]
    );
}

#[test]
fn merge_folds_non_null_values_in_order() {
    let out = dedup(&sample(), &spec(DedupStrategy::Merge, Some("version"))).expect("dedup");
    // a: versions 1 (a1), 2 (a2), 3 (null name) → version 3, name a2.
    assert_eq!(
        rows(&out.batch),
        vec![
            row(Some("a"), Some(3), Some("a2")),
            row(Some("b"), Some(1), Some("b1'")),
            row(None, Some(1), Some("n1")),
            row(None, Some(1), Some("n1")),
        ]
    );
}

#[test]
fn null_order_values_sort_first() {
    let input = batch(
        &[Some("k"), Some("k")],
        &[Some(5), None],
        &[Some("valued"), Some("unversioned")],
    );
    let out = dedup(&input, &spec(DedupStrategy::Last, Some("version"))).expect("dedup");
    assert_eq!(
        rows(&out.batch),
        vec![row(Some("k"), Some(5), Some("valued"))]
    );
}

#[test]
fn many_rows_over_many_chunks_match_a_plain_map() {
    let n = 200_000;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("key-{}", (i * 7919) % 50_000))
        .collect();
    let id_refs: Vec<Option<&str>> = ids.iter().map(|s| Some(s.as_str())).collect();
    let versions: Vec<Option<i64>> = (0..n).map(|i| Some(((i * 31) % 97) as i64)).collect();
    let names: Vec<String> = (0..n).map(|i| format!("row-{i}")).collect();
    let name_refs: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
    let input = batch(&id_refs, &versions, &name_refs);

    let mut expected: std::collections::HashMap<&str, (i64, usize)> = Default::default();
    for i in 0..n {
        let v = versions[i].unwrap_or_default();
        let entry = expected.entry(ids[i].as_str()).or_insert((v, i));
        if (v, i) > *entry {
            *entry = (v, i);
        }
    }
    let mut expected_rows: Vec<usize> = expected.values().map(|&(_, i)| i).collect();
    expected_rows.sort_unstable();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .expect("pool");
    let out = pool
        .install(|| dedup(&input, &spec(DedupStrategy::Last, Some("version"))))
        .expect("dedup");
    let got = rows(&out.batch);
    assert_eq!(got.len(), expected_rows.len());
    for (got, &i) in got.iter().zip(&expected_rows) {
        assert_eq!(got.2.as_deref(), Some(names[i].as_str()));
    }
    assert_eq!(out.removed, n - expected_rows.len());
}

#[test]
fn a_missing_key_column_is_named() {
    let mut s = spec(DedupStrategy::Last, None);
    s.keys = vec!["nope".into()];
    let err = dedup(&sample(), &s)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("\"nope\""), "{err}");
}

#[test]
fn integer_and_composite_keys_group_like_strings() {
    let input = batch(
        &[Some("a"), Some("b"), Some("a"), Some("a")],
        &[Some(1), Some(1), Some(2), Some(1)],
        &[Some("x"), Some("y"), Some("z"), Some("w")],
    );
    let by_version = DedupSpec {
        keys: vec!["version".into()],
        order_by: None,
        strategy: DedupStrategy::Last,
    };
    let out = dedup(&input, &by_version).expect("dedup");
    assert_eq!(
        rows(&out.batch),
        vec![
            row(Some("a"), Some(2), Some("z")),
            row(Some("a"), Some(1), Some("w")),
        ]
    );
    let by_pair = DedupSpec {
        keys: vec!["id".into(), "version".into()],
        ..by_version
    };
    let out = dedup(&input, &by_pair).expect("dedup");
    assert_eq!(
        rows(&out.batch),
        vec![
            row(Some("b"), Some(1), Some("y")),
            row(Some("a"), Some(2), Some("z")),
            row(Some("a"), Some(1), Some("w")),
        ]
    );
}
