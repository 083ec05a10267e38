//! Per-shard keep-alive pool of idle upstream connections, per endpoint.
//!
//! Where it sits: `forward.rs` checks a connection out before sending a
//! request and puts it back when the response ended cleanly and may be
//! reused. Shard-local (`RefCell`), never shared across cores. LIFO: the
//! most recently used connection is the least likely to have been closed
//! by the upstream's own idle timer.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pool_gauge::{IdleCells, IdleGauge};
use super::stream::UpstreamStream;
use super::EndpointId;
use crate::shard::generation::Generation;

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

/// Limits of one endpoint's idle list (from its cluster), and the version
/// of the connection settings its connections must have been made with.
#[derive(Debug, Clone, Copy)]
struct Policy {
    max_idle: usize,
    idle_timeout: Duration,
    settings: u32,
}

/// Idle connections per endpoint slot (`EndpointId::slot`, stable across
/// reloads: a reload that keeps an endpoint keeps its connections).
pub struct Pool {
    idle: RefCell<Vec<Vec<Idle>>>,
    /// Per slot; `None` for an endpoint not in the current generation.
    policy: RefCell<Vec<Option<Policy>>>,
    /// Each slot's idle count, for the admin thread (`pool_gauge.rs`):
    /// written after every change of a slot's list.
    gauge: RefCell<IdleCells>,
}

impl Pool {
    /// A pool for the endpoints of `generation`, publishing its idle
    /// counts to `gauge`.
    pub fn new(generation: &Generation, gauge: Arc<IdleGauge>) -> Pool {
        let pool =
            Pool { idle: RefCell::default(), policy: RefCell::default(), gauge: RefCell::new(IdleCells::new(gauge)) };
        pool.install(generation);
        pool
    }

    /// Takes the endpoints and limits of a new generation (between
    /// requests, on the shard's thread): connections of endpoints that
    /// are gone, or whose connection settings changed, are closed; those
    /// of endpoints it keeps stay.
    pub fn install(&self, generation: &Generation) {
        let mut policy = self.policy.borrow_mut();
        let mut idle = self.idle.borrow_mut();
        let mut next: Vec<Option<Policy>> = vec![None; policy.len()];
        for (c, ids) in generation.config.clusters.iter().zip(&generation.endpoints) {
            for id in ids {
                if id.slot() >= next.len() {
                    next.resize(id.slot() + 1, None);
                }
                next[id.slot()] = Some(Policy {
                    max_idle: c.max_idle_per_endpoint,
                    idle_timeout: c.idle_timeout,
                    settings: id.settings(),
                });
            }
        }
        idle.resize_with(next.len(), Vec::new);
        let mut gauge = self.gauge.borrow_mut();
        gauge.grow(next.len());
        for (slot, list) in idle.iter_mut().enumerate() {
            let same = match (policy.get(slot).copied().flatten(), next[slot]) {
                (Some(old), Some(new)) => old.settings == new.settings,
                _ => false,
            };
            if !same {
                list.clear();
            } else if let Some(p) = next[slot] {
                list.truncate(p.max_idle);
            }
            gauge.set(slot, list.len());
        }
        *policy = next;
    }

    /// The endpoint's policy when `ep` is an endpoint of the current
    /// generation with its current connection settings.
    fn live(&self, ep: EndpointId) -> Option<Policy> {
        self.policy.borrow().get(ep.slot()).copied().flatten().filter(|p| p.settings == ep.settings())
    }

    /// The most recently returned idle connection that has not expired
    /// and on which nothing happened while it was idle (see
    /// `UpstreamStream::is_reusable`): one the upstream closed, or that
    /// carries bytes after its last response (a stale `408`, a body sent
    /// after a HEAD/204/304 answer, an unsolicited response), is closed
    /// here and never carries a request.
    pub fn checkout(&self, ep: EndpointId) -> Option<UpstreamStream> {
        let timeout = self.live(ep)?.idle_timeout;
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[ep.slot()];
        let mut found = None;
        while let Some(mut conn) = list.pop() {
            if conn.since.elapsed() < timeout && conn.stream.is_reusable() {
                found = Some(conn.stream);
                break;
            }
        }
        self.gauge.borrow().set(ep.slot(), list.len());
        found
    }

    /// Keeps `stream` for reuse unless the endpoint's idle list is full,
    /// or a reload removed the endpoint or changed its connection settings
    /// while the stream was in use (then it is closed).
    pub fn put(&self, ep: EndpointId, stream: UpstreamStream) {
        let Some(policy) = self.live(ep) else { return };
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[ep.slot()];
        if list.len() < policy.max_idle {
            list.push(Idle { stream, since: Instant::now() });
            self.gauge.borrow().set(ep.slot(), list.len());
        }
    }

    /// Closes idle connections past their idle timeout (called by the
    /// shard's sweeper once a second).
    pub fn sweep(&self) {
        let now = Instant::now();
        let policy = self.policy.borrow();
        let mut idle = self.idle.borrow_mut();
        let gauge = self.gauge.borrow();
        for (slot, (list, p)) in idle.iter_mut().zip(policy.iter()).enumerate() {
            match p {
                Some(p) => list.retain(|c| now.duration_since(c.since) < p.idle_timeout),
                None => list.clear(),
            }
            gauge.set(slot, list.len());
        }
    }

    /// Closes every idle connection (drain).
    pub fn clear(&self) {
        let gauge = self.gauge.borrow();
        for (slot, list) in self.idle.borrow_mut().iter_mut().enumerate() {
            list.clear();
            gauge.set(slot, 0);
        }
    }

    pub fn idle_count(&self, ep: EndpointId) -> usize {
        self.idle.borrow().get(ep.slot()).map_or(0, Vec::len)
    }
}
