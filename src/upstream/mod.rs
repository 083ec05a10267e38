//! The upstream side of the proxy action, one file per phase (the order is
//! stated in `pipeline/mod.rs`): prepare and the exchange (`forward.rs`),
//! select endpoint (`balance.rs`), send (`send.rs`: `pool.rs` or
//! `connect.rs`), receive head (`receive.rs`), relay (`relay.rs`), and when
//! a failed try goes again (`retry.rs`). `stream.rs` is a plain or TLS
//! upstream connection.

pub mod balance;
pub mod connect;
pub mod forward;
pub mod pool;
pub mod receive;
pub mod relay;
pub mod retry;
pub mod send;
pub mod stream;

/// Index of an endpoint across all clusters of a config (cluster order,
/// then endpoint order): pools and health state are vectors indexed by it.
pub type EndpointId = usize;

/// `base[c] + i` is the id of endpoint `i` of cluster `c`.
pub fn endpoint_bases(config: &crate::config::Config) -> Vec<usize> {
    let mut next = 0;
    config
        .clusters
        .iter()
        .map(|c| {
            let base = next;
            next += c.endpoints.len();
            base
        })
        .collect()
}
