//! The process's life as the admin API shows it and steers it:
//! `GET /ready` and `POST /drain`.
//!
//! `GET /ready` answers 200 once every shard serves (its listening sockets
//! are in the kernel's listen state from before the shard starts, and its
//! accept loops run) and the process is not draining; 503 while shards are
//! still starting and from the moment a drain starts (SIGTERM, SIGINT,
//! `POST /drain`, or a binary upgrade that handed the sockets to a new
//! process). A load balancer that health-checks `/ready` stops sending new
//! connections to a draining process before its listeners go away.
//!
//! `POST /drain` starts the same graceful drain as SIGTERM (through the
//! main thread) and answers 202 at once: the drain goes on after the
//! answer, and the process exits when it is done.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Asks the main thread to start a drain (the same as SIGTERM). Returns
/// false when the main thread is gone.
pub type DrainHook = Arc<dyn Fn() -> bool + Send + Sync>;

/// What `/ready` reads: written by the main thread and the shards'
/// start-up, read by the admin threads. Plain atomics: a few writes per
/// process lifetime.
pub struct Lifecycle {
    shards: usize,
    serving: AtomicUsize,
    draining: AtomicBool,
    drain: Option<DrainHook>,
}

impl Lifecycle {
    pub fn new(shards: usize, drain: Option<DrainHook>) -> Lifecycle {
        Lifecycle { shards, serving: AtomicUsize::new(0), draining: AtomicBool::new(false), drain }
    }

    /// A shard's runtime is up and its accept loops start.
    pub fn shard_serving(&self) {
        self.serving.fetch_add(1, Ordering::AcqRel);
    }

    /// The drain has started (for whatever reason): `/ready` says 503 from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Every shard serves and no drain has started.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.draining() {
            Err("draining")
        } else if self.serving.load(Ordering::Acquire) < self.shards {
            Err("starting")
        } else {
            Ok(())
        }
    }
}

/// `GET /ready`: (status line, JSON body).
pub fn ready(lifecycle: &Lifecycle) -> (&'static str, String) {
    match lifecycle.ready() {
        Ok(()) => ("200 OK", "{\"ready\":true}\n".to_string()),
        Err(reason) => ("503 Service Unavailable", format!("{{\"ready\":false,\"reason\":\"{reason}\"}}\n")),
    }
}

/// `POST /drain`: starts the drain (once; a second call is answered the
/// same way and changes nothing). (status line, JSON body).
pub fn drain(lifecycle: &Lifecycle) -> (&'static str, String) {
    let Some(hook) = &lifecycle.drain else {
        return ("404 Not Found", "{\"error\":\"not found\"}\n".to_string());
    };
    if lifecycle.draining() || hook() {
        ("202 Accepted", "{\"draining\":true}\n".to_string())
    } else {
        ("503 Service Unavailable", "{\"error\":\"the process is stopping\"}\n".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn ready_only_when_every_shard_serves_and_until_the_drain() {
        let l = Lifecycle::new(2, None);
        assert_eq!(ready(&l).0, "503 Service Unavailable");
        assert!(ready(&l).1.contains("\"starting\""));
        l.shard_serving();
        assert_eq!(l.ready(), Err("starting"));
        l.shard_serving();
        assert_eq!(ready(&l), ("200 OK", "{\"ready\":true}\n".to_string()));
        l.set_draining();
        assert_eq!(ready(&l).0, "503 Service Unavailable");
        assert!(ready(&l).1.contains("\"draining\""));
    }

    #[test]
    fn drain_asks_the_main_thread_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let l = Lifecycle::new(1, Some(Arc::new(move || counted.fetch_add(1, Ordering::AcqRel) < 10)));
        assert_eq!(drain(&l).0, "202 Accepted");
        l.set_draining();
        assert_eq!(drain(&l).0, "202 Accepted");
        assert_eq!(calls.load(Ordering::Acquire), 1, "a drain under way is not asked for again");
        assert_eq!(drain(&Lifecycle::new(1, None)).0, "404 Not Found");
        let gone = Lifecycle::new(1, Some(Arc::new(|| false)));
        assert_eq!(drain(&gone).0, "503 Service Unavailable");
    }
}
