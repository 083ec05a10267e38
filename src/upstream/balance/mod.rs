//! The select-endpoint phase: which endpoint of a cluster the next try
//! goes to.
//!
//! One selection interface ([`Pick`]) with one implementation per
//! algorithm, each in its own file (`round_robin.rs` so far); a cluster's
//! [`Balancer`] dispatches to its algorithm without a virtual call. Every
//! algorithm sees the same question: among a cluster's endpoints, which
//! are eligible for this try — not tried already by this request, and not
//! marked down, failing active health checks or ejected on this shard
//! (`upstream/endpoint_state.rs`, `upstream/health/`; with too few
//! healthy endpoints, the cluster's panic threshold lets every endpoint
//! be chosen).
//!
//! When no endpoint is eligible because every one is marked down, the
//! request gets 503 at once, naming the reason, rather than waiting on a
//! connect that is known to fail. At most once per `RECOVERY_INTERVAL`
//! the marks of such a cluster are lifted, so that the next requests try
//! its endpoints again (nginx's quick recovery: after "no live
//! upstreams" every peer is live again — here not more than once a
//! second, so a dead cluster costs one failed connect per endpoint per
//! second, not one per request).

mod round_robin;

use std::cell::Cell;
use std::time::{Duration, Instant};

pub use round_robin::RoundRobin;

use super::endpoint_state::{EndpointStates, PASSIVE_FAIL_TIMEOUT};
use super::forward::ExchangeError;
use super::health::outlier::Observed;
use super::EndpointId;
use crate::error::{Error, ErrorKind};
use crate::shard::generation::ShardGeneration;

/// One endpoint of one cluster, as the selection phase chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub cluster: usize,
    /// Position in the cluster's endpoint list.
    pub index: usize,
    /// The stable id its pool and state are kept under.
    pub id: EndpointId,
}

/// What every balancing algorithm answers: the index of an endpoint among
/// `len` (> 0) for which `eligible` holds, or `None` when there is none.
pub trait Pick {
    fn pick(&self, len: usize, eligible: impl Fn(usize) -> bool) -> Option<usize>;
}

/// How often a cluster whose endpoints are all marked down has its marks
/// lifted.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// A cluster's algorithm on one shard (its state: positions, weights).
#[derive(Debug)]
pub enum Algorithm {
    RoundRobin(RoundRobin),
}

impl Algorithm {
    #[inline]
    fn pick(&self, len: usize, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Algorithm::RoundRobin(rr) => rr.pick(len, eligible),
        }
    }
}

/// A cluster's selection state on one shard.
#[derive(Debug)]
pub struct Balancer {
    pub algorithm: Algorithm,
    /// When every endpoint was last found marked down and the marks lifted.
    recovered_at: Cell<Option<Instant>>,
}

impl Balancer {
    pub fn new(algorithm: Algorithm) -> Balancer {
        Balancer { algorithm, recovered_at: Cell::new(None) }
    }
}

/// The endpoints a request has tried (by index in the cluster): the next
/// try goes elsewhere when there is anywhere else. Clusters larger than
/// 128 endpoints remember the first 128.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tried(u128);

impl Tried {
    pub fn add(&mut self, index: usize) {
        if index < 128 {
            self.0 |= 1 << index;
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        index < 128 && self.0 & (1 << index) != 0
    }
}

/// A try could not connect to `endpoint`: one that refused or did not
/// accept in time is marked down on this shard. A cluster's only
/// endpoint is never marked (as nginx: there is nowhere else to go, and
/// each request finds out for itself whether it is back). A cluster with
/// outlier detection counts the failure there instead (`health/outlier.rs`).
pub fn connect_failed(generation: &ShardGeneration, states: &EndpointStates, endpoint: Endpoint, error: &Error) {
    let ids = &generation.shared.endpoints[endpoint.cluster];
    let cluster = &generation.config().clusters[endpoint.cluster];
    if cluster.outlier.is_some() {
        if let Some(observed) = Observed::from_try(None, Some(error.kind)) {
            states.observe(cluster, ids, endpoint.index, observed);
        }
        return;
    }
    let alone = ids.len() == 1;
    if !alone && matches!(error.kind, ErrorKind::UpstreamConnectFailed | ErrorKind::UpstreamConnectTimeout) {
        states.connect_failed(endpoint.id);
    }
}

/// A try to `endpoint` got a response head with `status`, or ended as
/// `result` says: outlier detection counts it (one branch for clusters
/// without `[clusters.outlier]`). A stale pooled connection (`Retry`)
/// says nothing about the endpoint.
#[inline]
pub fn exchange_done<T>(
    generation: &ShardGeneration,
    states: &EndpointStates,
    endpoint: Endpoint,
    status: Option<u16>,
    result: &Result<T, ExchangeError>,
) {
    let cluster = &generation.config().clusters[endpoint.cluster];
    if cluster.outlier.is_none() {
        return;
    }
    let error = match result {
        Ok(_) => None,
        Err(ExchangeError::Failed(f)) => Some(f.error.kind),
        Err(ExchangeError::Retry(_)) => return,
    };
    if let Some(observed) = Observed::from_try(status, error) {
        states.observe(cluster, &generation.shared.endpoints[endpoint.cluster], endpoint.index, observed);
    }
}

/// The select-endpoint phase: an eligible endpoint of `cluster` (in the
/// request's generation) for the next try, or the reason there is none.
pub fn select(
    generation: &ShardGeneration,
    states: &EndpointStates,
    cluster: usize,
    tried: &Tried,
) -> Result<Endpoint, Error> {
    let ids = &generation.shared.endpoints[cluster];
    let balancer = &generation.balancers[cluster];
    let config = &generation.config().clusters[cluster];
    let eligibility = states.eligibility(config, &generation.shared.health, ids);
    let usable = |i: usize| !tried.contains(i) && eligibility.usable(ids[i]);
    if let Some(index) = balancer.algorithm.pick(ids.len(), usable) {
        return Ok(Endpoint { cluster, index, id: ids[index] });
    }
    if tried.0 != 0 {
        return Err(Error::new(ErrorKind::NoHealthyEndpoint, "every endpoint of the cluster failed for this request"));
    }
    if let Some(reason) = eligibility.unhealthy_reason(&config.name, ids) {
        return Err(Error::new(ErrorKind::NoHealthyEndpoint, reason));
    }
    // Every endpoint is marked down on this shard.
    let now = Instant::now();
    if balancer.recovered_at.get().is_none_or(|at| now.duration_since(at) >= RECOVERY_INTERVAL) {
        balancer.recovered_at.set(Some(now));
        for &id in ids {
            states.clear(id);
        }
    }
    let name = &config.name;
    let window = PASSIVE_FAIL_TIMEOUT.as_secs();
    Err(Error::new(
        ErrorKind::NoHealthyEndpoint,
        format!("every endpoint of cluster {name:?} failed to connect within the last {window} s"),
    ))
}
