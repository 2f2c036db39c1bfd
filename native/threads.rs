//! The rayon pool that decoding and dedup run on. Its size comes from `concurrency.num_threads`
//! and is fixed at first use, so it is configured before the first batch.

use std::sync::{Mutex, OnceLock};

use napi::Env;
use napi_derive::napi;

use crate::js_error::OrThrow;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{CoreError, CoreResult};

static POOL: OnceLock<Result<ThreadPool, String>> = OnceLock::new();
static REQUESTED: Mutex<usize> = Mutex::new(0);

fn pool() -> CoreResult<&'static ThreadPool> {
    let pool = POOL.get_or_init(|| {
        let requested = REQUESTED.lock().map(|n| *n).unwrap_or(0);
        let threads = if requested == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            requested
        };
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kdr-worker-{i}"))
            .build()
            .map_err(|err| format!("cannot start {threads} worker thread(s): {err}"))
    });
    pool.as_ref().map_err(|e| CoreError::Internal(e.clone()))
}

/// Runs `work` on the worker pool.
pub fn install<T: Send>(work: impl FnOnce() -> T + Send) -> CoreResult<T> {
    Ok(pool()?.install(work))
}

/// Sets the number of worker threads (0 = one per CPU). Only effective before the first batch;
/// returns the number of threads the pool has or will have.
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn configure_threads(env: &Env, threads: u32) -> napi::Result<u32> {
    if let Some(Ok(existing)) = POOL.get() {
        return Ok(existing.current_num_threads() as u32);
    }
    let mut requested = REQUESTED
        .lock()
        .map_err(|_| CoreError::Internal("thread configuration lock poisoned".into()))
        .or_throw(env)?;
    *requested = threads as usize;
    Ok(if threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from) as u32
    } else {
        threads
    })
}
