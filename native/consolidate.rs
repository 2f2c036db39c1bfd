//! A flush's consolidation, one unit at a time. A unit is a day's range of key buckets whose
//! staged rows fit the flush's memory budget (`buckets.rs`); every row of a key is in one unit,
//! so consolidating unit by unit gives the same rows as consolidating the whole day at once,
//! while only one unit is in memory. The units stream into the Delta writer (INSERT) or into the
//! MERGE's source, so a day far larger than memory is still one commit.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::reader::FileReader;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;

use crate::buckets::{BucketIndex, BucketRange, INDEX_KEY};
use crate::day::EpochDay;
use crate::dedup::{dedup, DedupSpec};
use crate::error::{CoreError, CoreResult};
use crate::positions::CommitWindows;
use crate::spill_read::{CoveredBatch, SegmentPart};

/// Rows of one consolidation unit: a day and a range of its key buckets.
#[derive(Debug, Clone)]
pub struct Unit {
    pub day: Option<EpochDay>,
    pub range: BucketRange,
    /// Estimated Arrow bytes of its staged rows.
    pub bytes: u64,
}

/// The units of a segment part and the bucket index of each of its files.
pub struct Plan {
    pub units: Vec<Unit>,
    /// Per file of the part (same order); `None` when the file is not bucketed on the key.
    indexes: Vec<Option<BucketIndex>>,
    keys: Vec<String>,
}

impl Plan {
    /// Cuts each day into units of at most `budget` bytes (a single bucket may exceed it: its
    /// rows cannot be split).
    pub fn new(part: &SegmentPart, keys: &[String], budget: u64) -> CoreResult<Self> {
        let indexes = part
            .files
            .iter()
            .map(|f| read_index(&f.path, keys))
            .collect::<CoreResult<Vec<_>>>()?;
        let mut units = Vec::new();
        for day in part.days() {
            units.extend(day_units(part, &indexes, day, budget));
        }
        Ok(Self {
            units,
            indexes,
            keys: keys.to_vec(),
        })
    }

    /// The staged rows of `unit`, oldest first, each with the coverage of its part.
    pub fn read(&self, part: &SegmentPart, unit: &Unit) -> CoreResult<Vec<CoveredBatch>> {
        let mut out = Vec::new();
        for (file, index) in part.files.iter().zip(&self.indexes) {
            if file.day != unit.day {
                continue;
            }
            let opened = File::open(&file.path).map_err(|e| {
                CoreError::Staging(format!("cannot open {}: {e}", file.path.display()))
            })?;
            let mut reader = FileReader::try_new(BufReader::new(opened), None)?;
            let (batches, exact) = match index {
                Some(index) => {
                    let (buckets, exact) = unit.range.at_level(index.level);
                    (index.batches(&buckets), exact)
                }
                None => (0..reader.num_batches(), unit.range.is_all()),
            };
            if batches.is_empty() {
                continue;
            }
            reader.set_index(batches.start)?;
            for _ in batches {
                let Some(batch) = reader.next() else { break };
                let batch = part.conformed(batch?)?;
                let kept = if exact {
                    Some(batch)
                } else {
                    unit.range.filter(&batch, &self.keys)?
                };
                out.extend(kept.map(|b| (file.coverage.clone(), b)));
            }
        }
        for batch in part.memory.get(&unit.day).into_iter().flatten() {
            let batch = part.conformed(batch.clone())?;
            if let Some(kept) = unit.range.filter(&batch, &self.keys)? {
                out.push((part.memory_coverage.clone(), kept));
            }
        }
        Ok(out)
    }
}

fn read_index(path: &std::path::Path, keys: &[String]) -> CoreResult<Option<BucketIndex>> {
    let opened = File::open(path)
        .map_err(|e| CoreError::Staging(format!("cannot open {}: {e}", path.display())))?;
    let reader = FileReader::try_new(BufReader::new(opened), None)?;
    Ok(reader
        .custom_metadata()
        .get(INDEX_KEY)
        .and_then(|v| BucketIndex::from_footer(v, keys)))
}

/// A day's units: its finest bucket grid, the estimated bytes per bucket, cut greedily.
fn day_units(
    part: &SegmentPart,
    indexes: &[Option<BucketIndex>],
    day: Option<EpochDay>,
    budget: u64,
) -> Vec<Unit> {
    let files: Vec<_> = part
        .files
        .iter()
        .zip(indexes)
        .filter(|(f, _)| f.day == day)
        .collect();
    let level = files
        .iter()
        .filter_map(|(_, i)| i.as_ref().map(|i| i.level))
        .max()
        .unwrap_or(0);
    let grid = 1usize << level;
    let mut bytes = vec![0f64; grid];
    let mut spread_evenly = 0f64;
    for (file, index) in &files {
        let per_row = file.bytes as f64 / (file.rows.max(1)) as f64;
        match index {
            Some(index) => {
                let width = 1usize << (level - index.level);
                for (b, &rows) in index.rows.iter().enumerate() {
                    let share = rows as f64 * per_row / width as f64;
                    for fine in &mut bytes[b * width..(b + 1) * width] {
                        *fine += share;
                    }
                }
            }
            None => spread_evenly += file.rows as f64 * per_row,
        }
    }
    let memory: usize = part
        .memory
        .get(&day)
        .into_iter()
        .flatten()
        .map(RecordBatch::get_array_memory_size)
        .sum();
    spread_evenly += memory as f64;
    let evenly = spread_evenly / grid as f64;
    let mut units = Vec::new();
    let (mut start, mut acc) = (0u32, 0f64);
    for (b, fine) in bytes.iter().enumerate() {
        let fine = fine + evenly;
        if acc > 0.0 && acc + fine > budget as f64 {
            units.push(unit(day, level, start..b as u32, acc));
            start = b as u32;
            acc = 0.0;
        }
        acc += fine;
    }
    units.push(unit(day, level, start..grid as u32, acc));
    units
}

fn unit(day: Option<EpochDay>, level: u8, buckets: std::ops::Range<u32>, bytes: f64) -> Unit {
    Unit {
        day,
        range: BucketRange { level, buckets },
        bytes: bytes as u64,
    }
}

/// Counts of a consolidation as it runs (read by the commit and by the progress metrics).
#[derive(Debug, Default)]
pub struct Counts {
    /// Rows the windows kept (not yet in the table), before consolidation.
    pub fresh: AtomicUsize,
    /// Rows out of consolidation.
    pub written: AtomicUsize,
    pub units_done: AtomicUsize,
}

impl Counts {
    pub fn reset(&self) {
        self.fresh.store(0, Ordering::Relaxed);
        self.written.store(0, Ordering::Relaxed);
        self.units_done.store(0, Ordering::Relaxed);
    }
}

/// Consolidates one unit: its rows the windows keep, one row per key.
pub fn consolidate_unit(
    part: &SegmentPart,
    plan: &Plan,
    unit: &Unit,
    windows: &CommitWindows,
    spec: &DedupSpec,
    counts: &Counts,
) -> CoreResult<Option<RecordBatch>> {
    let mut fresh = Vec::new();
    for (coverage, batch) in plan.read(part, unit)? {
        fresh.extend(windows.select(&coverage, &batch)?);
    }
    let Some(first) = fresh.first() else {
        return Ok(None);
    };
    let rows = match fresh.as_slice() {
        [only] => only.clone(),
        _ => concat_batches(&first.schema(), &fresh)?,
    };
    drop(fresh);
    counts.fresh.fetch_add(rows.num_rows(), Ordering::Relaxed);
    let started = Instant::now();
    let consolidated = crate::threads::install(|| dedup(&rows, spec))??;
    crate::metrics::DEDUP.record(started.elapsed(), rows.num_rows());
    counts
        .written
        .fetch_add(rows.num_rows() - consolidated.removed, Ordering::Relaxed);
    Ok(Some(consolidated.batch))
}

/// Everything the stream of consolidated units needs, shared with its blocking tasks.
pub struct Consolidation {
    pub part: Arc<SegmentPart>,
    pub plan: Arc<Plan>,
    pub windows: Arc<CommitWindows>,
    pub spec: DedupSpec,
    pub counts: Arc<Counts>,
    /// The table's columns (the staged schema without the position columns).
    pub schema: SchemaRef,
}

impl std::fmt::Debug for Consolidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consolidation")
            .field("units", &self.plan.units.len())
            .finish()
    }
}

impl PartitionStream for Consolidation {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The units one after another, each consolidated on the worker pool (off the async
    /// runtime's threads); the next is started only when the writer has taken the last.
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.counts.reset();
        let shared = Arc::new(Shared {
            part: self.part.clone(),
            plan: self.plan.clone(),
            windows: self.windows.clone(),
            spec: self.spec.clone(),
            counts: self.counts.clone(),
        });
        let total = shared.plan.units.len();
        let start = (0usize, VecDeque::<RecordBatch>::new());
        let stream = futures::stream::unfold(start, move |(mut next, mut pending)| {
            let shared = shared.clone();
            async move {
                loop {
                    if let Some(batch) = pending.pop_front() {
                        return Some((Ok(batch), (next, pending)));
                    }
                    if next >= total {
                        crate::metrics::FLUSH.set_phase(crate::metrics::FlushPhase::Commit);
                        return None;
                    }
                    let task = shared.clone();
                    let index = next;
                    next += 1;
                    let failed = |e: CoreError| {
                        Some((
                            Err(DataFusionError::External(Box::new(e))),
                            (total, VecDeque::new()),
                        ))
                    };
                    match tokio::task::spawn_blocking(move || task.run(index)).await {
                        Ok(Ok(Some(batch))) => pending.extend(slices(&batch)),
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => return failed(e),
                        Err(e) => return failed(CoreError::from(e)),
                    }
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Rows per batch handed to the writer: the MERGE's source and the writer keep a few batches
/// in flight, which must stay small beside a unit.
const ROWS_PER_SLICE: usize = 8192;

fn slices(batch: &RecordBatch) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(ROWS_PER_SLICE)
        .map(|offset| batch.slice(offset, ROWS_PER_SLICE.min(batch.num_rows() - offset)))
        .collect()
}

struct Shared {
    part: Arc<SegmentPart>,
    plan: Arc<Plan>,
    windows: Arc<CommitWindows>,
    spec: DedupSpec,
    counts: Arc<Counts>,
}

impl Shared {
    fn run(&self, index: usize) -> CoreResult<Option<RecordBatch>> {
        let unit = &self.plan.units[index];
        let started = Instant::now();
        let out = consolidate_unit(
            &self.part,
            &self.plan,
            unit,
            &self.windows,
            &self.spec,
            &self.counts,
        )?;
        crate::memory::release_free_memory();
        let done = self.counts.units_done.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::FLUSH.advance(self.counts.fresh.load(Ordering::Relaxed));
        if self.plan.units.len() > 1 {
            tracing::info!(
                unit = done,
                units = self.plan.units.len(),
                day = unit.day.map(crate::day::format_day).unwrap_or_default(),
                rows_in = self.counts.fresh.load(Ordering::Relaxed) as u64,
                rows_total = self.part.total_rows() as u64,
                rows_out = self.counts.written.load(Ordering::Relaxed) as u64,
                unit_bytes = unit.bytes,
                ms = started.elapsed().as_millis() as u64,
                "flush progress: consolidated a bucket range"
            );
        }
        Ok(out)
    }
}
