use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{Int32Array, Int64Array, RecordBatch, UInt16Array};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::decode::{OFFSET_COLUMN, PARTITION_COLUMN, TOPIC_COLUMN};

const P0: PartitionKey = (0, 0);
const P1: PartitionKey = (0, 1);

fn range(key: PartitionKey, previous: Option<i64>, last: i64) -> PartitionRange {
    PartitionRange {
        topic: key.0,
        partition: key.1,
        previous,
        last,
        replaces: None,
    }
}

fn read(last: Option<i64>) -> Read {
    Read {
        last,
        replaces: None,
    }
}

/// A staged batch: one value column (the offset again) and the position columns.
fn staged(rows: &[(PartitionKey, i64)]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("value", DataType::Int64, false),
        Field::new(TOPIC_COLUMN, DataType::UInt16, false),
        Field::new(PARTITION_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.0 .0))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0 .1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .expect("a valid batch")
}

fn offsets(key: PartitionKey, from: i64, to: i64) -> Vec<(PartitionKey, i64)> {
    (from..=to).map(|o| (key, o)).collect()
}

/// The values (offsets) a commit keeps of `rows` from `part`.
fn kept(windows: &CommitWindows, part: &Coverage, rows: &[(PartitionKey, i64)]) -> Vec<i64> {
    match windows.select(part, &staged(rows)).expect("select") {
        Some(batch) => {
            assert_eq!(batch.num_columns(), 1, "position columns are stripped");
            let values = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64");
            values.values().to_vec()
        }
        None => Vec::new(),
    }
}

fn recorded(map: &[(PartitionKey, i64)]) -> impl Fn(&PartitionKey) -> Option<i64> {
    let map: HashMap<PartitionKey, i64> = map.iter().copied().collect();
    move |k| map.get(k).copied()
}

fn txn_versions(
    windows: &CommitWindows,
    own: &dyn Fn(&PartitionKey) -> Option<i64>,
) -> Vec<(String, i64)> {
    let txns = windows
        .transactions(own, &|k| Some(format!("p{}", k.1)))
        .expect("app ids");
    txns.into_iter().map(|t| (t.app_id, t.version)).collect()
}

#[test]
fn a_part_writes_only_what_it_covers_above_the_recorded_version() {
    let part = Coverage::from_ranges(&[range(P0, Some(9), 19)]);
    let rows = offsets(P0, 5, 25);
    let none = CommitWindows::plan(&[&part], &recorded(&[])).expect("plan");
    assert_eq!(kept(&none, &part, &rows), (10..=19).collect::<Vec<_>>());
    let some = CommitWindows::plan(&[&part], &recorded(&[(P0, 14)])).expect("plan");
    assert_eq!(kept(&some, &part, &rows), (15..=19).collect::<Vec<_>>());
    assert_eq!(
        txn_versions(&some, &recorded(&[(P0, 14)])),
        vec![("p0".into(), 19)]
    );
}

#[test]
fn consecutive_parts_reach_the_last_one() {
    let first = Coverage::from_ranges(&[range(P0, Some(9), 19)]);
    let second = Coverage::from_ranges(&[range(P0, Some(19), 29), range(P1, None, 4)]);
    let versions = recorded(&[(P0, 9)]);
    let windows = CommitWindows::plan(&[&first, &second], &versions).expect("plan");
    assert_eq!(
        txn_versions(&windows, &versions),
        vec![("p0".into(), 29), ("p1".into(), 4)]
    );
    assert_eq!(kept(&windows, &second, &offsets(P0, 20, 29)).len(), 10);
    assert_eq!(
        kept(&windows, &second, &offsets(P1, 0, 4)),
        vec![0, 1, 2, 3, 4]
    );
}

#[test]
fn rows_of_a_withdrawn_partition_are_never_written_even_when_a_later_owner_covers_them() {
    // Spilled while owned (100, 150], then revoked: withdrawn from that generation. The
    // partition came back, read again from the table's position 100.
    let mut stale = Coverage::from_ranges(&[range(P0, Some(100), 150), range(P1, Some(0), 50)]);
    assert!(stale.withdraw(&[P0]));
    let fresh = Coverage::from_ranges(&[range(P0, Some(100), 200)]);
    let versions = recorded(&[(P0, 100), (P1, 0)]);
    let windows = CommitWindows::plan(&[&stale, &fresh], &versions).expect("plan");
    assert!(kept(&windows, &stale, &offsets(P0, 101, 150)).is_empty());
    assert_eq!(kept(&windows, &fresh, &offsets(P0, 101, 200)).len(), 100);
    assert_eq!(kept(&windows, &stale, &offsets(P1, 1, 50)).len(), 50);
}

#[test]
fn rows_of_partitions_no_part_covers_are_never_written() {
    let part = Coverage::from_ranges(&[range(P0, Some(-1), 9)]);
    let windows = CommitWindows::plan(&[&part], &recorded(&[])).expect("plan");
    assert!(kept(&windows, &part, &offsets(P1, 0, 9)).is_empty());
    assert_eq!(
        txn_versions(&windows, &recorded(&[])),
        vec![("p0".into(), 9)]
    );
}

#[test]
fn a_part_starting_beyond_the_recorded_version_is_refused() {
    let part = Coverage::from_ranges(&[range(P0, Some(50), 60)]);
    let err = CommitWindows::plan(&[&part], &recorded(&[(P0, 40)])).expect_err("a gap");
    assert!(err.to_string().contains("skip offsets 41..=50"), "{err}");
}

#[test]
fn a_table_ahead_of_every_part_gets_nothing_and_no_txn() {
    let part = Coverage::from_ranges(&[range(P0, Some(9), 19)]);
    let versions = recorded(&[(P0, 30)]);
    let windows = CommitWindows::plan(&[&part], &versions).expect("plan");
    assert!(kept(&windows, &part, &offsets(P0, 10, 19)).is_empty());
    assert!(txn_versions(&windows, &versions).is_empty());
}

#[test]
fn a_start_with_nothing_read_still_records_where_it_starts() {
    let part = Coverage::from_ranges(&[range(P0, Some(99), 99)]);
    let windows = CommitWindows::plan(&[&part], &recorded(&[])).expect("plan");
    assert_eq!(
        txn_versions(&windows, &recorded(&[])),
        vec![("p0".into(), 99)]
    );
}

#[test]
fn dead_letters_follow_the_rows_table_but_move_only_their_own_versions_forward() {
    // The rows' table records 100; the dead-letter table already recorded 200 (a crash between
    // the two commits): dead letters above 100 are written again (looked up first), and the
    // dead-letter table's version moves only past 200.
    let part = Coverage::from_ranges(&[range(P0, Some(100), 200)]);
    let windows = CommitWindows::plan(&[&part], &recorded(&[(P0, 100)])).expect("plan");
    assert_eq!(kept(&windows, &part, &offsets(P0, 101, 200)).len(), 100);
    assert!(txn_versions(&windows, &recorded(&[(P0, 200)])).is_empty());
    let longer = Coverage::from_ranges(&[range(P0, Some(100), 250)]);
    let windows = CommitWindows::plan(&[&longer], &recorded(&[(P0, 100)])).expect("plan");
    assert_eq!(
        txn_versions(&windows, &recorded(&[(P0, 200)])),
        vec![("p0".into(), 250)]
    );
}

#[test]
fn ownership_stages_only_owned_partitions_and_continues_each_read() {
    let mut owned = Ownership::default();
    assert_eq!(owned.advance(P0, 5), None, "not owned");
    owned.assign(P0, Some(9), None);
    assert_eq!(owned.advance(P0, 15), Some(read(Some(9))));
    assert_eq!(owned.advance(P0, 20), Some(read(Some(15))));
    owned.assign(P1, None, None);
    assert_eq!(owned.advance(P1, 3), Some(read(None)));
    owned.forget(&P0);
    assert!(!owned.owns(&P0));
    assert_eq!(owned.advance(P0, 30), None);
}

#[test]
fn coverage_extends_within_a_part() {
    let mut part = Coverage::default();
    part.extend(P0, read(Some(9)), 12);
    part.extend(P0, read(Some(12)), 20);
    part.extend(P1, read(Some(1)), 2);
    assert_eq!(
        part.ranges(),
        vec![range(P0, Some(9), 20), range(P1, Some(1), 2)]
    );
}

#[test]
fn a_recreated_partition_starts_over_below_the_version_it_replaces_once() {
    // The table records 499; the topic was recreated and holds 0..149 now.
    let new_log = PartitionRange {
        replaces: Some(499),
        ..range(P0, Some(-1), 149)
    };
    let part = Coverage::from_ranges(&[new_log]);
    let old = recorded(&[(P0, 499)]);
    let windows = CommitWindows::plan(&[&part], &old).expect("plan");
    assert_eq!(kept(&windows, &part, &offsets(P0, 0, 149)).len(), 150);
    assert_eq!(txn_versions(&windows, &old), vec![("p0".into(), 149)]);
    assert_eq!(
        windows.iter().count(),
        0,
        "no dead-letter lookup in a new log"
    );
    // Once the table records the new position, the part is an ordinary one.
    let new = recorded(&[(P0, 99)]);
    let windows = CommitWindows::plan(&[&part], &new).expect("plan");
    assert_eq!(
        kept(&windows, &part, &offsets(P0, 0, 149)),
        (100..=149).collect::<Vec<_>>()
    );
    assert_eq!(txn_versions(&windows, &new), vec![("p0".into(), 149)]);
    // Another position (someone else moved it meanwhile) is never moved back.
    let other = recorded(&[(P0, 600)]);
    let windows = CommitWindows::plan(&[&part], &other).expect("plan");
    assert!(kept(&windows, &part, &offsets(P0, 0, 149)).is_empty());
    assert!(txn_versions(&windows, &other).is_empty());
}
