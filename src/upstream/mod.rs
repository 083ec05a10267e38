//! The upstream side of the proxy action, one file per phase (the order is
//! stated in `pipeline/mod.rs`): prepare and the exchange (`forward.rs`),
//! select endpoint (`balance/`, over the shard's view of its endpoints:
//! `endpoint_state.rs`, `in_flight.rs`, fed by `health/`: active checks,
//! outlier detection), send (`send.rs`: `pool.rs` or
//! `connect.rs`; `pool_gauge.rs` shows the pool's idle counts to the
//! admin), receive head (`receive.rs`), relay (`relay.rs`), and when
//! a failed try goes again (`retry.rs`). `stream.rs` is a plain or TLS
//! upstream connection.

pub mod balance;
pub mod connect;
pub mod endpoint_state;
pub mod forward;
pub mod health;
pub mod in_flight;
pub mod pool;
pub mod pool_gauge;
pub mod receive;
pub mod relay;
pub mod retry;
pub mod send;
pub mod stream;

/// An endpoint's stable slot (per cluster name and address as written,
/// across reloads): pools and health state are vectors indexed by it.
pub use crate::shard::identity::EndpointId;
