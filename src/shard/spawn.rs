//! Starting shards: one OS thread each, pinned to its CPU when pinning is
//! on, each running its own monoio runtime.
//!
//! Driver choice: `uring` insists on io_uring, `epoll` uses the legacy
//! driver, `auto` tries io_uring and falls back to epoll with one log line
//! (io_uring can be refused by seccomp, old kernels or
//! `kernel.io_uring_disabled`).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::{IoDriver, Server};

/// How many shards to run and where.
#[derive(Debug, Clone)]
pub struct Placement {
    pub shards: usize,
    /// CPU of shard i, when pinning.
    pub cpus: Option<Vec<usize>>,
    pub driver: IoDriver,
    pub ring_entries: u32,
}

impl Placement {
    pub fn from_server(server: &Server) -> Placement {
        let available = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let shards = server.shards.unwrap_or_else(|| server.cpus.as_ref().map_or(available, |c| c.len())).max(1);
        let cpus = server.pin.then(|| {
            let list: Vec<usize> = server.cpus.clone().unwrap_or_else(|| (0..available).collect());
            (0..shards).map(|i| list[i % list.len()]).collect()
        });
        Placement { shards, cpus, driver: server.io_driver, ring_entries: server.ring_entries }
    }
}

static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// An io_uring runtime with `IORING_SETUP_COOP_TASKRUN` (Linux 5.19+):
/// completions are run when the shard next enters the kernel instead of
/// interrupting it with an inter-processor signal. A shard owns its ring and
/// enters the kernel every loop, so nothing waits longer; measured here it
/// cut the proxy's CPU per request by about a quarter at a fixed request
/// rate (docs/benchmarks.md). Older kernels refuse the flag: the ring is
/// then built without it.
fn uring_runtime(entries: u32) -> io::Result<monoio::Runtime<TimeDriver<IoUringDriver>>> {
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(entries)
        .uring_builder(coop)
        .enable_timer()
        .build()
        .or_else(|_| RuntimeBuilder::<IoUringDriver>::new().with_entries(entries).enable_timer().build())
}

/// Spawns shard `id`'s thread; `task` builds the shard's main future on
/// that thread (shard state is `!Send`, so it is created there).
pub fn spawn_shard<F, Fut>(id: usize, placement: &Placement, task: F) -> io::Result<JoinHandle<io::Result<()>>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cpu = placement.cpus.as_ref().map(|c| c[id]);
    let driver = placement.driver;
    let entries = placement.ring_entries;
    std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
        if let Some(cpu) = cpu {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                tracing::warn!(shard = id, cpu, "could not pin shard to its CPU; running unpinned");
            }
        }
        block_on(driver, entries, task)
    })
}

/// Builds the runtime for `driver` on this thread and runs `task` to completion.
pub fn block_on<F, Fut>(driver: IoDriver, entries: u32, task: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if driver != IoDriver::Epoll {
        match uring_runtime(entries) {
            Ok(mut rt) => {
                rt.block_on(task());
                return Ok(());
            }
            Err(e) if driver == IoDriver::Uring => {
                return Err(io::Error::new(e.kind(), format!("io_uring runtime could not be set up: {e}")));
            }
            Err(e) => {
                if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "io_uring unavailable, falling back to epoll");
                }
            }
        }
    }
    let mut rt: monoio::Runtime<TimeDriver<LegacyDriver>> =
        RuntimeBuilder::<LegacyDriver>::new().with_entries(entries).enable_timer().build()?;
    rt.block_on(task());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn server(shards: Option<usize>, cpus: Option<Vec<usize>>, pin: bool) -> Server {
        Server {
            shards,
            cpus,
            pin,
            io_driver: IoDriver::Auto,
            ring_entries: 256,
            drain_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn shards_default_to_cpu_list_and_wrap() {
        let p = Placement::from_server(&server(None, Some(vec![2, 3]), true));
        assert_eq!(p.shards, 2);
        assert_eq!(p.cpus, Some(vec![2, 3]));
        let p = Placement::from_server(&server(Some(3), Some(vec![1]), true));
        assert_eq!(p.cpus, Some(vec![1, 1, 1]));
        let p = Placement::from_server(&server(Some(2), None, false));
        assert_eq!(p.cpus, None);
    }

    #[test]
    fn both_drivers_run_a_task() {
        for driver in [IoDriver::Auto, IoDriver::Epoll] {
            let mut ran = false;
            block_on(driver, 64, || async {
                monoio::time::sleep(Duration::from_millis(1)).await;
                ran = true;
            })
            .unwrap();
            assert!(ran);
        }
    }
}
