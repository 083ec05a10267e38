//! shardgate: a thread-per-core HTTP/1.1 reverse proxy, API gateway and
//! layer-7 load balancer on monoio (io_uring).
//!
//! One **shard** per pinned core: its own runtime, `SO_REUSEPORT` listener,
//! upstream pools and counters. A connection lives and dies on the shard that
//! accepted it.
//!
//! ```text
//! accept -> read head (httparse over the connection buffer, no copy)
//!   -> route        (host, normalised path, method, headers)      400 404
//!   -> limits       (body size by Content-Length)                 413
//!   -> pick endpoint (round robin)                                 503
//!   -> forward      (pool checkout or connect, stream body up,
//!                    read head, retry once on a stale pooled conn) 502/504
//!   -> stream body down -> keep-alive decision
//!   -> record (per-shard counters) — always, also on error
//! ```
//! The stage order is written once, in [`pipeline`].

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod echo;
pub mod error;
pub mod http1;
pub mod io;
pub mod listener;
pub mod memory;
pub mod pipeline;
pub mod shard;
pub mod tls;
pub mod upstream;
