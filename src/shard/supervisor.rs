//! The main thread's job once a config is loaded: bind every listener, start
//! the shards, then wait for signals, reload requests and shard exits.
//!
//! SIGTERM / SIGINT / admin `POST /drain`: every shard stops accepting,
//! lets in-flight requests finish (`Connection: close`) and closes idle
//! connections once idle past a short grace (`registry.rs`), until
//! `drain_timeout`, and exits; the process then exits 0.
//!
//! Binary upgrade (`crate::upgrade`): with `--upgrade-socket PATH` this
//! thread keeps a duplicate of every listening socket and offers them on
//! PATH; a new process that took them and serves starts the same drain
//! here. With `--upgrade-from PATH` this process takes the old one's
//! sockets instead of binding, and tells it once every shard serves.
//! SIGUSR2 (with `--upgrade-socket`) starts the new process from here. SIGHUP and the admin `POST /reload`
//! reload the whole config (`reload.rs`): the file is read and validated
//! here, a new generation is built (TLS certificates and keys read again)
//! and swapped into every shard between requests; a file with errors
//! changes nothing and the errors are logged (and returned to the admin
//! client).
//!
//! Under systemd (`Type=notify`) this thread also tells the service manager
//! `READY=1` once every shard serves, `STOPPING=1` when the drain starts,
//! and pings the watchdog while every shard is alive (`crate::notify`).

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

use super::bind::bind_listeners;
use super::generation::Generation;
use super::identity::Identities;
use super::reload::{reload, ConfigSource, Reloaded, Running};
use super::spawn::{spawn_shard, Placement};
use super::{Control, Shard};
use crate::admin::lifecycle::Lifecycle;
use crate::admin::{self, ShardCounters};
use crate::config::Config;
use crate::notify::{Notifier, ServiceStatus};
use crate::observe::access_log::writer as access_log_writer;
use crate::upgrade::{self, Inventory};

/// Control messages queued per shard (reloads and the drain; a reload
/// waits for room).
const CONTROL_QUEUE: usize = 4;
/// How long an admin `POST /reload` waits for the main thread's answer.
const ADMIN_RELOAD_WAIT: Duration = Duration::from_secs(30);
/// How long the exit waits for the access log writer to write what the
/// shards handed over last.
const ACCESS_LOG_FINISH_WAIT: Duration = Duration::from_secs(2);
/// How long the upgrade thread waits for this thread to start the drain
/// once the new process serves.
const TAKEOVER_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The binary-upgrade side of a run (`shardgate run --upgrade-socket`,
/// `--upgrade-from`).
#[derive(Debug, Clone, Default)]
pub struct UpgradePaths {
    /// Offer this process's sockets to a new process on this Unix socket.
    pub offer_at: Option<std::path::PathBuf>,
    /// Take the sockets of the process offering them on this Unix socket.
    pub take_from: Option<std::path::PathBuf>,
}

enum Event {
    Signal(i32),
    /// The shard's runtime is up and its main task (accept loops) starts.
    ShardServing,
    ShardExited(usize, Result<(), String>),
    /// `POST /reload`: the outcome goes back on the channel.
    Reload(mpsc::Sender<Result<Reloaded, Vec<String>>>),
    /// `POST /drain`.
    DrainRequested,
    /// A new process took the sockets over and serves: drain (answers
    /// false if a drain had already started).
    TakenOver(u32, mpsc::Sender<bool>),
}

/// Runs the gateway for `config` until a termination signal has drained
/// it. Reloads read the config from `source`; without one (the demo) a
/// reload rebuilds the running config (certificate files read again).
pub fn serve(config: Config, source: Option<ConfigSource>) -> Result<(), String> {
    serve_upgrading(config, source, UpgradePaths::default())
}

/// `serve`, offering the sockets to a new process and/or taking them from
/// an old one (`UpgradePaths`).
pub fn serve_upgrading(config: Config, source: Option<ConfigSource>, upgrade: UpgradePaths) -> Result<(), String> {
    let config = Arc::new(config);
    let placement = Placement::from_server(&config.server);
    let n = placement.shards;

    // Signal handlers go in before anything is announced: a SIGHUP or
    // SIGTERM that follows the first `listening` line must find them (the
    // default action would kill the process). Signals queue in the channel
    // until the loop below reads them.
    let (events, inbox) = mpsc::channel::<Event>();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let signal_events = events.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            // SIGUSR1 (logrotate): the access log writer reopens its file.
            if signal == SIGUSR1 {
                access_log_writer::reopen();
                continue;
            }
            if signal_events.send(Event::Signal(signal)).is_err() {
                break;
            }
        }
    });

    if let Some(a) = &config.access_log {
        access_log_writer::start_or_retarget(&a.target);
    }

    // Certificates and keys before any socket: a bad file fails startup
    // before anything is announced as listening.
    let mut ids = Identities::default();
    let (generation, _) = Generation::build(1, config.clone(), &mut ids, None)?;
    let generation = Arc::new(generation);

    // The old process's sockets, when this one upgrades it. Taken before
    // anything is bound: its listeners' addresses are in use.
    let mut takeover = match &upgrade.take_from {
        Some(path) => Some(upgrade::take::take(path)?),
        None => None,
    };

    // Bind everything first: a busy or bad address fails startup cleanly.
    let mut inventory = Inventory::default();
    let bound = bind_listeners(&config, &generation.listeners, n, takeover.as_mut().map(|(i, _)| i), &mut inventory)?;
    for (index, l) in config.listeners.iter().enumerate() {
        let taken = bound.taken[index];
        tracing::info!(listener = %l.name, addr = %bound.addrs[index], shards = n, taken_over = taken, "listening");
    }
    let per_shard = bound.per_shard;
    let counters: Arc<Vec<Arc<ShardCounters>>> = Arc::new((0..n).map(|_| Arc::new(ShardCounters::default())).collect());
    let drain_requests = events.clone();
    let lifecycle =
        Arc::new(Lifecycle::new(n, Some(Arc::new(move || drain_requests.send(Event::DrainRequested).is_ok()))));
    // The admin threads' view of the running config (token, `/config`):
    // replaced after every reload that takes effect.
    let admin_config = Arc::new(arc_swap::ArcSwap::new(config.clone()));
    let admin_generation = Arc::new(arc_swap::ArcSwap::new(generation.clone()));
    if let Some(a) = &config.admin {
        let listener = match takeover.as_mut().and_then(|(i, _)| i.claim_admin(a.listen)) {
            Some(listener) => listener,
            None => std::net::TcpListener::bind(a.listen)
                .map_err(|e| format!("admin: cannot listen on {}: {e}", a.listen))?,
        };
        inventory.add_admin(a.listen, &listener).map_err(|e| format!("admin: cannot keep its socket: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let requests = events.clone();
        let hook: admin::ReloadHook = Arc::new(move || {
            let (tx, rx) = mpsc::channel();
            requests.send(Event::Reload(tx)).map_err(|_| vec!["the process is stopping".to_string()])?;
            match rx.recv_timeout(ADMIN_RELOAD_WAIT) {
                Ok(outcome) => outcome.map(|r| admin::ReloadOutcome { generation: r.generation, warnings: r.warnings }),
                Err(_) => Err(vec!["no answer from the main thread".to_string()]),
            }
        });
        let state = admin::AdminState {
            shards: counters.clone(),
            config: admin_config.clone(),
            generation: admin_generation.clone(),
            load: Default::default(),
            reload: Some(hook),
            lifecycle: lifecycle.clone(),
        };
        admin::spawn(listener, state).map_err(|e| e.to_string())?;
        tracing::info!(listener = %"admin", addr = %bound, "listening");
    }
    if let Some((inherited, _)) = &takeover {
        for entry in inherited.unclaimed() {
            tracing::info!(addr = %entry.bound, "upgrade: the new config has no listener for this socket of the old process; not served");
        }
    }
    let inventory = Arc::new(std::sync::Mutex::new(inventory));

    let mut controls = Vec::with_capacity(n);
    for (id, listeners) in per_shard.into_iter().enumerate() {
        let (tx, rx) = async_channel::bounded::<Control>(CONTROL_QUEUE);
        controls.push(tx);
        let generation = generation.clone();
        let shard_counters = counters[id].clone();
        let serving = events.clone();
        let shard_lifecycle = lifecycle.clone();
        let handle = spawn_shard(id, &placement, move || {
            // Called once the runtime is built (the last start-up step
            // that can fail); the listening sockets have been in the
            // kernel's listen state since the bind above.
            shard_lifecycle.shard_serving();
            let _ = serving.send(Event::ShardServing);
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

    let mut service = ServiceStatus::new(Notifier::from_env(), n);
    // Taking over: the old process drains once every shard here serves.
    // Events that come meanwhile are handled after.
    let mut deferred = std::collections::VecDeque::new();
    if let Some((_, handover)) = takeover.take() {
        let mut serving = 0;
        while serving < n {
            match inbox.recv() {
                Ok(Event::ShardServing) => serving += 1,
                Ok(Event::ShardExited(id, result)) => {
                    let why = result.err().unwrap_or_else(|| "exited".to_string());
                    return Err(format!("shard {id}: {why}; the old process keeps serving"));
                }
                Ok(other) => deferred.push_back(other),
                Err(_) => return Err("the shards' events stopped".to_string()),
            }
        }
        match handover.serving() {
            Ok(()) => tracing::info!("upgrade: serving; the old process drains"),
            Err(e) => tracing::warn!("upgrade: {e}"),
        }
        service.took_over();
        for _ in 0..n {
            service.shard_serving();
        }
    }
    if let Some(path) = &upgrade.offer_at {
        let requests = events.clone();
        let hook: upgrade::offer::TakeoverHook = Box::new(move |pid| {
            let (tx, rx) = mpsc::channel();
            requests.send(Event::TakenOver(pid, tx)).is_ok() && rx.recv_timeout(TAKEOVER_ANSWER_WAIT).unwrap_or(false)
        });
        upgrade::offer::start(path, inventory.clone(), lifecycle.clone(), hook)
            .map_err(|e| format!("upgrade socket {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "offering the listening sockets for a binary upgrade");
    }

    // The admin hook keeps a sender: the loop below ends by counting
    // shard exits, not by the channel closing.
    drop(events);

    // Active health checks: one prober for the process, however many shards.
    let mut prober = crate::upstream::health::prober::Prober::default();
    prober.install(&generation);
    let mut state = Running { generation, ids, controls, inventory, prober };
    let read_config = move || match &source {
        Some(source) => source(),
        None => Ok((*config).clone()),
    };
    let mut running = n;
    let mut draining = false;
    let mut failure: Option<String> = None;
    let start_drain = |state: &Running, service: &mut ServiceStatus, handed_to: Option<u32>| {
        lifecycle.set_draining();
        state.inventory.lock().unwrap_or_else(|p| p.into_inner()).clear();
        match handed_to {
            Some(pid) => service.handed_over(pid),
            None => service.stopping(),
        }
        let deadline = Instant::now() + state.generation.config.server.drain_timeout;
        for c in &state.controls {
            let _ = c.try_send(Control::Drain { deadline });
        }
    };
    while running > 0 {
        let event = match deferred.pop_front() {
            Some(event) => Ok(event),
            None => next_event(&inbox, &mut service),
        };
        match event {
            Ok(Event::Signal(SIGHUP)) if !draining => {
                if reload_logged("SIGHUP", &mut state, read_config()).is_ok() {
                    admin_config.store(state.generation.config.clone());
                    admin_generation.store(state.generation.clone());
                }
            }
            Ok(Event::Reload(reply)) => {
                let outcome = match draining {
                    true => Err(vec!["the process is draining".to_string()]),
                    false => reload_logged("POST /reload", &mut state, read_config()),
                };
                if outcome.is_ok() {
                    admin_config.store(state.generation.config.clone());
                    admin_generation.store(state.generation.clone());
                }
                let _ = reply.send(outcome);
            }
            Ok(Event::Signal(SIGHUP)) => {}
            Ok(Event::Signal(SIGUSR2)) => match (&upgrade.offer_at, draining) {
                (_, true) => tracing::warn!("SIGUSR2: draining; no upgrade"),
                (None, false) => tracing::warn!("SIGUSR2: no --upgrade-socket to hand the sockets over on; ignored"),
                (Some(path), false) => {
                    if let Err(e) = upgrade::successor::start(path) {
                        tracing::error!(error = %e, "SIGUSR2: cannot start the new process; this one keeps serving");
                    }
                }
            },
            Ok(Event::Signal(_) | Event::DrainRequested) if draining => {}
            Ok(Event::Signal(signal)) => {
                draining = true;
                let drain_timeout = state.generation.config.server.drain_timeout;
                tracing::info!(signal, drain_timeout = ?drain_timeout, "draining");
                start_drain(&state, &mut service, None);
            }
            Ok(Event::DrainRequested) => {
                draining = true;
                let drain_timeout = state.generation.config.server.drain_timeout;
                tracing::info!(drain_timeout = ?drain_timeout, "POST /drain: draining");
                start_drain(&state, &mut service, None);
            }
            Ok(Event::TakenOver(pid, reply)) => {
                if !draining {
                    draining = true;
                    tracing::info!(new_pid = pid, "upgrade: process {pid} serves the listeners; draining");
                    start_drain(&state, &mut service, Some(pid));
                    let _ = reply.send(true);
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
                    failure.get_or_insert(format!("shard {id} exited unexpectedly"));
                    start_drain(&state, &mut service, None);
                }
            }
            Err(_) => break,
        }
    }
    tracing::info!("all shards stopped");
    access_log_writer::finish(ACCESS_LOG_FINISH_WAIT);
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

/// Runs a reload and logs its outcome: every error of a refused one.
fn reload_logged(
    origin: &str,
    state: &mut Running,
    config: Result<Config, crate::config::ConfigErrors>,
) -> Result<Reloaded, Vec<String>> {
    let outcome = reload(state, config);
    match &outcome {
        Ok(r) => {
            // A new access log target takes effect with the generation
            // (the writer switches files; format and fields come with the
            // generation itself).
            if let Some(a) = &state.generation.config.access_log {
                access_log_writer::start_or_retarget(&a.target);
            }
            tracing::info!(generation = r.generation, "{origin}: config reloaded")
        }
        Err(errors) => {
            for e in errors {
                tracing::error!("{origin}: {e}");
            }
            tracing::error!(errors = errors.len(), "{origin}: reload refused; the running config keeps serving");
        }
    }
    outcome
}
