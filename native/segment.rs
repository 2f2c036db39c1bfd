//! A segment: what one flush commits (rows by day in memory and spilled, dead letters, and the
//! Kafka positions covered), taken out of a stage.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{RecordBatch, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::day::{self, EpochDay};
use crate::error::{lock, off_thread, CoreResult};
use crate::js_error::{spawn, OrThrow};
use crate::positions::{row_keys, Coverage, PartitionKey, PartitionPosition};
use crate::spill::{Generation, Staging};

/// Everything taken out of a stage for one commit.
#[derive(Default)]
pub struct SegmentData {
    pub by_day: BTreeMap<EpochDay, Vec<RecordBatch>>,
    pub dead_letters: Vec<RecordBatch>,
    /// What the rows and dead letters in memory cover, per topic-partition.
    pub coverage: Coverage,
    /// Rows and bytes held in memory (`by_day`).
    pub rows: usize,
    pub bytes: usize,
    /// Generations spilled to disk, oldest first; their rows come before `by_day`'s.
    pub spilled: Vec<Generation>,
    /// The staging the spilled generations live in (to read and then release them).
    pub staging: Option<Arc<Mutex<Staging>>>,
    /// Schema evolution is on: the commit adds the columns the rows have beyond the table.
    pub add_columns: bool,
    /// The rows are change events: each carries a delete flag (`debezium.rs`).
    pub changes: bool,
}

impl SegmentData {
    /// The last offset covered per topic-partition, over every part.
    pub fn last_offsets(&self) -> HashMap<PartitionKey, i64> {
        let mut last: HashMap<PartitionKey, i64> = HashMap::new();
        let spilled = self.spilled.iter().flat_map(|g| g.ranges.iter());
        for range in self.coverage.ranges().iter().chain(spilled) {
            let entry = last.entry(range.key()).or_insert(range.last);
            *entry = (*entry).max(range.last);
        }
        last
    }

    pub fn position_list(&self) -> Vec<PartitionPosition> {
        let mut list: Vec<PartitionPosition> = self
            .last_offsets()
            .iter()
            .map(|(&(topic, partition), &offset)| PartitionPosition {
                topic_index: u32::from(topic),
                partition,
                last_offset: offset as f64,
            })
            .collect();
        list.sort_by_key(|p| (p.topic_index, p.partition));
        list
    }

    pub fn dead_letter_count(&self) -> usize {
        let spilled: u64 = self
            .spilled
            .iter()
            .flat_map(|g| &g.files)
            .filter(|f| f.day.is_none())
            .map(|f| f.rows)
            .sum();
        self.dead_letters
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>()
            + spilled as usize
    }

    /// Rows spilled to disk.
    pub fn spilled_rows(&self) -> usize {
        self.spilled.iter().map(|g| g.rows() as usize).sum()
    }

    /// The days the segment writes into, memory and disk.
    pub fn days(&self) -> Vec<EpochDay> {
        let mut days: Vec<EpochDay> = self.by_day.keys().copied().collect();
        days.extend(
            self.spilled
                .iter()
                .flat_map(|g| g.files.iter().filter_map(|f| f.day)),
        );
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Drops the rows in memory of the given topic-partitions (after a revoke), so the new
    /// owner reads them again from the table's committed position. (Spilled generations are
    /// withdrawn from by the staging.)
    pub fn forget_partitions(&mut self, lost: &[PartitionKey]) -> CoreResult<()> {
        let keep_owned = |batches: &[RecordBatch]| -> CoreResult<Vec<RecordBatch>> {
            let mut kept = Vec::with_capacity(batches.len());
            for batch in batches {
                kept.extend(without_partitions(batch, lost)?);
            }
            Ok(kept)
        };
        for batches in self.by_day.values_mut() {
            *batches = keep_owned(batches)?;
        }
        self.by_day.retain(|_, batches| !batches.is_empty());
        self.dead_letters = keep_owned(&self.dead_letters)?;
        self.coverage.withdraw(lost);
        self.recount();
        Ok(())
    }

    /// Moves the rows in memory (and dead letters) into a new durable generation, listed
    /// after generation `after` when given (else last).
    pub fn spill_into(&mut self, staging: &mut Staging, after: Option<u64>) -> CoreResult<()> {
        let started = std::time::Instant::now();
        let by_day: Vec<(EpochDay, Vec<RecordBatch>)> = std::mem::take(&mut self.by_day)
            .into_iter()
            .filter(|(_, batches)| !batches.is_empty())
            .collect();
        // On failure (a full disk) the rows go back: nothing staged is dropped.
        let generation =
            match staging.spill_after(after, &by_day, &self.dead_letters, self.coverage.ranges()) {
                Ok(generation) => generation,
                Err(err) => {
                    self.by_day = by_day.into_iter().collect();
                    return Err(err);
                }
            };
        drop(by_day);
        self.dead_letters.clear();
        self.coverage.clear();
        let rows = self.rows;
        crate::memory::release_free_memory();
        tracing::debug!(
            generation = generation.id,
            rows,
            bytes = generation.bytes(),
            ms = started.elapsed().as_millis() as u64,
            "staged rows spilled to disk"
        );
        self.rows = 0;
        self.bytes = 0;
        self.spilled.push(generation);
        Ok(())
    }

    /// Before the rows commit of a segment that spilled: its rows still in memory are spilled
    /// too (in buckets when it consolidates), so the flush streams from disk and holds one unit
    /// of rows at a time, not these beside it while the stage fills again. Returns whether
    /// anything was written.
    pub fn spill_before_flush(&mut self) -> CoreResult<bool> {
        let Some(staging) = self.staging.clone() else {
            return Ok(false);
        };
        let Some(last) = self.spilled.last().map(|g| g.id) else {
            return Ok(false);
        };
        if self.by_day.is_empty() && self.dead_letters.is_empty() {
            return Ok(false);
        }
        let mut staging = lock(&staging)?;
        match self.spill_into(&mut staging, Some(last)) {
            Ok(()) => Ok(true),
            // The commit reads these rows from memory instead: more memory, but it goes on.
            Err(err) if err.is_disk_full() => {
                tracing::warn!(error = %err, "staging disk full: the flush reads its newest rows from memory");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    fn recount(&mut self) {
        let batches = self.by_day.values().flatten();
        self.rows = batches.clone().map(RecordBatch::num_rows).sum();
        self.bytes = batches.map(RecordBatch::get_array_memory_size).sum();
    }
}

/// The rows of a staged batch that belong to none of the `lost` partitions; `None` when no row
/// is left.
pub fn without_partitions(
    batch: &RecordBatch,
    lost: &[PartitionKey],
) -> CoreResult<Option<RecordBatch>> {
    let rows: Vec<u32> = row_keys(batch)?
        .iter()
        .enumerate()
        .filter(|(_, key)| !lost.contains(key))
        .map(|(r, _)| r as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(Some(batch.clone()));
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(take_record_batch(batch, &UInt32Array::from(rows))?))
}

/// A segment taken from a stage, waiting for its commit.
#[napi]
pub struct StagedSegment {
    pub(crate) data: Arc<Mutex<Option<SegmentData>>>,
}

impl StagedSegment {
    pub(crate) fn new(data: SegmentData) -> Self {
        Self {
            data: Arc::new(Mutex::new(Some(data))),
        }
    }
}

#[napi]
impl StagedSegment {
    /// Rows in the segment, in memory and spilled.
    #[napi(getter, catch_unwind)]
    pub fn rows(&self, env: &Env) -> napi::Result<u32> {
        self.read(env, |d| (d.rows + d.spilled_rows()) as u32)
    }

    /// Dead letters in the segment.
    #[napi(getter, catch_unwind)]
    pub fn dead_letters(&self, env: &Env) -> napi::Result<u32> {
        self.read(env, |d| d.dead_letter_count() as u32)
    }

    /// The days the segment writes into, as `YYYY-MM-DD`.
    #[napi(getter, catch_unwind)]
    pub fn days(&self, env: &Env) -> napi::Result<Vec<String>> {
        self.read(env, |d| d.days().into_iter().map(day::format_day).collect())
    }

    /// Rows of the segment that were spilled to disk.
    #[napi(getter, catch_unwind)]
    pub fn spilled_rows(&self, env: &Env) -> napi::Result<f64> {
        self.read(env, |d| d.spilled_rows() as f64)
    }

    /// After the segment's commits: frees its rows in memory and deletes its spill files (the
    /// table now holds their rows); reads of it then see an empty segment.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let data = self.data.clone();
        spawn(
            env,
            off_thread(move || {
                // The rows in memory go now, not when V8 collects this handle: it cannot see
                // their size, and a daemon's committed segments piled up (native memory grew
                // by a segment per flush: 61 → 275 MiB over four 250k-row flushes).
                let Some(segment) = lock(&data)?.take() else {
                    return Ok(());
                };
                if let Some(staging) = &segment.staging {
                    let ids: Vec<u64> = segment.spilled.iter().map(|g| g.id).collect();
                    lock(staging)?.release(&ids)?;
                }
                Ok(())
            }),
        )
    }

    /// The last offset the segment covers for each topic-partition it holds.
    #[napi(catch_unwind)]
    pub fn positions(&self, env: &Env) -> napi::Result<Vec<PartitionPosition>> {
        self.read(env, SegmentData::position_list)
    }
}

impl StagedSegment {
    /// `read` of the segment's data; the default once it was released.
    fn read<T: Default>(&self, env: &Env, read: impl FnOnce(&SegmentData) -> T) -> napi::Result<T> {
        Ok(lock(&self.data)
            .or_throw(env)?
            .as_ref()
            .map(read)
            .unwrap_or_default())
    }
}
