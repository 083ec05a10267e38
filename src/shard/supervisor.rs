//! The main thread's job once a config is loaded: bind every listener, start
//! the shards, then wait for signals and shard exits.
//!
//! SIGTERM / SIGINT: every shard stops accepting, closes its idle
//! connections, lets in-flight requests finish until `drain_timeout`, and
//! exits; the process then exits 0. SIGHUP re-reads every TLS listener's
//! certificates and keys: new handshakes use them, open connections are
//! untouched, and a broken file leaves the old certificates serving (and
//! says why in the log). Reloading the rest of the config is a later issue.

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::generation::Generation;
use super::identity::{Identities, ListenerId};
use super::spawn::{spawn_shard, Placement};
use super::{Control, Shard};
use crate::admin::{self, ShardCounters};
use crate::config::Config;
use crate::listener::{bind_shared, SocketOptions};

/// Control messages queued per shard; only drain is sent today.
const CONTROL_QUEUE: usize = 4;

enum Event {
    Signal(i32),
    ShardExited(usize, Result<(), String>),
}

/// Runs the gateway for `config` until a termination signal has drained it.
pub fn serve(config: Config) -> Result<(), String> {
    let config = Arc::new(config);
    let placement = Placement::from_server(&config.server);
    let n = placement.shards;

    // Signal handlers go in before anything is announced: a SIGHUP or
    // SIGTERM that follows the first `listening` line must find them (the
    // default action would kill the process). Signals queue in the channel
    // until the loop below reads them.
    let (events, inbox) = mpsc::channel::<Event>();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let signal_events = events.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal_events.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });

    // Certificates and keys before any socket: a bad file fails startup
    // before anything is announced as listening.
    let (generation, _) = Generation::build(1, config.clone(), &mut Identities::default(), None)?;
    let generation = Arc::new(generation);

    // Bind everything first: a busy or bad address fails startup cleanly.
    let mut per_shard: Vec<Vec<(ListenerId, std::net::TcpListener)>> = (0..n).map(|_| Vec::new()).collect();
    for (index, l) in config.listeners.iter().enumerate() {
        let (sockets, bound) = bind_shared(
            l.addr,
            n,
            SocketOptions { defer_accept: l.defer_accept, send_buffer_bytes: l.send_buffer_bytes },
        )
        .map_err(|e| format!("listeners[{index}] ({}): cannot listen on {}: {e}", l.name, l.addr))?;
        for (shard, socket) in sockets.into_iter().enumerate() {
            per_shard[shard].push((generation.listeners[index], socket));
        }
        tracing::info!(listener = %l.name, addr = %bound, shards = n, "listening");
    }
    let counters: Arc<Vec<Arc<ShardCounters>>> = Arc::new((0..n).map(|_| Arc::new(ShardCounters::default())).collect());
    if let Some(a) = &config.admin {
        let listener =
            std::net::TcpListener::bind(a.listen).map_err(|e| format!("admin: cannot listen on {}: {e}", a.listen))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        admin::spawn(listener, counters.clone()).map_err(|e| e.to_string())?;
        tracing::info!(listener = %"admin", addr = %bound, "listening");
    }

    let mut controls = Vec::with_capacity(n);
    for (id, listeners) in per_shard.into_iter().enumerate() {
        let (tx, rx) = async_channel::bounded::<Control>(CONTROL_QUEUE);
        controls.push(tx);
        let generation = generation.clone();
        let shard_counters = counters[id].clone();
        let handle = spawn_shard(id, &placement, move || {
            let shard = Rc::new(Shard::new(id, generation, shard_counters));
            super::run(shard, listeners, rx)
        })
        .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        let events = events.clone();
        // A watcher per shard turns its thread's end into an event.
        std::thread::spawn(move || {
            let result = match handle.join() {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("shard thread panicked".to_string()),
            };
            let _ = events.send(Event::ShardExited(id, result));
        });
    }

    drop(events);

    let mut running = n;
    let mut draining = false;
    let mut failure: Option<String> = None;
    while running > 0 {
        match inbox.recv() {
            Ok(Event::Signal(SIGHUP)) => reload_certificates(&generation),
            Ok(Event::Signal(signal)) => {
                if draining {
                    continue;
                }
                draining = true;
                tracing::info!(signal, drain_timeout = ?config.server.drain_timeout, "draining");
                let deadline = Instant::now() + config.server.drain_timeout;
                for c in &controls {
                    let _ = c.try_send(Control::Drain { deadline });
                }
            }
            Ok(Event::ShardExited(id, result)) => {
                running -= 1;
                if let Err(e) = result {
                    tracing::error!(shard = id, error = %e, "shard failed");
                    failure.get_or_insert(format!("shard {id}: {e}"));
                }
                if !draining {
                    // A shard ended on its own: take the rest down cleanly.
                    draining = true;
                    failure.get_or_insert(format!("shard {id} exited unexpectedly"));
                    let deadline = Instant::now() + config.server.drain_timeout;
                    for c in &controls {
                        let _ = c.try_send(Control::Drain { deadline });
                    }
                }
            }
            Err(_) => break,
        }
    }
    tracing::info!("all shards stopped");
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// SIGHUP: new certificates for new handshakes; on any error the listener
/// keeps what it had.
fn reload_certificates(generation: &Generation) {
    let config = &generation.config;
    if config.listeners.iter().all(|l| l.tls.is_none()) {
        tracing::info!("SIGHUP: no TLS listener to reload (config reload is a later feature)");
    }
    for (l, resolver) in config.listeners.iter().zip(&generation.tls.resolvers) {
        let (Some(t), Some(resolver)) = (&l.tls, resolver) else { continue };
        match resolver.reload(&t.certificates) {
            Ok(()) => tracing::info!(listener = %l.name, "SIGHUP: certificates reloaded"),
            Err(e) => {
                tracing::error!(listener = %l.name, error = %e, "SIGHUP: certificate reload failed; keeping the old certificates")
            }
        }
    }
}
