//! End-to-end tests: the real `shardgate` binary, real sockets on
//! 127.0.0.1, real upstream servers started by each test.
//!
//! Every test starts its own proxy and its own upstreams on port 0, so the
//! tests run in parallel. Assertions are on bytes: what the client received
//! and what the upstream received.
//!
//! The suite is meant to run once per I/O driver:
//! `SHARDGATE_TEST_IO_DRIVER=uring cargo test --test e2e` and again with
//! `epoll`.

mod harness;

mod access_log;
mod admin;
mod admin_api;
mod balancing;
mod balancing_algorithms;
mod bodies;
mod cli;
mod dashboard;
mod differential;
mod faults;
mod framing;
mod fuzz_findings;
mod headers;
mod health;
mod identity;
mod install;
mod keepalive;
mod limits;
mod memory;
mod metrics;
mod paths;
mod policies;
mod pool_liveness;
mod record;
mod relay;
mod reload;
mod routing;
mod secrets;
mod service;
mod shards;
mod shutdown;
mod tls;
mod tracing;
mod upgrade;
mod upstream_errors;
