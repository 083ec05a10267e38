//! How the process's heap gives memory back to the system.
//!
//! Where it sits: set once at startup (`cli::main`); `return_free_memory`
//! is called by a shard's sweeper after a burst of buffers went back to
//! the allocator (see `http1/buffers.rs`).
//!
//! glibc keeps freed heap memory for reuse. After a load peak (a thousand
//! clients that stopped reading, each holding relay buffers) the memory is
//! free inside the process but RSS stays at the peak. Two settings close
//! that gap: a fixed mmap threshold, so every bulk relay buffer (256 KiB)
//! is its own mapping and is unmapped when freed (glibc's default raises
//! the threshold after the first such free, after which those buffers come
//! from the heap and stay); and `malloc_trim`, which hands whole free pages
//! inside the heap back (madvise), called only after a megabyte or more of
//! buffers was freed, at most once per sweep.

/// Allocations at or above this size get their own mapping.
pub const MMAP_THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes the allocator's mmap threshold (call before threads start).
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt with a valid parameter and value; called once at
    // startup before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Hands free heap pages back to the system.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
