//! Spill buckets. When a flush consolidates (dedup keys, or MERGE keys), every spilled day file
//! holds its rows grouped by a stable hash of the key into `2^level` buckets: one run of record
//! batches per bucket, indexed in the file's footer. Every row of a key is then in the same
//! bucket of every generation, so a flush consolidates a day one group of buckets at a time
//! (`consolidate.rs`) and never needs the whole day in memory.
//!
//! Buckets are ranges of the hash's top bits, so a bucket at one level is a contiguous run of
//! buckets at a finer level: files spilled at different levels (after a change of
//! `buffer.max_memory`) still combine, the coarser ones filtered row by row.

use std::ops::Range;

use deltalake::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use deltalake::arrow::compute::{filter_record_batch, interleave_record_batch};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::keys::stable_hashes;

/// The footer key of a spill file's bucket index.
pub const INDEX_KEY: &str = "kdr.buckets";
/// Version of the key hash (`keys::stable_hash`); a file hashed otherwise is read as unbucketed.
pub const HASH_SCHEME: u32 = 1;
/// The finest level (1,024 buckets): at `buffer.max_memory` 64 MiB a generation's bucket runs
/// are ~64 KiB, below which the per-batch overhead of Arrow IPC starts to show.
const MAX_LEVEL: u8 = 10;
const MIN_LEVEL: u8 = 4;
/// Spilled bytes per bucket run aimed at when choosing the level.
const RUN_BYTES: usize = 32 * 1024;

/// Where a spill file's bucket runs are: record batches `batch_ends[b-1]..batch_ends[b]` hold
/// bucket `b`'s `rows[b]` rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketIndex {
    pub scheme: u32,
    /// The key columns hashed.
    pub keys: Vec<String>,
    pub level: u8,
    pub batch_ends: Vec<u32>,
    pub rows: Vec<u64>,
}

impl BucketIndex {
    /// The record batches of the buckets `buckets` (at this index's level).
    pub fn batches(&self, buckets: &Range<u32>) -> Range<usize> {
        let end_of = |b: u32| -> usize {
            match b {
                0 => 0,
                b => self.batch_ends[b as usize - 1] as usize,
            }
        };
        end_of(buckets.start)..end_of(buckets.end)
    }

    /// The index of a file bucketed on `keys` by this program's hash; `None` otherwise (the
    /// file is then read whole and filtered).
    pub fn from_footer(value: &str, keys: &[String]) -> Option<Self> {
        serde_json::from_str::<Self>(value).ok().filter(|i| {
            i.scheme == HASH_SCHEME && i.keys == keys && i.batch_ends.len() == 1 << i.level
        })
    }
}

/// How a stage's spilled rows are bucketed.
#[derive(Debug, Clone)]
pub struct Bucketing {
    /// The consolidation key's columns.
    pub keys: Vec<String>,
    pub level: u8,
}

impl Bucketing {
    /// Bucketing on `keys` for a memory budget of `max_memory` bytes; none without keys.
    pub fn new(keys: Vec<String>, max_memory: usize) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        let runs = (max_memory / RUN_BYTES).max(1);
        let level = (usize::BITS - 1 - runs.leading_zeros()) as u8;
        Some(Self {
            keys,
            level: level.clamp(MIN_LEVEL, MAX_LEVEL),
        })
    }

    pub fn count(&self) -> u32 {
        1 << self.level
    }

    /// The stable key hash of each row of `batch`.
    pub fn hashes(&self, batch: &RecordBatch) -> CoreResult<Vec<u64>> {
        let keys = key_columns(batch, &self.keys)?;
        stable_hashes(&keys, batch.num_rows())
    }

    /// Regroups a day's batches into one batch per bucket (rows in their order of arrival),
    /// handing each to `write` in bucket order (`None` for an empty bucket). One copy of each
    /// row, and only one bucket's copy exists at a time: a spill holds the staged rows plus one
    /// bucket, not the staged rows twice.
    pub fn for_each_bucket(
        &self,
        batches: &[RecordBatch],
        mut write: impl FnMut(Option<RecordBatch>) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let mut members: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.count() as usize];
        for (b, batch) in batches.iter().enumerate() {
            for (row, hash) in self.hashes(batch)?.into_iter().enumerate() {
                members[bucket_of(hash, self.level) as usize].push((b, row));
            }
        }
        let sources: Vec<&RecordBatch> = batches.iter().collect();
        for rows in &members {
            match rows.len() {
                0 => write(None)?,
                _ => write(Some(interleave_record_batch(&sources, rows)?))?,
            }
        }
        Ok(())
    }
}

/// The bucket of a hash at `level` (its top `level` bits).
pub fn bucket_of(hash: u64, level: u8) -> u32 {
    match level {
        0 => 0,
        l => (hash >> (64 - u32::from(l))) as u32,
    }
}

/// A range of buckets at a level: one unit of a flush's consolidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRange {
    pub level: u8,
    pub buckets: Range<u32>,
}

impl BucketRange {
    pub fn is_all(&self) -> bool {
        self.buckets.start == 0 && self.buckets.end == 1 << self.level
    }

    /// The buckets at `level` that hold rows of this range, and whether they hold only those
    /// (else their rows are filtered by hash).
    pub fn at_level(&self, level: u8) -> (Range<u32>, bool) {
        if level >= self.level {
            let shift = level - self.level;
            (self.buckets.start << shift..self.buckets.end << shift, true)
        } else {
            let shift = self.level - level;
            let start = self.buckets.start >> shift;
            let end = (self.buckets.end + (1 << shift) - 1) >> shift;
            let exact = start << shift == self.buckets.start && end << shift == self.buckets.end;
            (start..end, exact)
        }
    }

    /// The rows of `batch` whose key falls in this range.
    pub fn filter(&self, batch: &RecordBatch, keys: &[String]) -> CoreResult<Option<RecordBatch>> {
        if self.is_all() {
            return Ok(Some(batch.clone()));
        }
        let columns = key_columns(batch, keys)?;
        let hashes = stable_hashes(&columns, batch.num_rows())?;
        let keep: BooleanArray = hashes
            .iter()
            .map(|&h| Some(self.buckets.contains(&bucket_of(h, self.level))))
            .collect();
        let kept = filter_record_batch(batch, &keep)?;
        Ok((kept.num_rows() > 0).then_some(kept))
    }
}

fn key_columns(batch: &RecordBatch, keys: &[String]) -> CoreResult<Vec<ArrayRef>> {
    keys.iter()
        .map(|k| {
            batch
                .schema()
                .index_of(k)
                .map(|i| batch.column(i).clone())
                .map_err(|_| CoreError::SchemaMismatch(format!("key {k:?} is not a column")))
        })
        .collect()
}

#[cfg(test)]
#[path = "buckets_tests.rs"]
mod tests;
