//! Counters of the native steps (decode, dedup, write), read by JavaScript when Prometheus
//! scrapes (pull-style: nothing crosses the boundary per batch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use napi_derive::napi;

/// Totals of one step since the process started.
pub struct StepCounter {
    nanos: AtomicU64,
    calls: AtomicU64,
    rows: AtomicU64,
}

impl StepCounter {
    const fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        }
    }

    pub fn record(&self, elapsed: Duration, rows: usize) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> StepTotals {
        StepTotals {
            seconds: self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
            calls: self.calls.load(Ordering::Relaxed) as f64,
            rows: self.rows.load(Ordering::Relaxed) as f64,
        }
    }
}

/// JSON → Arrow decoding of consumed batches (rows: messages decoded).
pub static DECODE: StepCounter = StepCounter::new();
/// Consolidation at flush (rows: rows in).
pub static DEDUP: StepCounter = StepCounter::new();
/// Writing Parquet and committing, INSERT or MERGE (rows: rows written).
pub static WRITE: StepCounter = StepCounter::new();

/// Where the flush in progress is (process-wide; a pipeline flushes one segment at a time).
pub struct FlushProgress {
    rows_total: AtomicU64,
    rows_done: AtomicU64,
    phase: AtomicU64,
}

/// The phases of a flush, as `kafka_delta_flush_phase` reports them.
#[napi(string_enum)]
#[derive(Debug, PartialEq, Eq)]
pub enum FlushPhase {
    #[napi(value = "idle")]
    Idle,
    /// Reading staged rows and consolidating them, unit by unit, while they are written.
    #[napi(value = "consolidate")]
    Consolidate,
    /// Writing rows that need no consolidation.
    #[napi(value = "write")]
    Write,
    /// Committing the written files and positions.
    #[napi(value = "commit")]
    Commit,
}

impl FlushProgress {
    const fn new() -> Self {
        Self {
            rows_total: AtomicU64::new(0),
            rows_done: AtomicU64::new(0),
            phase: AtomicU64::new(0),
        }
    }

    pub fn start(&self, phase: FlushPhase, rows_total: usize) {
        self.rows_total.store(rows_total as u64, Ordering::Relaxed);
        self.rows_done.store(0, Ordering::Relaxed);
        self.set_phase(phase);
    }

    pub fn advance(&self, rows_done: usize) {
        self.rows_done.store(rows_done as u64, Ordering::Relaxed);
    }

    pub fn set_phase(&self, phase: FlushPhase) {
        let code = match phase {
            FlushPhase::Idle => 0,
            FlushPhase::Consolidate => 1,
            FlushPhase::Write => 2,
            FlushPhase::Commit => 3,
        };
        self.phase.store(code, Ordering::Relaxed);
    }

    fn snapshot(&self) -> FlushProgressTotals {
        FlushProgressTotals {
            rows_total: self.rows_total.load(Ordering::Relaxed) as f64,
            rows_done: self.rows_done.load(Ordering::Relaxed) as f64,
            phase: match self.phase.load(Ordering::Relaxed) {
                1 => FlushPhase::Consolidate,
                2 => FlushPhase::Write,
                3 => FlushPhase::Commit,
                _ => FlushPhase::Idle,
            },
        }
    }
}

pub static FLUSH: FlushProgress = FlushProgress::new();

/// The flush in progress.
#[napi(object)]
pub struct FlushProgressTotals {
    /// Staged rows of the part being committed.
    pub rows_total: f64,
    /// Of those, rows read and consolidated or written so far.
    pub rows_done: f64,
    pub phase: FlushPhase,
}

/// Where the native core's flush in progress is (process-wide).
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn native_flush_progress() -> FlushProgressTotals {
    FLUSH.snapshot()
}

/// Totals of one native step.
#[napi(object)]
pub struct StepTotals {
    /// Wall-clock seconds spent in the step.
    pub seconds: f64,
    pub calls: f64,
    pub rows: f64,
}

/// Totals of the native steps since the process started (all pipelines of the process).
#[napi(object)]
pub struct NativeStepTotals {
    pub decode: StepTotals,
    pub dedup: StepTotals,
    pub write: StepTotals,
}

/// A snapshot of the native step counters.
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn native_step_totals() -> NativeStepTotals {
    NativeStepTotals {
        decode: DECODE.snapshot(),
        dedup: DEDUP.snapshot(),
        write: WRITE.snapshot(),
    }
}
