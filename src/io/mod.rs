//! I/O plumbing shared by both sides of the proxy.
//!
//! - `split.rs`: a stream's read and write halves, borrowed, so one task can
//!   read from a peer while it writes to it (the duplex relay).

pub mod split;
