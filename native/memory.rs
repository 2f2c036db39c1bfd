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

/// Returns glibc's free heap pages to the system (elsewhere nothing to do). About a
/// millisecond; called once per spill, flush unit and commit, never per batch.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
