//! The select-endpoint phase: which endpoint of a cluster the next try
//! goes to.
//!
//! One selection interface ([`Pick`]) with one implementation per
//! algorithm (`lb = …`), each in its own file: `round_robin.rs` (smooth
//! weighted, as nginx), `least_request.rs` (power of two choices),
//! `random.rs`, `ring_hash.rs` and `maglev.rs` (on the request key of
//! `key.rs`, hashed by `hash.rs`); `slow_start.rs` ramps the weights of
//! new and recovered endpoints. A cluster's [`Balancer`] dispatches to its
//! algorithm without a virtual call. Every algorithm sees the same
//! question ([`Candidates`]): among a cluster's endpoints, which are
//! eligible for this try — not tried already by this request, and not
//! marked down, failing active health checks or ejected on this shard
//! (`upstream/endpoint_state.rs`, `upstream/health/`; with too few
//! healthy endpoints, the cluster's panic threshold lets every endpoint
//! be chosen) — with their weights, in-flight counts and the request's key.
//!
//! When no endpoint is eligible because every one is marked down, the
//! request gets 503 at once, naming the reason, rather than waiting on a
//! connect that is known to fail. At most once per `RECOVERY_INTERVAL`
//! the marks of such a cluster are lifted, so that the next requests try
//! its endpoints again (nginx's quick recovery: after "no live
//! upstreams" every peer is live again — here not more than once a
//! second, so a dead cluster costs one failed connect per endpoint per
//! second, not one per request).

mod fixed;
mod hash;
mod key;
mod least_request;
mod maglev;
mod random;
mod ring_hash;
mod round_robin;
pub mod slow_start;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use fixed::Fixed;
pub use hash::hash64;
pub use key::request_key;
pub use least_request::LeastRequest;
pub use maglev::{Maglev, MaglevTable};
pub use random::{Random, Rng};
pub use ring_hash::{Ring, RingHash};
pub use round_robin::RoundRobin;

use super::endpoint_state::{Eligibility, EndpointStates, PASSIVE_FAIL_TIMEOUT};
use super::forward::ExchangeError;
use super::health::outlier::Observed;
use super::EndpointId;
use crate::config::{Cluster, LbPolicy};
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

/// Effective weights are configured weights × this, so that a slow-start
/// ramp at 10 % of weight 1 is still a whole number (10).
pub const WEIGHT_SCALE: u64 = 100;

/// What an algorithm sees of a cluster's endpoints for one pick, by index
/// `0..len()` (`len()` > 0). Implemented over the shard's state by
/// `select` and over plain vectors by [`Fixed`] (tests, benchmark);
/// generic, so each algorithm is compiled for each and nothing is a
/// virtual call.
pub trait Candidates {
    fn len(&self) -> usize;
    /// Never true where an algorithm is asked (`select` answers an empty
    /// cluster itself).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Not tried by this request, not marked down on this shard.
    fn eligible(&self, i: usize) -> bool;
    /// Whether weights may differ; `false` lets an algorithm take its
    /// unweighted fast path (every `weight` equal).
    fn weighted(&self) -> bool;
    /// Effective weight: configured weight × `WEIGHT_SCALE`, slow start
    /// applied. Greater than 0.
    fn weight(&self, i: usize) -> u64;
    /// Every endpoint is eligible (nothing tried, nothing marked): a pass
    /// over all of them may skip asking `eligible` one by one.
    fn all_eligible(&self) -> bool {
        false
    }
    /// The effective weights as a slice when they are fixed for the pick
    /// (configured × `WEIGHT_SCALE`, no ramp); `None` otherwise.
    fn fixed_weights(&self) -> Option<&[u64]> {
        None
    }
    /// Running sums of the effective weights (`[w0, w0 + w1, …]`) when
    /// they are fixed for the pick (no ramp), so a weighted draw can
    /// binary-search instead of summing; `None` otherwise.
    fn cumulative_weights(&self) -> Option<&[u64]> {
        None
    }
    /// Tries in flight to it on this shard.
    fn active(&self, i: usize) -> u32;
    /// The hash of the request's key (`hash_key`), when the cluster hashes
    /// and the request has one.
    fn key(&self) -> Option<u64>;
}

/// What every balancing algorithm answers: the index of an eligible
/// endpoint, or `None` when there is none.
pub trait Pick {
    fn pick(&self, c: &impl Candidates) -> Option<usize>;
}

/// How often a cluster whose endpoints are all marked down has its marks
/// lifted.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// A cluster's algorithm on one shard (its state: positions, generator,
/// the shared hash table).
#[derive(Debug)]
pub enum Algorithm {
    RoundRobin(RoundRobin),
    LeastRequest(LeastRequest),
    Random(Random),
    RingHash(RingHash),
    Maglev(Maglev),
}

impl Algorithm {
    #[inline]
    fn pick(&self, c: &impl Candidates) -> Option<usize> {
        match self {
            Algorithm::RoundRobin(a) => a.pick(c),
            Algorithm::LeastRequest(a) => a.pick(c),
            Algorithm::Random(a) => a.pick(c),
            Algorithm::RingHash(a) => a.pick(c),
            Algorithm::Maglev(a) => a.pick(c),
        }
    }

    /// Its round robin (the algorithm itself, or a hashing one's fallback).
    fn round_robin(&self) -> Option<&RoundRobin> {
        match self {
            Algorithm::RoundRobin(rr) => Some(rr),
            Algorithm::RingHash(h) => Some(&h.fallback),
            Algorithm::Maglev(m) => Some(&m.fallback),
            Algorithm::LeastRequest(_) | Algorithm::Random(_) => None,
        }
    }

    fn rng(&self) -> Option<&Rng> {
        match self {
            Algorithm::LeastRequest(a) => Some(a.rng()),
            Algorithm::Random(a) => Some(a.rng()),
            _ => None,
        }
    }
}

/// A hashing cluster's table, built once per generation on the main
/// thread and shared by every shard.
#[derive(Debug, Clone)]
pub enum HashTable {
    Ring(Arc<Ring>),
    Maglev(Arc<MaglevTable>),
}

/// What a hash table is built from: a reload with the same inputs for a
/// cluster of the same name keeps the table (no rebuild, same mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInputs {
    pub policy: LbPolicy,
    pub size: usize,
    /// Endpoints as written (`host:port`): what their points are hashed from.
    pub names: Vec<String>,
    pub weights: Vec<u32>,
}

impl TableInputs {
    /// `None` for a cluster that does not hash.
    pub fn of(c: &Cluster) -> Option<TableInputs> {
        let size = match c.balance.policy {
            LbPolicy::RingHash => c.balance.min_ring_size,
            LbPolicy::Maglev => c.balance.maglev_table_size,
            _ => return None,
        };
        let names = c.endpoint_hosts.iter().zip(&c.endpoints).map(|(h, a)| endpoint_name(h, a.port())).collect();
        Some(TableInputs { policy: c.balance.policy, size, names, weights: c.weights.clone() })
    }

    pub fn build(&self) -> HashTable {
        match self.policy {
            LbPolicy::Maglev => HashTable::Maglev(Arc::new(MaglevTable::build(&self.names, &self.weights, self.size))),
            _ => HashTable::Ring(Arc::new(Ring::build(&self.names, &self.weights, self.size))),
        }
    }
}

/// An endpoint's name in hash tables: its host as written and its port,
/// with IPv6 hosts bracketed.
fn endpoint_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A cluster's selection state on one shard.
#[derive(Debug)]
pub struct Balancer {
    pub algorithm: Algorithm,
    /// Whether the cluster's configured weights differ.
    weighted: bool,
    /// Configured weights × `WEIGHT_SCALE`, and their running sums (both
    /// empty when the weights are all equal).
    scaled: Vec<u64>,
    cumulative: Vec<u64>,
    /// When every endpoint was last found marked down and the marks lifted.
    recovered_at: Cell<Option<Instant>>,
}

impl Balancer {
    pub fn new(algorithm: Algorithm) -> Balancer {
        Balancer {
            algorithm,
            weighted: false,
            scaled: Vec::new(),
            cumulative: Vec::new(),
            recovered_at: Cell::new(None),
        }
    }

    /// Cluster `index` of a generation on `shard`: its algorithm, with
    /// `table` (when it hashes), carrying state from `previous` (the same
    /// cluster in the shard's previous generation, with its endpoint ids).
    pub fn build(
        shard: usize,
        index: usize,
        cluster: &Cluster,
        ids: &[EndpointId],
        table: Option<&HashTable>,
        previous: Option<(&Balancer, &[EndpointId])>,
    ) -> Balancer {
        let round_robin = || match previous.and_then(|(b, old)| Some((b.algorithm.round_robin()?, old))) {
            Some((rr, old)) => rr.carried(old, ids),
            None => RoundRobin::new(shard),
        };
        let rng = || match previous.and_then(|(b, _)| b.algorithm.rng()) {
            Some(rng) => rng.carried(),
            None => Rng::new(shard, index),
        };
        let algorithm = match (cluster.balance.policy, table) {
            (LbPolicy::LeastRequest, _) => Algorithm::LeastRequest(LeastRequest::new(rng())),
            (LbPolicy::Random, _) => Algorithm::Random(Random::new(rng())),
            (LbPolicy::RingHash, Some(HashTable::Ring(ring))) => {
                Algorithm::RingHash(RingHash { ring: ring.clone(), fallback: round_robin() })
            }
            (LbPolicy::Maglev, Some(HashTable::Maglev(table))) => {
                Algorithm::Maglev(Maglev { table: table.clone(), fallback: round_robin() })
            }
            _ => Algorithm::RoundRobin(round_robin()),
        };
        let weighted = cluster.weights.windows(2).any(|w| w[0] != w[1]);
        let scaled: Vec<u64> =
            if weighted { cluster.weights.iter().map(|&w| w as u64 * WEIGHT_SCALE).collect() } else { Vec::new() };
        let cumulative = scaled
            .iter()
            .scan(0, |sum, &w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        let recovered_at = Cell::new(previous.and_then(|(b, _)| b.recovered_at.get()));
        Balancer { algorithm, weighted, scaled, cumulative, recovered_at }
    }
}

/// The shard's view of one cluster for one pick.
struct ClusterView<'a> {
    ids: &'a [EndpointId],
    weights: &'a [u32],
    balancer: &'a Balancer,
    states: &'a EndpointStates,
    eligibility: &'a Eligibility<'a>,
    tried: &'a Tried,
    /// Nothing tried by this request, nothing marked on this shard: every
    /// endpoint is eligible without asking.
    all_eligible: bool,
    /// Some endpoint may be ramping: weights go through the ramps.
    ramping: bool,
    key: Option<u64>,
    /// Read once per pick, only when a ramp needs it.
    now: Cell<Option<Instant>>,
}

impl Candidates for ClusterView<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    fn eligible(&self, i: usize) -> bool {
        self.all_eligible || (!self.tried.contains(i) && self.eligibility.usable(self.ids[i]))
    }

    #[inline]
    fn weighted(&self) -> bool {
        self.balancer.weighted || self.ramping
    }

    #[inline]
    fn weight(&self, i: usize) -> u64 {
        if !self.ramping {
            return self.balancer.scaled.get(i).copied().unwrap_or(WEIGHT_SCALE);
        }
        let w = self.weights.get(i).copied().unwrap_or(1);
        let now = *self.now.get().get_or_insert_with(Instant::now);
        self.now.set(Some(now));
        self.states.ramps.weight(self.ids[i].slot(), w, now)
    }

    #[inline]
    fn all_eligible(&self) -> bool {
        self.all_eligible
    }

    #[inline]
    fn fixed_weights(&self) -> Option<&[u64]> {
        let scaled = &self.balancer.scaled;
        (!self.ramping && scaled.len() == self.ids.len()).then_some(&scaled[..])
    }

    #[inline]
    fn cumulative_weights(&self) -> Option<&[u64]> {
        let sums = &self.balancer.cumulative;
        (!self.ramping && sums.len() == self.ids.len()).then_some(&sums[..])
    }

    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.states.in_flight.get(self.ids[i].slot())
    }

    #[inline]
    fn key(&self) -> Option<u64> {
        self.key
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
/// `key` is the request's [`request_key`] for this cluster.
pub fn select(
    generation: &ShardGeneration,
    states: &EndpointStates,
    cluster: usize,
    tried: &Tried,
    key: Option<u64>,
) -> Result<Endpoint, Error> {
    let ids = &generation.shared.endpoints[cluster];
    let balancer = &generation.balancers[cluster];
    let config = &generation.config().clusters[cluster];
    if ids.is_empty() {
        return Err(Error::new(ErrorKind::NoHealthyEndpoint, "the cluster has no endpoints"));
    }
    let eligibility = states.eligibility(config, &generation.shared.health, ids);
    let view = ClusterView {
        ids,
        weights: &config.weights,
        balancer,
        states,
        eligibility: &eligibility,
        tried,
        all_eligible: tried.0 == 0 && eligibility.none_excluded(),
        ramping: config.balance.slow_start.is_some() && states.ramps.any(),
        key,
        now: Cell::new(None),
    };
    if let Some(index) = balancer.algorithm.pick(&view) {
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

#[cfg(test)]
mod tests;
