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
#[napi]
pub fn native_step_totals() -> NativeStepTotals {
    NativeStepTotals {
        decode: DECODE.snapshot(),
        dedup: DEDUP.snapshot(),
        write: WRITE.snapshot(),
    }
}
