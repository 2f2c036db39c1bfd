//! Memory the process gives back. Arrow buffers are allocated and freed on many threads (the
//! worker pool, the async runtime's blocking threads, DataFusion's tasks). With glibc's
//! allocator each thread's arena kept what it freed: a 10 M-row MERGE flush under a 64 MiB cap
//! grew its anonymous memory to ~480 MiB and stayed there, though one unit of rows was held at
//! a time. The native core therefore allocates from jemalloc, with few arenas and freed pages
//! returned within 100 ms by a background thread (measured on the same flush: ~230 MiB, flat,
//! at the same speed; `MALLOC_ARENA_MAX=2` for glibc gave the same memory but cost a third of
//! the consumption rate). What glibc still holds (librdkafka's and Node's allocations) is
//! trimmed after each spill, flush unit and commit.

use std::ffi::c_char;

use napi_derive::napi;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer jemalloc reads at start-up.
#[repr(transparent)]
pub struct MallocConf(*const c_char);

// SAFETY: it points to a static, immutable C string.
unsafe impl Sync for MallocConf {}

/// jemalloc's options (its `malloc_conf` symbol, prefixed as this build prefixes jemalloc's
/// symbols; `_RJEM_MALLOC_CONF` in the environment still overrides them).
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0,narenas:2".as_ptr());

/// Returns free memory to the system: jemalloc's freed pages at once (its decay would return
/// them over the next 100 ms, while the next unit or spill already allocates), and glibc's free
/// heap pages (elsewhere nothing to do). About a millisecond; called once per spill, flush unit
/// and commit, never per batch.
pub fn release_free_memory() {
    purge_jemalloc();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `arena.<all>.purge`: every arena's dirty pages back to the system.
fn purge_jemalloc() {
    // MALLCTL_ARENAS_ALL (4096) names every arena; purge takes and returns nothing.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated name, and no value pointers (purge reads and writes none).
    // Best effort: a failure leaves the pages to jemalloc's own decay.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

/// The native core's heap as jemalloc accounts it (its own arenas only: not Node's heap, not
/// librdkafka, which allocate from glibc).
#[napi(object)]
pub struct NativeMemory {
    /// Bytes in live allocations (staged Arrow, the unit being flushed, the writer's buffers).
    pub allocated_bytes: f64,
    /// Bytes of physical memory jemalloc holds for them, its metadata and its freed pages not
    /// yet returned (what counts in the process's RSS).
    pub resident_bytes: f64,
}

/// A fresh reading of jemalloc's statistics (it caches them until its epoch is advanced).
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn native_memory() -> NativeMemory {
    // Statistics are best effort: a failed read reports zero rather than failing a scrape.
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let read = |value: tikv_jemalloc_ctl::Result<usize>| value.unwrap_or(0) as f64;
    NativeMemory {
        allocated_bytes: read(tikv_jemalloc_ctl::stats::allocated::read()),
        resident_bytes: read(tikv_jemalloc_ctl::stats::resident::read()),
    }
}
