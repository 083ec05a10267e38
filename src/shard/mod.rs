//! One shard: the per-core worker that owns its listeners' sockets, its
//! connections, upstream pools and counters.
//!
//! - `spawn.rs`: threads, CPU pinning, io driver choice.
//! - `registry.rs`: the shard's open connections, for drain.
//! - `generation.rs`: a config and what is built from it; `identity.rs`:
//!   endpoint and listener ids that survive reloads.
//! - `supervisor.rs` (main thread): bind, start, signals, reload.
//! - this file: the shard's state and its main task (accept loops, pool
//!   sweeper, control messages from the main thread).
//!
//! Shard state is `!Send` (`Rc`, `Cell`, `RefCell`): nothing on the data
//! path takes a lock. What crosses threads: `Arc<Generation>` snapshots
//! (in control messages), the counters (single-writer atomics) and the
//! control channel.

pub mod bind;
pub mod buffers;
pub mod generation;
pub mod identity;
pub mod registry;
pub mod reload;
pub mod spawn;
pub mod supervisor;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::ShardCounters;
use crate::upstream::endpoint_state::EndpointStates;
use crate::upstream::pool::Pool;
use buffers::BufferPool;
use generation::{Generation, ShardGeneration};
use identity::ListenerId;
use registry::Registry;

/// Messages from the main thread to a shard.
#[derive(Debug)]
pub enum Control {
    /// A new generation, swapped in between requests, and this shard's
    /// sockets of the listeners it adds. Listeners of the old generation
    /// that are not in it stop accepting; their connections end after
    /// their request in progress.
    /// The shard sends its id on `installed` once the generation is in
    /// place (new connections and requests get it from then on).
    Reload {
        generation: Arc<Generation>,
        added: Vec<(ListenerId, std::net::TcpListener)>,
        installed: std::sync::mpsc::Sender<usize>,
    },
    /// Stop accepting, finish in-flight requests (`Connection: close`),
    /// close idle connections once idle past the drain's grace.
    Drain { deadline: Instant },
}

/// Connections that must have closed since the last peak before the
/// sweeper returns free heap memory to the system.
const TRIM_AFTER_CONNECTIONS_GONE: usize = 256;
/// How often a draining shard checks whether its connections are gone.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(20);

pub struct Shard {
    pub id: usize,
    /// The newest generation. A request never reads it: it uses the one
    /// its connection took when the request's head was in.
    current: RefCell<Rc<ShardGeneration>>,
    pub counters: Arc<ShardCounters>,
    /// Keyed by stable endpoint slots: survives reloads.
    pub pool: Pool,
    /// The shard's view of each endpoint (passive marks, outlier
    /// ejections, in-flight counts, slow-start ramps), by stable slot.
    pub endpoint_states: EndpointStates,
    pub registry: Rc<Registry>,
    pub buffers: BufferPool,
    /// Histograms and buffers of the record step (`observe/`).
    pub observe: crate::observe::ShardObserve,
    request_ids: RequestIds,
}

impl Shard {
    pub fn new(id: usize, generation: Arc<Generation>, counters: Arc<ShardCounters>) -> Shard {
        let endpoint_states = EndpointStates::new(counters.ejections.clone());
        endpoint_states.ramps.on_install(&generation, None, std::time::Instant::now());
        Shard {
            id,
            pool: Pool::new(&generation, counters.pool_idle.clone()),
            endpoint_states,
            current: RefCell::new(Rc::new(ShardGeneration::new(id, generation, None))),
            counters,
            registry: Rc::new(Registry::default()),
            buffers: BufferPool::default(),
            observe: crate::observe::ShardObserve::default(),
            request_ids: RequestIds::new(id),
        }
    }

    /// The shard's newest generation.
    pub fn generation(&self) -> Rc<ShardGeneration> {
        self.current.borrow().clone()
    }

    /// Whether `held` is the newest generation (no reference count touched).
    pub fn is_current(&self, held: &Rc<ShardGeneration>) -> bool {
        Rc::ptr_eq(&self.current.borrow(), held)
    }

    /// Swaps in `generation` (between requests: nothing awaits here). The
    /// pool keeps the connections of endpoints the new generation keeps.
    /// Returns the previous one.
    pub fn install(&self, generation: Arc<Generation>) -> Rc<ShardGeneration> {
        self.pool.install(&generation);
        let previous = self.current.borrow().shared.clone();
        self.endpoint_states.ramps.on_install(&generation, Some(&previous), std::time::Instant::now());
        let next = Rc::new(ShardGeneration::new(self.id, generation, Some(&self.current.borrow())));
        self.current.replace(next)
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

/// The shard's main task: runs its accept loops and the pool sweeper,
/// installs new generations, and when told to drain waits for its
/// connections to finish.
pub async fn run(
    shard: Rc<Shard>,
    listeners: Vec<(ListenerId, std::net::TcpListener)>,
    control: async_channel::Receiver<Control>,
) {
    // One canceller per listener: a reload stops the ones it removes.
    let mut accepting: HashMap<ListenerId, monoio::io::Canceller> = HashMap::new();
    start_accepting(&shard, &mut accepting, listeners);
    monoio::spawn(crate::observe::metrics::answer_scrapes(shard.clone()));
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
            sweeper.observe.access_log.flush(&sweeper.counters);
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

    let deadline = loop {
        match control.recv().await {
            Ok(Control::Reload { generation, added, installed }) => {
                let number = generation.number;
                let previous = shard.install(generation);
                let current = shard.generation();
                // Listeners the new generation no longer has: stop
                // accepting (the sockets close) and end their connections
                // after the request in progress.
                for id in &previous.shared.listeners {
                    if current.shared.listener_index(*id).is_none() {
                        if let Some(canceller) = accepting.remove(id) {
                            canceller.cancel();
                        }
                        shard.registry.close_listener(*id);
                    }
                }
                start_accepting(&shard, &mut accepting, added);
                let _ = installed.send(shard.id);
                tracing::debug!(shard = shard.id, generation = number, "generation installed");
            }
            Ok(Control::Drain { deadline }) => break deadline,
            // A closed channel (main thread gone) means drain too.
            Err(_) => break Instant::now() + shard.generation().config().server.drain_timeout,
        }
    };
    // Draining first: a cancelled accept loop sees it and ends.
    shard.registry.drain(Instant::now());
    for (_, canceller) in accepting.drain() {
        canceller.cancel();
    }
    // The accept loops end at their next poll and drop their sockets; on
    // io_uring the close is an operation the runtime submits when it next
    // enters the kernel. A shard with no connection left would otherwise
    // return at once, its runtime gone before that: the listening socket
    // would stay open (connections queued and never accepted, then reset
    // at exit) instead of refusing connections for the rest of the drain.
    monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
    shard.pool.clear();
    while !shard.registry.is_empty() && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL_INTERVAL).await;
        // Idle connections are closed once idle past the drain's grace
        // (`registry::DRAIN_IDLE_GRACE`).
        shard.registry.drain(Instant::now());
    }
    let left = shard.registry.len();
    if left > 0 {
        tracing::warn!(shard = shard.id, connections = left, "drain timeout: closing remaining connections");
    }
    shard.counters.metrics.stop_serving();
    shard.observe.access_log.flush(&shard.counters);
}

/// Spawns an accept loop for each of `listeners` (this shard's sockets).
fn start_accepting(
    shard: &Rc<Shard>,
    accepting: &mut HashMap<ListenerId, monoio::io::Canceller>,
    listeners: Vec<(ListenerId, std::net::TcpListener)>,
) {
    for (id, std_listener) in listeners {
        match monoio::net::TcpListener::from_std(std_listener) {
            Ok(listener) => {
                // A shard may accept on several sockets of one listener
                // (after an upgrade to fewer shards): one canceller stops
                // them all.
                let canceller = accepting.entry(id).or_default();
                monoio::spawn(crate::listener::accept_loop(shard.clone(), id, listener, canceller.handle()));
            }
            Err(e) => tracing::error!(shard = shard.id, error = %e, "cannot register listener with the io driver"),
        }
    }
}
