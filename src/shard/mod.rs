//! One shard: the per-core worker that owns its listeners' sockets, its
//! connections, upstream pools and counters.
//!
//! - `spawn.rs`: threads, CPU pinning, io driver choice.
//! - `registry.rs`: the shard's open connections, for drain.
//! - this file: the shard's state and its main task (accept loops, pool
//!   sweeper, control messages from the main thread).
//!
//! Shard state is `!Send` (`Rc`, `Cell`, `RefCell`): nothing on the data
//! path takes a lock. What crosses threads: the `Arc<Config>` snapshot, the
//! counters (single-writer atomics) and the control channel.

pub mod registry;
pub mod spawn;
pub mod supervisor;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::ShardCounters;
use crate::config::Config;
use crate::http1::buffers::BufferPool;
use crate::upstream::balance::RoundRobin;
use crate::upstream::pool::Pool;
use crate::upstream::stream::UpstreamTls;
use crate::upstream::{endpoint_bases, EndpointId};
use registry::Registry;

/// Messages from the main thread to a shard.
#[derive(Debug)]
pub enum Control {
    /// Stop accepting, finish in-flight requests, close idle connections.
    Drain { deadline: Instant },
}

/// TLS configs built once on the main thread from the config and shared by
/// every shard: one ticket key set per listener, so a session resumes on
/// whichever shard accepts the resumed connection.
#[derive(Clone, Default)]
pub struct TlsConfigs {
    /// Per listener (index as in `Config::listeners`).
    pub listeners: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// Per cluster.
    pub clusters: Vec<Option<Arc<UpstreamTls>>>,
}

/// Connections that must have closed since the last peak before the
/// sweeper returns free heap memory to the system.
const TRIM_AFTER_CONNECTIONS_GONE: usize = 256;
/// How often a draining shard checks whether its connections are gone.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(20);

pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub counters: Arc<ShardCounters>,
    pub pool: Pool,
    /// One per cluster.
    pub balancers: Vec<RoundRobin>,
    endpoint_base: Vec<usize>,
    pub registry: Rc<Registry>,
    pub buffers: BufferPool,
    pub tls: TlsConfigs,
    request_ids: RequestIds,
}

impl Shard {
    pub fn new(id: usize, config: Arc<Config>, counters: Arc<ShardCounters>, tls: TlsConfigs) -> Shard {
        Shard {
            id,
            pool: Pool::new(&config),
            balancers: config.clusters.iter().map(|_| RoundRobin::new(id)).collect(),
            endpoint_base: endpoint_bases(&config),
            config,
            counters,
            registry: Rc::new(Registry::default()),
            buffers: BufferPool::default(),
            tls,
            request_ids: RequestIds::new(id),
        }
    }

    pub fn endpoint_id(&self, cluster: usize, index: usize) -> EndpointId {
        self.endpoint_base[cluster] + index
    }

    pub fn draining(&self) -> bool {
        self.registry.draining()
    }

    /// A fresh 32-hex-digit request id.
    pub fn next_request_id(&self, out: &mut Vec<u8>) {
        self.request_ids.next(out)
    }
}

/// Request ids: 128 bits from a per-shard splitmix64 stream seeded from
/// the clock, the process id and the shard id. Unique in practice, not
/// secret; no syscall per request.
struct RequestIds {
    state: Cell<u64>,
}

impl RequestIds {
    fn new(shard: usize) -> RequestIds {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seed = nanos ^ ((std::process::id() as u64) << 32) ^ (shard as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        RequestIds { state: Cell::new(seed) }
    }

    fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.clear();
        for word in [self.next_u64(), self.next_u64()] {
            for i in (0..16).rev() {
                out.push(HEX[((word >> (i * 4)) & 15) as usize]);
            }
        }
    }
}

/// The shard's main task: runs its accept loops and the pool sweeper until
/// told to drain, then waits for its connections to finish.
pub async fn run(
    shard: Rc<Shard>,
    listeners: Vec<(usize, std::net::TcpListener)>,
    control: async_channel::Receiver<Control>,
) {
    let canceller = monoio::io::Canceller::new();
    for (index, std_listener) in listeners {
        match monoio::net::TcpListener::from_std(std_listener) {
            Ok(listener) => {
                monoio::spawn(crate::listener::accept_loop(shard.clone(), index, listener, canceller.handle()));
            }
            Err(e) => tracing::error!(shard = shard.id, error = %e, "cannot register listener with the io driver"),
        }
    }
    let sweeper = shard.clone();
    monoio::spawn(async move {
        // Connections open at the last peak since memory was returned.
        let mut peak = 0;
        // Also while draining: a client that stops reading must not hold
        // the drain for its whole timeout (the write deadline cuts it off).
        // The task ends with the shard's runtime.
        loop {
            monoio::time::sleep(registry::SWEEP_INTERVAL).await;
            sweeper.registry.expire(Instant::now());
            sweeper.pool.sweep();
            sweeper.buffers.decay();
            let open = sweeper.registry.len();
            peak = peak.max(open);
            // After a burst of buffers went back to the allocator, or a
            // crowd of connections left (their buffers, futures and
            // states), free heap pages go back to the system.
            if sweeper.buffers.should_trim() || peak - open >= TRIM_AFTER_CONNECTIONS_GONE {
                tracing::debug!(shard = sweeper.id, open, peak, "returning free memory to the system");
                crate::memory::return_free_memory();
                peak = open;
            }
        }
    });

    // A closed channel (main thread gone) means drain too.
    let deadline = match control.recv().await {
        Ok(Control::Drain { deadline }) => deadline,
        Err(_) => Instant::now() + shard.config.server.drain_timeout,
    };
    canceller.cancel();
    shard.registry.drain();
    shard.pool.clear();
    while !shard.registry.is_empty() && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
        // Connections that went idle since the last look are closed too.
        shard.registry.drain();
    }
    let left = shard.registry.len();
    if left > 0 {
        tracing::warn!(shard = shard.id, connections = left, "drain timeout: closing remaining connections");
    }
}
