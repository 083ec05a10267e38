//! The admin listener: a small blocking HTTP server on threads of its own,
//! off the shards and their listeners, that reads the shards' counters on
//! scrape.
//!
//! `GET /stats` -> `{"shards":[{"shard":0,"accepted":N,"requests":N,"active":N},…]}`.
//! `GET /config` -> the effective config as `shardgate check` prints it,
//! secrets shown as their source only.
//! `POST /reload` -> reloads the config (see `server.rs`).
//! `GET /ready`, `POST /drain` -> readiness and a graceful drain (`lifecycle.rs`).
//! `GET /metrics` -> Prometheus text (`observe/metrics/`): the shards'
//! snapshots, merged on the admin thread.
//!
//! - [`origin`]: web pages kept out (cross-site requests, DNS rebinding).
//! - [`auth`]: the bearer token (`admin.token`) every request must carry when set.
//! - [`server`]: accept loop, one thread per admin connection up to
//!   [`MAX_ADMIN_CONNECTIONS`], a deadline for the whole request head.
//! - [`stats`]: the `/stats` document.
//! - [`counters`]: the per-shard counters the shards write.
//! - [`routes_doc`] (`GET /routes`), [`clusters`] (`GET /clusters`),
//!   [`shards`] (`GET /shards`): the running generation's routes and
//!   clusters, and each shard's load; `GET /healthz` is liveness.
//! - [`dashboard`]: the live dashboard page (`GET /dashboard`).

pub mod auth;
pub mod clusters;
pub mod counters;
pub mod dashboard;
mod json;
pub mod lifecycle;
pub mod origin;
pub mod routes_doc;
pub mod server;
pub mod shards;
pub mod stats;

pub use counters::ShardCounters;
pub use server::{
    spawn, AdminState, ReloadHook, ReloadOutcome, ADMIN_MAX_REQUEST_BYTES, ADMIN_REQUEST_DEADLINE,
    ADMIN_RESPONSE_DEADLINE, MAX_ADMIN_CONNECTIONS,
};
