//! Giving freed memory back to the system. Arrow buffers are allocated and freed on many
//! threads (the worker pool, the async runtime's blocking threads); glibc's allocator keeps what
//! each thread's arena freed for reuse by that arena, so after a spill or a flush unit the
//! process's RSS stayed near its high-water mark though the memory was no longer held.
//! `malloc_trim` returns the free pages of every arena; it costs about a millisecond, and is
//! called once per spill and per flush unit, never per batch.

/// Returns free heap pages to the system (glibc only; elsewhere nothing to do).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own arenas; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
