use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::consolidate::Plan;
use crate::keys::stable_hash;
use crate::positions::Coverage;
use crate::spill::Staging;
use crate::spill_read::{PartFile, SegmentPart};

fn batch(ids: &[&str], seqs: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("seq", DataType::Int64, false),
    ]));
    let ids: ArrayRef = Arc::new(StringArray::from(ids.to_vec()));
    let seqs: ArrayRef = Arc::new(Int64Array::from(seqs.to_vec()));
    RecordBatch::try_new(schema, vec![ids, seqs]).expect("batch")
}

/// `n` rows over `keys` keys, `seq` numbering them in arrival order.
fn rows(n: usize, keys: usize, from: i64) -> RecordBatch {
    let ids: Vec<String> = (0..n)
        .map(|i| format!("key-{}", (i * 7919) % keys))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let seqs: Vec<i64> = (0..n as i64).map(|i| from + i).collect();
    batch(&refs, &seqs)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch
        .column(batch.schema().index_of(name).expect("column"))
        .as_ref()
}

fn ids_and_seqs(batch: &RecordBatch) -> Vec<(String, i64)> {
    let ids = column(batch, "id")
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("ids");
    let seqs = column(batch, "seq")
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("seqs");
    (0..batch.num_rows())
        .map(|r| (ids.value(r).to_string(), seqs.value(r)))
        .collect()
}

#[test]
fn the_key_hash_is_fixed_across_builds() {
    // Bucket numbers are on disk: a change of these values would split keys across buckets of
    // files spilled by an earlier build. (Values from an independent Python rendition of the
    // hash.)
    assert_eq!(stable_hash(b""), 0);
    assert_eq!(stable_hash(b"key-1"), 0x4c78_2730_1aae_fe7a);
    assert_eq!(
        stable_hash(b"a longer key over two words"),
        0xf7bd_90bd_19bc_a526
    );
}

#[test]
fn the_level_follows_the_memory_budget() {
    let level = |bytes: usize| Bucketing::new(vec!["id".into()], bytes).map(|b| b.level);
    assert_eq!(level(2 << 20), Some(6));
    assert_eq!(level(64 << 20), Some(10));
    assert_eq!(level(16 << 30), Some(10));
    assert_eq!(level(1024), Some(4));
    assert!(Bucketing::new(Vec::new(), 64 << 20).is_none());
}

#[test]
fn a_split_keeps_every_row_once_in_arrival_order_and_each_key_in_one_bucket() {
    let bucketing = Bucketing::new(vec!["id".into()], 2 << 20).expect("bucketing");
    let input = [rows(3000, 500, 0), rows(2000, 500, 3000)];
    let mut buckets = Vec::new();
    bucketing
        .for_each_bucket(&input, |b| {
            buckets.push(b);
            Ok(())
        })
        .expect("split");
    assert_eq!(buckets.len(), 64);
    let mut seen = Vec::new();
    let mut bucket_of_key: HashMap<String, usize> = HashMap::new();
    for (b, bucket) in buckets.iter().enumerate() {
        let Some(bucket) = bucket else { continue };
        let rows = ids_and_seqs(bucket);
        assert!(
            rows.windows(2).all(|w| w[0].1 < w[1].1),
            "arrival order in bucket {b}"
        );
        for (id, seq) in rows {
            assert_eq!(
                *bucket_of_key.entry(id.clone()).or_insert(b),
                b,
                "{id} in one bucket"
            );
            seen.push(seq);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..5000).collect::<Vec<i64>>());
}

#[test]
fn a_range_maps_onto_finer_and_coarser_levels() {
    let range = BucketRange {
        level: 4,
        buckets: 2..6,
    };
    assert_eq!(range.at_level(6), (8..24, true));
    assert_eq!(range.at_level(4), (2..6, true));
    assert_eq!(range.at_level(2), (0..2, false));
    let aligned = BucketRange {
        level: 4,
        buckets: 4..8,
    };
    assert_eq!(aligned.at_level(2), (1..2, true));
    assert_eq!(bucket_of(u64::MAX, 4), 15);
    assert_eq!(bucket_of(0, 10), 0);
}

/// Spills `batches` as one generation into a staging of the given budget; returns its file.
fn spill_file(
    dir: &std::path::Path,
    budget: usize,
    batches: Vec<RecordBatch>,
    keys: &[&str],
) -> PartFile {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut staging =
        Staging::open(dir, "test".into(), vec!["t".into()], false, budget, keys).expect("staging");
    let generation = staging
        .spill(vec![(20_000, batches)], Vec::new(), Vec::new())
        .expect("spill");
    let file = &generation.files[0];
    PartFile {
        day: file.day,
        path: staging.path_of(file),
        rows: file.rows,
        bytes: file.bytes,
        coverage: Arc::new(Coverage::default()),
    }
}

#[test]
fn units_of_files_bucketed_at_different_levels_or_not_at_all_hold_each_key_once() {
    let dirs: Vec<std::path::PathBuf> = (0..3)
        .map(|i| std::env::temp_dir().join(format!("kdr-buckets-{}-{i}", std::process::id())))
        .collect();
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    // Level 6, level 10, and unbucketed (another key), then rows still in memory.
    let files = vec![
        spill_file(&dirs[0], 2 << 20, vec![rows(4000, 900, 0)], &["id"]),
        spill_file(&dirs[1], 64 << 20, vec![rows(4000, 900, 4000)], &["id"]),
        spill_file(&dirs[2], 2 << 20, vec![rows(4000, 900, 8000)], &["seq"]),
    ];
    let mut memory = BTreeMap::new();
    memory.insert(Some(20_000), vec![rows(1000, 900, 12_000)]);
    let part = SegmentPart {
        files,
        memory,
        memory_coverage: Arc::new(Coverage::default()),
        generation_coverages: Vec::new(),
        schema: None,
    };
    let plan = Plan::new(&part, &["id".to_string()], 16 * 1024).expect("plan");
    assert!(
        plan.units.len() > 8,
        "a small budget cuts the day in units ({})",
        plan.units.len()
    );
    let mut seqs = Vec::new();
    let mut unit_of_key: HashMap<String, usize> = HashMap::new();
    for (u, unit) in plan.units.iter().enumerate() {
        for (_, batch) in plan.read(&part, unit).expect("read") {
            let rows = ids_and_seqs(&batch);
            for (id, seq) in rows {
                assert_eq!(
                    *unit_of_key.entry(id.clone()).or_insert(u),
                    u,
                    "{id} in one unit"
                );
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..13_000).collect::<Vec<i64>>(),
        "every row read once"
    );
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
