//! The main thread's job once a config is loaded: bind every listener, start
//! the shards, then wait for signals and shard exits.
//!
//! SIGTERM / SIGINT: every shard stops accepting, closes its idle
//! connections, lets in-flight requests finish until `drain_timeout`, and
//! exits; the process then exits 0. SIGHUP re-reads every TLS listener's
//! certificates and keys: new handshakes use them, open connections are
//! untouched, and a broken file leaves the old certificates serving (and
//! says why in the log). Reloading the rest of the config is a later issue.
//!
//! Under systemd (`Type=notify`) this thread also tells the service manager
//! `READY=1` once every shard serves, `STOPPING=1` when the drain starts,
//! and pings the watchdog while every shard is alive (`crate::notify`).

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::spawn::{spawn_shard, Placement};
use super::{Control, Shard, TlsConfigs};
use crate::admin::{self, ShardCounters};
use crate::config::Config;
use crate::listener::{bind_shared, SocketOptions};
use crate::notify::{Notifier, ServiceStatus};
use crate::tls::sni::SniResolver;
use crate::upstream::stream::UpstreamTls;

/// Control messages queued per shard; only drain is sent today.
const CONTROL_QUEUE: usize = 4;

enum Event {
    Signal(i32),
    /// The shard's runtime is up and its main task (accept loops) starts.
    ShardServing,
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
    let (tls, resolvers) = build_tls(&config)?;

    // Bind everything first: a busy or bad address fails startup cleanly.
    let mut per_shard: Vec<Vec<(usize, std::net::TcpListener)>> = (0..n).map(|_| Vec::new()).collect();
    for (index, l) in config.listeners.iter().enumerate() {
        let (sockets, bound) = bind_shared(
            l.addr,
            n,
            SocketOptions { defer_accept: l.defer_accept, send_buffer_bytes: l.send_buffer_bytes },
        )
        .map_err(|e| format!("listeners[{index}] ({}): cannot listen on {}: {e}", l.name, l.addr))?;
        for (shard, socket) in sockets.into_iter().enumerate() {
            per_shard[shard].push((index, socket));
        }
        tracing::info!(listener = %l.name, addr = %bound, shards = n, "listening");
    }
    let counters: Arc<Vec<Arc<ShardCounters>>> = Arc::new((0..n).map(|_| Arc::new(ShardCounters::default())).collect());
    if let Some(a) = &config.admin {
        let listener =
            std::net::TcpListener::bind(a.listen).map_err(|e| format!("admin: cannot listen on {}: {e}", a.listen))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let state = admin::AdminState { shards: counters.clone(), config: config.clone() };
        admin::spawn(listener, state).map_err(|e| e.to_string())?;
        tracing::info!(listener = %"admin", addr = %bound, "listening");
    }

    let mut controls = Vec::with_capacity(n);
    for (id, listeners) in per_shard.into_iter().enumerate() {
        let (tx, rx) = async_channel::bounded::<Control>(CONTROL_QUEUE);
        controls.push(tx);
        let config = config.clone();
        let shard_counters = counters[id].clone();
        let tls = tls.clone();
        let serving = events.clone();
        let handle = spawn_shard(id, &placement, move || {
            // Called once the runtime is built (the last start-up step
            // that can fail); the listening sockets have been in the
            // kernel's listen state since the bind above.
            let _ = serving.send(Event::ShardServing);
            let shard = Rc::new(Shard::new(id, config, shard_counters, tls));
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
    let mut service = ServiceStatus::new(Notifier::from_env(), n);
    while running > 0 {
        match next_event(&inbox, &mut service) {
            Ok(Event::Signal(SIGHUP)) => reload_certificates(&config, &resolvers),
            Ok(Event::Signal(signal)) => {
                if draining {
                    continue;
                }
                draining = true;
                service.stopping();
                tracing::info!(signal, drain_timeout = ?config.server.drain_timeout, "draining");
                let deadline = Instant::now() + config.server.drain_timeout;
                for c in &controls {
                    let _ = c.try_send(Control::Drain { deadline });
                }
            }
            // Taken by `next_event` (service-manager readiness).
            Ok(Event::ShardServing) => {}
            Ok(Event::ShardExited(id, result)) => {
                running -= 1;
                if let Err(e) = result {
                    tracing::error!(shard = id, error = %e, "shard failed");
                    failure.get_or_insert(format!("shard {id}: {e}"));
                }
                if !draining {
                    // A shard ended on its own: take the rest down cleanly.
                    draining = true;
                    service.stopping();
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

/// The next event for the supervisor's loop, keeping the service manager
/// informed on the way: shards serving (`READY=1` once all do) and exiting
/// (the watchdog stops) are seen here, and between events the watchdog is
/// pinged from this thread when due.
fn next_event(inbox: &mpsc::Receiver<Event>, service: &mut ServiceStatus) -> Result<Event, mpsc::RecvError> {
    loop {
        let event = match service.wait_limit(Instant::now()) {
            None => Some(inbox.recv()?),
            Some(wait) => match inbox.recv_timeout(wait) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(mpsc::RecvError),
            },
        };
        match event {
            Some(Event::ShardServing) => service.shard_serving(),
            Some(event) => {
                if matches!(event, Event::ShardExited(..)) {
                    service.shard_exited();
                }
                service.ping_if_due(Instant::now());
                return Ok(event);
            }
            None => service.ping_if_due(Instant::now()),
        }
    }
}

/// The certificate resolver of each TLS listener (by listener index).
type Reloaders = Vec<(usize, Arc<SniResolver>)>;

/// Builds every listener's and cluster's rustls config once, here on the
/// main thread; the shards share them (and so the session ticket keys).
fn build_tls(config: &Config) -> Result<(TlsConfigs, Reloaders), String> {
    let mut tls = TlsConfigs::default();
    let mut resolvers = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(t) = &l.tls else {
            tls.listeners.push(None);
            continue;
        };
        let (server, resolver) = crate::tls::server_config::build_server_config(t)
            .map_err(|e| format!("listeners[{i}] ({}): {e}", l.name))?;
        tls.listeners.push(Some(server));
        resolvers.push((i, resolver));
    }
    for (i, c) in config.clusters.iter().enumerate() {
        let Some(t) = &c.tls else {
            tls.clusters.push(None);
            continue;
        };
        let client = crate::tls::client_config::build_client_config(t)
            .map_err(|e| format!("clusters[{i}] ({}): {e}", c.name))?;
        let server_names = c
            .endpoint_hosts
            .iter()
            .map(|host| crate::tls::client_config::server_name(t, host))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("clusters[{i}] ({}): {e}", c.name))?;
        tls.clusters.push(Some(Arc::new(UpstreamTls { config: client, server_names })));
    }
    Ok((tls, resolvers))
}

/// SIGHUP: new certificates for new handshakes; on any error the listener
/// keeps what it had.
fn reload_certificates(config: &Config, resolvers: &[(usize, Arc<SniResolver>)]) {
    if resolvers.is_empty() {
        tracing::info!("SIGHUP: no TLS listener to reload (config reload is a later feature)");
    }
    for (i, resolver) in resolvers {
        let l = &config.listeners[*i];
        let Some(t) = &l.tls else { continue };
        match resolver.reload(&t.certificates) {
            Ok(()) => tracing::info!(listener = %l.name, "SIGHUP: certificates reloaded"),
            Err(e) => {
                tracing::error!(listener = %l.name, error = %e, "SIGHUP: certificate reload failed; keeping the old certificates")
            }
        }
    }
}
