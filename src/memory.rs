//! How the process's heap gives memory back to the system.
//!
//! Where it sits: `return_free_memory` is called by a shard's sweeper
//! after a burst of buffers went back to the allocator, or after a crowd of
//! connections left (see `shard/buffers.rs` and `shard/mod.rs`).
//!
//! glibc keeps freed heap memory for reuse, and after the first free of a
//! large block it raises its mmap threshold so that later bulk relay
//! buffers (256 KiB) come from the heap too. After a load peak (a thousand
//! clients that stopped reading, each holding relay buffers and request
//! state) the memory is free inside the process but RSS stays at the peak.
//! `malloc_trim` hands whole free pages inside the heap back (madvise); it
//! runs only after such a burst, at most once per sweep, so steady traffic
//! keeps its warm heap (a fixed mmap threshold was tried instead for bulk
//! buffers: every new one then costs an mmap and page faults, +16 % kernel
//! CPU on 1 MiB responses by A/B, and the trim alone returns the memory).

/// Hands free heap pages back to the system.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
