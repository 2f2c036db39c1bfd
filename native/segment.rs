//! A segment: what one flush commits (rows by day in memory and spilled, dead letters, and the
//! Kafka positions covered), taken out of a stage.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use deltalake::arrow::array::{Int32Array, RecordBatch, UInt16Array, UInt32Array};
use deltalake::arrow::compute::take_record_batch;
use napi_derive::napi;

use crate::day::{self, EpochDay};
use crate::decode::{PARTITION_COLUMN, TOPIC_COLUMN};
use crate::error::{CoreError, CoreResult};
use crate::spill::{Generation, Staging};
use crate::stage::{lock, PartitionPosition};

/// Everything taken out of a stage for one commit.
#[derive(Default)]
pub struct SegmentData {
    pub by_day: BTreeMap<EpochDay, Vec<RecordBatch>>,
    pub dead_letters: Vec<RecordBatch>,
    pub positions: HashMap<(u16, i32), i64>,
    /// Rows and bytes held in memory (`by_day`).
    pub rows: usize,
    pub bytes: usize,
    /// Generations spilled to disk, oldest first; their rows come before `by_day`'s.
    pub spilled: Vec<Generation>,
    /// The staging the spilled generations live in (to read and then release them).
    pub staging: Option<Arc<Mutex<Staging>>>,
}

impl SegmentData {
    pub fn position_list(&self) -> Vec<PartitionPosition> {
        let mut list: Vec<PartitionPosition> = self
            .positions
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

    /// Rows consolidated away while spilling.
    pub fn spilled_deduplicated(&self) -> usize {
        self.spilled.iter().map(|g| g.deduplicated as usize).sum()
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

    /// Drops everything staged for the given topic-partitions (after a revoke), so the new owner
    /// reads them again from the table's committed position.
    pub fn forget_partitions(&mut self, lost: &[(u16, i32)]) -> CoreResult<()> {
        let keep_owned = |batches: &[RecordBatch]| -> CoreResult<Vec<RecordBatch>> {
            let mut kept = Vec::with_capacity(batches.len());
            for batch in batches {
                let topic = column::<UInt16Array>(batch, TOPIC_COLUMN)?;
                let partition = column::<Int32Array>(batch, PARTITION_COLUMN)?;
                kept.extend(keep_rows(batch, |r| {
                    !lost.contains(&(topic.value(r), partition.value(r)))
                })?);
            }
            Ok(kept)
        };
        for batches in self.by_day.values_mut() {
            *batches = keep_owned(batches)?;
        }
        self.by_day.retain(|_, batches| !batches.is_empty());
        self.dead_letters = keep_owned(&self.dead_letters)?;
        self.positions.retain(|key, _| !lost.contains(key));
        self.recount();
        Ok(())
    }

    fn recount(&mut self) {
        let batches = self.by_day.values().flatten();
        self.rows = batches.clone().map(RecordBatch::num_rows).sum();
        self.bytes = batches.map(RecordBatch::get_array_memory_size).sum();
    }
}

/// The rows of `batch` for which `keep` holds; `None` when no row is left.
fn keep_rows(batch: &RecordBatch, keep: impl Fn(usize) -> bool) -> CoreResult<Option<RecordBatch>> {
    let rows: Vec<u32> = (0..batch.num_rows())
        .filter(|&r| keep(r))
        .map(|r| r as u32)
        .collect();
    if rows.len() == batch.num_rows() {
        return Ok(Some(batch.clone()));
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(take_record_batch(batch, &UInt32Array::from(rows))?))
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> CoreResult<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| CoreError::Internal(format!("staged rows lack column {name:?}")))
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
    #[napi(getter)]
    pub fn rows(&self) -> napi::Result<u32> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, |d| d.rows + d.spilled_rows()) as u32)
    }

    /// Dead letters in the segment.
    #[napi(getter)]
    pub fn dead_letters(&self) -> napi::Result<u32> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, SegmentData::dead_letter_count) as u32)
    }

    /// The days the segment writes into, as `YYYY-MM-DD`.
    #[napi(getter)]
    pub fn days(&self) -> napi::Result<Vec<String>> {
        Ok(lock(&self.data)?
            .as_ref()
            .map(|d| d.days().into_iter().map(day::format_day).collect())
            .unwrap_or_default())
    }

    /// Rows of the segment that were spilled to disk.
    #[napi(getter)]
    pub fn spilled_rows(&self) -> napi::Result<f64> {
        Ok(lock(&self.data)?
            .as_ref()
            .map_or(0, SegmentData::spilled_rows) as f64)
    }

    /// After the segment's commits: deletes its spill files (the table now holds their rows).
    #[napi]
    pub async fn release(&self) -> napi::Result<()> {
        let data = self.data.clone();
        tokio::task::spawn_blocking(move || -> CoreResult<()> {
            let guard = lock(&data)?;
            let Some(segment) = guard.as_ref() else {
                return Ok(());
            };
            if let Some(staging) = &segment.staging {
                let ids: Vec<u64> = segment.spilled.iter().map(|g| g.id).collect();
                lock(staging)?.release(&ids)?;
            }
            Ok(())
        })
        .await
        .map_err(CoreError::from)??;
        Ok(())
    }

    /// The last offset the segment covers for each topic-partition it holds.
    #[napi]
    pub fn positions(&self) -> napi::Result<Vec<PartitionPosition>> {
        Ok(lock(&self.data)?
            .as_ref()
            .map(SegmentData::position_list)
            .unwrap_or_default())
    }
}
