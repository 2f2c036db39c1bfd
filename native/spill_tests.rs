use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn rows(n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let values: ArrayRef = Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()));
    RecordBatch::try_new(schema, vec![values]).expect("batch")
}

fn range(previous: Option<i64>, last: i64) -> PartitionRange {
    PartitionRange {
        topic: 0,
        partition: 0,
        previous,
        last,
        replaces: None,
    }
}

/// A staging directory of one fixed topic with a 1 MiB budget.
fn open_one_topic(dir: &Path) -> CoreResult<Staging> {
    Staging::open(
        dir,
        "test".into(),
        vec!["t".into()],
        false,
        1 << 20,
        Vec::new(),
    )
}

#[test]
fn a_flush_spilling_its_memory_rows_lists_them_before_what_the_stage_spilled_since() {
    let dir = std::env::temp_dir().join(format!("kdr-spill-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || open_one_topic(&dir);
    let mut staging = open().expect("staging");
    // The flushing segment spilled offsets 0..=9, kept 10..=19 in memory; the stage has since
    // spilled 20..=29. The flush spills its memory rows right after its own generation.
    let first = staging
        .spill(vec![(1, vec![rows(10)])], Vec::new(), vec![range(None, 9)])
        .expect("first");
    staging
        .spill(
            vec![(1, vec![rows(10)])],
            Vec::new(),
            vec![range(Some(19), 29)],
        )
        .expect("later");
    staging
        .spill_after(
            Some(first.id),
            &[(1, vec![rows(10)])],
            &[],
            vec![range(Some(9), 19)],
        )
        .expect("memory rows");
    drop(staging);

    // A crash before the commit: recovery must find the three in reading order.
    let mut reopened = open().expect("reopen");
    let recovered = reopened.recover(&HashMap::new()).expect("recover");
    let lasts: Vec<i64> = recovered
        .generations
        .iter()
        .map(|g| g.ranges[0].last)
        .collect();
    assert_eq!(lasts, vec![9, 19, 29], "{:?}", recovered.reasons);
    assert_eq!(recovered.discarded_files, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn staging_files_are_private_and_a_manifest_cannot_name_a_file_outside_the_directory() {
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!("kdr-spill-private-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("staging");
    let open = || open_one_topic(&dir);
    let mut staging = open().expect("staging");
    let generation = staging
        .spill(vec![(1, vec![rows(10)])], Vec::new(), vec![range(None, 9)])
        .expect("spill");
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(MANIFEST)), 0o600);
    for file in &generation.files {
        assert_eq!(mode(&dir.join(&file.name)), 0o600, "{}", file.name);
    }
    drop(staging);

    // A manifest rewritten to name a file outside: not used, and that file is left alone.
    let outside = root.join("precious");
    std::fs::write(&outside, b"keep").expect("outside file");
    let manifest = std::fs::read_to_string(dir.join(MANIFEST)).expect("manifest");
    let name = &generation.files[0].name;
    std::fs::write(
        dir.join(MANIFEST),
        manifest.replace(&format!("\"{name}\""), "\"../precious\""),
    )
    .expect("rewrite");
    let mut reopened = open().expect("reopen");
    assert!(reopened.manifest_partitions().is_empty());
    let recovered = reopened.recover(&HashMap::new()).expect("recover");
    assert!(recovered.generations.is_empty());
    assert_eq!(std::fs::read(&outside).expect("still there"), b"keep");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_growing_topic_list_starts_with_the_manifests_and_a_fixed_one_must_equal_it() {
    let dir = std::env::temp_dir().join(format!("kdr-spill-topics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = |topics: &[&str], grow: bool| {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        Staging::open(&dir, "test".into(), topics, grow, 1 << 20, Vec::new()).expect("staging")
    };
    let mut staging = open(&["orders-a"], true);
    staging.add_topics(&["orders-b".to_string(), "orders-a".to_string()]);
    assert_eq!(staging.topics(), ["orders-a", "orders-b"]);
    // A generation of the second topic (index 1): the manifest written with it names both.
    let of_b = PartitionRange {
        topic: 1,
        ..range(None, 9)
    };
    staging
        .spill(vec![(1, vec![rows(10)])], Vec::new(), vec![of_b])
        .expect("spill");
    drop(staging);

    // Restarted with the pattern matching another topic first: the staged rows' list stays
    // the beginning, so index 1 still means orders-b.
    let mut grown = open(&["orders-c", "orders-b"], true);
    assert_eq!(grown.topics(), ["orders-a", "orders-b", "orders-c"]);
    let recovered = grown.recover(&HashMap::new()).expect("recover");
    assert_eq!(recovered.generations.len(), 1, "{:?}", recovered.reasons);
    assert_eq!(recovered.generations[0].ranges[0].topic, 1);
    drop(grown);

    // A fixed list that differs does not use the staging (its indexes would mean other topics).
    let mut fixed = open(&["orders-b"], false);
    assert_eq!(fixed.topics(), ["orders-b"]);
    let recovered = fixed.recover(&HashMap::new()).expect("recover");
    assert!(recovered.generations.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
