//! The prober: one thread per process (started with the first generation
//! that has a `[clusters.health_check]`) with its own small monoio
//! runtime (the epoll driver: a few sockets, off the shards' cores'
//! rings), running one task per checked endpoint. Each endpoint is probed
//! by exactly one task, whatever the shard count.
//!
//! A task probes every `interval` (+ up to `jitter`), counts consecutive
//! passes and failures, and moves the endpoint between healthy and
//! unhealthy at the thresholds (from unknown, the first pass makes it
//! healthy, as Envoy; `unhealthy_threshold` failures make it unhealthy).
//! After every probe it stores the state into the newest generation's
//! [`ActiveHealth`](super::ActiveHealth) table, which the shards read on
//! their next request: a change reaches every shard within one interval.
//!
//! Reload: the supervisor hands every new generation over
//! ([`Prober::install`]). An endpoint kept with the same address, TLS
//! settings and check keeps its task and its state; a changed one gets a
//! new task that starts from the state the table holds (from unknown when
//! its address or TLS settings changed); a removed one's task stops. Kept
//! tasks store their state into the new table at once, so nothing a probe
//! found while the new table was built is lost.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::probe::{next_delay, probe, request_bytes, Target};
use super::Active;
use crate::config::health_check::{HealthCheck, Probe};
use crate::shard::generation::Generation;

/// Generations waiting for the prober (a reload waits for room).
const INSTALL_QUEUE: usize = 4;

/// Probes sent and probes failed, process-wide (one writer: the prober
/// thread).
pub struct ProbeCounters {
    probes: AtomicU64,
    failures: AtomicU64,
}

pub static PROBE_COUNTERS: ProbeCounters = ProbeCounters { probes: AtomicU64::new(0), failures: AtomicU64::new(0) };

impl ProbeCounters {
    /// (probes, failed probes) since the process started.
    pub fn get(&self) -> (u64, u64) {
        (self.probes.load(Relaxed), self.failures.load(Relaxed))
    }

    fn count(&self, failed: bool) {
        self.probes.store(self.probes.load(Relaxed) + 1, Relaxed);
        if failed {
            self.failures.store(self.failures.load(Relaxed) + 1, Relaxed);
        }
    }
}

/// The supervisor's handle on the prober thread.
#[derive(Default)]
pub struct Prober {
    /// `None` until a generation has health checks.
    sender: Option<async_channel::Sender<Arc<Generation>>>,
}

impl Prober {
    /// Hands `generation` to the prober (starting its thread the first
    /// time a generation has checks).
    pub fn install(&mut self, generation: &Arc<Generation>) {
        if self.sender.is_none() {
            if !generation.config.clusters.iter().any(|c| c.health_check.is_some()) {
                return;
            }
            let (tx, rx) = async_channel::bounded(INSTALL_QUEUE);
            let started = std::thread::Builder::new().name("health-prober".into()).spawn(move || {
                let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build();
                match runtime {
                    Ok(mut rt) => rt.block_on(run(rx)),
                    Err(e) => tracing::error!(error = %e, "health checks cannot run: no runtime for the prober"),
                }
            });
            if let Err(e) = started {
                tracing::error!(error = %e, "health checks cannot run: cannot start the prober thread");
                return;
            }
            self.sender = Some(tx);
        }
        if let Some(tx) = &self.sender {
            let _ = tx.send_blocking(generation.clone());
        }
    }
}

/// One endpoint's probing task, as the prober keeps it.
struct Task {
    /// What it probes with: a change starts a new task.
    settings: u32,
    check: HealthCheck,
    host: String,
    state: Rc<ProbeState>,
}

/// A task's state, shared with the prober (for republishing and stop).
struct ProbeState {
    slot: usize,
    active: Cell<Active>,
    stopped: Cell<bool>,
}

/// The prober's main task: reconciles its probing tasks with each
/// generation it is given.
async fn run(generations: async_channel::Receiver<Arc<Generation>>) {
    let current: Rc<RefCell<Arc<Generation>>> = match generations.recv().await {
        Ok(g) => Rc::new(RefCell::new(g)),
        Err(_) => return,
    };
    let mut tasks: HashMap<usize, Task> = HashMap::new();
    let mut seed = std::process::id() as u64;
    reconcile(&current, &mut tasks, &mut seed);
    while let Ok(generation) = generations.recv().await {
        *current.borrow_mut() = generation;
        reconcile(&current, &mut tasks, &mut seed);
    }
}

fn reconcile(current: &Rc<RefCell<Arc<Generation>>>, tasks: &mut HashMap<usize, Task>, seed: &mut u64) {
    let generation = current.borrow().clone();
    let mut wanted: HashMap<usize, ()> = HashMap::new();
    for (c, cluster) in generation.config.clusters.iter().enumerate() {
        let Some(check) = &cluster.health_check else {
            continue;
        };
        for (i, id) in generation.endpoints[c].iter().enumerate() {
            let slot = id.slot();
            wanted.insert(slot, ());
            let host = cluster.proxy_hosts[i].clone();
            if let Some(task) = tasks.get(&slot) {
                if task.settings == id.settings() && &task.check == check && task.host == host {
                    // Kept: its state goes into the new table now.
                    generation.health.set(slot, task.state.active.get());
                    continue;
                }
                task.state.stopped.set(true);
                if task.settings != id.settings() {
                    generation.health.set(slot, Active::Unknown);
                }
            }
            let state =
                Rc::new(ProbeState { slot, active: Cell::new(generation.health.get(slot)), stopped: Cell::new(false) });
            let target = Target {
                addr: cluster.endpoints[i],
                tls: generation.tls.clusters[c].as_ref().map(|t| (t.config.clone(), t.server_names[i].clone())),
                request: match &check.probe {
                    Probe::Http(h) => Some(request_bytes(h, &host)),
                    Probe::Tcp => None,
                },
            };
            *seed = seed.wrapping_add(slot as u64 + 1);
            let first = next_delay(Duration::ZERO, check.jitter, seed);
            let name = format!("{}/{}", cluster.name, cluster.endpoints[i]);
            monoio::spawn(probe_loop(check.clone(), target, state.clone(), current.clone(), first, *seed, name));
            tasks.insert(slot, Task { settings: id.settings(), check: check.clone(), host, state });
        }
    }
    tasks.retain(|slot, task| {
        let keep = wanted.contains_key(slot);
        if !keep {
            task.state.stopped.set(true);
            generation.health.set(task.state.slot, Active::Unknown);
        }
        keep
    });
}

/// Consecutive results, for the thresholds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Streak {
    passes: u32,
    failures: u32,
}

/// The next state after one probe: `Ok` passed, `Err` failed.
pub fn step(check: &HealthCheck, active: Active, streak: &mut Streak, passed: bool) -> Active {
    if passed {
        streak.passes += 1;
        streak.failures = 0;
        match active {
            Active::Unknown => Active::Healthy,
            Active::Unhealthy if streak.passes >= check.healthy_threshold => Active::Healthy,
            other => other,
        }
    } else {
        streak.failures += 1;
        streak.passes = 0;
        match active {
            Active::Unknown | Active::Healthy if streak.failures >= check.unhealthy_threshold => Active::Unhealthy,
            other => other,
        }
    }
}

async fn probe_loop(
    check: HealthCheck,
    target: Target,
    state: Rc<ProbeState>,
    current: Rc<RefCell<Arc<Generation>>>,
    first: Duration,
    mut seed: u64,
    name: String,
) {
    let mut streak = Streak::default();
    let mut delay = first;
    loop {
        monoio::time::sleep(delay).await;
        if state.stopped.get() {
            return;
        }
        let result = probe(&check, &target).await;
        if state.stopped.get() {
            return;
        }
        PROBE_COUNTERS.count(result.is_err());
        let was = state.active.get();
        let now = step(&check, was, &mut streak, result.is_ok());
        if now != was {
            match &result {
                Err(why) => {
                    tracing::warn!(endpoint = %name, state = now.as_str(), reason = %why, "active health check")
                }
                Ok(()) => tracing::info!(endpoint = %name, state = now.as_str(), "active health check"),
            }
        } else if let Err(why) = &result {
            tracing::debug!(endpoint = %name, reason = %why, "health probe failed");
        }
        state.active.set(now);
        current.borrow().health.set(state.slot, now);
        delay = next_delay(check.interval, check.jitter, &mut seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::health_check::Probe;

    #[test]
    fn thresholds_move_the_state() {
        let check = HealthCheck {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            jitter: Duration::ZERO,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        };
        let mut s = Streak::default();
        let mut a = Active::Unknown;
        a = step(&check, a, &mut s, true);
        assert_eq!(a, Active::Healthy, "the first pass from unknown");
        for (passed, want) in [
            (false, Active::Healthy),
            (false, Active::Healthy),
            (true, Active::Healthy),
            (false, Active::Healthy),
            (false, Active::Healthy),
            (false, Active::Unhealthy),
            (true, Active::Unhealthy),
            (false, Active::Unhealthy),
            (true, Active::Unhealthy),
            (true, Active::Healthy),
        ] {
            a = step(&check, a, &mut s, passed);
            assert_eq!(a, want);
        }
        let mut s = Streak::default();
        let mut a = Active::Unknown;
        for _ in 0..3 {
            a = step(&check, a, &mut s, false);
        }
        assert_eq!(a, Active::Unhealthy, "from unknown: the unhealthy threshold");
    }
}
