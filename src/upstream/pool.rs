//! Per-shard keep-alive pool of idle upstream connections, per endpoint.
//!
//! Where it sits: `forward.rs` checks a connection out before sending a
//! request and puts it back when the response ended cleanly and may be
//! reused. Shard-local (`RefCell`), never shared across cores. LIFO: the
//! most recently used connection is the least likely to have been closed
//! by the upstream's own idle timer.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::stream::UpstreamStream;
use super::EndpointId;
use crate::config::Config;

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

/// Limits of one endpoint's idle list (from its cluster).
#[derive(Debug, Clone, Copy)]
struct Policy {
    max_idle: usize,
    idle_timeout: Duration,
}

pub struct Pool {
    idle: RefCell<Vec<Vec<Idle>>>,
    policy: Vec<Policy>,
}

impl Pool {
    pub fn new(config: &Config) -> Pool {
        let policy: Vec<Policy> = config
            .clusters
            .iter()
            .flat_map(|c| {
                std::iter::repeat_n(
                    Policy { max_idle: c.max_idle_per_endpoint, idle_timeout: c.idle_timeout },
                    c.endpoints.len(),
                )
            })
            .collect();
        Pool { idle: RefCell::new(policy.iter().map(|_| Vec::new()).collect()), policy }
    }

    /// The most recently returned idle connection that has not expired
    /// and on which nothing happened while it was idle (see
    /// `UpstreamStream::is_reusable`): one the upstream closed, or that
    /// carries bytes after its last response (a stale `408`, a body sent
    /// after a HEAD/204/304 answer, an unsolicited response), is closed
    /// here and never carries a request.
    pub fn checkout(&self, ep: EndpointId) -> Option<UpstreamStream> {
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[ep];
        let timeout = self.policy[ep].idle_timeout;
        while let Some(mut conn) = list.pop() {
            if conn.since.elapsed() < timeout && conn.stream.is_reusable() {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Keeps `stream` for reuse unless the endpoint's idle list is full.
    pub fn put(&self, ep: EndpointId, stream: UpstreamStream) {
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[ep];
        if list.len() < self.policy[ep].max_idle {
            list.push(Idle { stream, since: Instant::now() });
        }
    }

    /// Closes idle connections past their idle timeout (called by the
    /// shard's sweeper once a second).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.idle.borrow_mut();
        for (ep, list) in idle.iter_mut().enumerate() {
            let timeout = self.policy[ep].idle_timeout;
            list.retain(|c| now.duration_since(c.since) < timeout);
        }
    }

    /// Closes every idle connection (drain).
    pub fn clear(&self) {
        for list in self.idle.borrow_mut().iter_mut() {
            list.clear();
        }
    }

    pub fn idle_count(&self, ep: EndpointId) -> usize {
        self.idle.borrow()[ep].len()
    }
}
