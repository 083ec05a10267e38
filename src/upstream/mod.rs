//! The upstream side: which endpoint (`balance.rs`), over which connection
//! (`pool.rs`), and the exchange itself (`forward.rs`).

pub mod balance;
pub mod forward;
pub mod pool;
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
