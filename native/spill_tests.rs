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

#[test]
fn a_flush_spilling_its_memory_rows_lists_them_before_what_the_stage_spilled_since() {
    let dir = std::env::temp_dir().join(format!("kdr-spill-order-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open = || Staging::open(&dir, "test".into(), vec!["t".into()], 1 << 20, Vec::new());
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
    let open = || Staging::open(&dir, "test".into(), vec!["t".into()], 1 << 20, Vec::new());
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
