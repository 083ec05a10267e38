//! shardgate: a thread-per-core HTTP/1.1 reverse proxy, API gateway and
//! layer-7 load balancer on monoio (io_uring).
//!
//! One **shard** per pinned core: its own runtime, `SO_REUSEPORT` listener,
//! upstream pools and counters. A connection lives and dies on the shard that
//! accepted it.
//!
//! ```text
//! accept -> read head (httparse over the connection buffer, no copy)
//!   -> effective client address (trusted_proxies), request id
//!   -> route        (host, normalised path, method, headers)      400 404
//!   -> limits       (body size by Content-Length)                 413
//!   -> prepare      (upstream head + body bytes in hand)          400 408
//!   -> select       (endpoint of the cluster: round robin)
//!   -> send         (liveness-checked pool checkout or connect)   502 504
//!   -> exchange     receive head -> response stages -> relay,
//!                   the rest of a streamed body going up alongside 502 504
//!   -> keep-alive decision; a failed try may go round select -> send again
//!   -> record       (observe/record.rs: the outcome -> counters, histograms,
//!                   access log, traces) — always, also on error
//! ```
//! The stage order is written once, in [`pipeline`].

pub mod admin;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod echo;
pub mod error;
pub mod fuzzing;
pub mod http1;
pub mod io;
pub mod listener;
pub mod manual;
pub mod memory;
pub mod notify;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod shard;
pub mod tls;
pub mod upgrade;
pub mod upstream;
