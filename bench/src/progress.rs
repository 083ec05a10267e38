//! The once-a-second progress line on stderr.
//!
//! Worker threads bump two counters each; the main thread reads them every
//! second. Each thread's counters sit on their own cache line and only that
//! thread writes them, so counting costs no cross-core traffic on the hot
//! path — only the once-a-second read crosses cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One thread's running totals (warmup included).
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct ThreadProgress {
    completed: AtomicU64,
    errors: AtomicU64,
}

impl ThreadProgress {
    /// Called once per finished request by the owning thread.
    pub fn add(&self, error: bool) {
        // Relaxed: a reader only needs eventually-correct counts, and the
        // final numbers come from `Stats`, not from here.
        self.completed.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Totals over all threads at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub completed: u64,
    pub errors: u64,
}

pub fn snapshot(threads: &[ThreadProgress]) -> Snapshot {
    threads.iter().fold(Snapshot::default(), |acc, t| Snapshot {
        completed: acc.completed + t.completed.load(Ordering::Relaxed),
        errors: acc.errors + t.errors.load(Ordering::Relaxed),
    })
}

/// `[  3s] measure  12345 req/s  errors 0`: the counts of one interval.
pub fn line(elapsed: Duration, warming_up: bool, prev: Snapshot, now: Snapshot, interval: Duration) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let rate = (now.completed - prev.completed) as f64 / secs;
    let errors = now.errors - prev.errors;
    let phase = if warming_up { "warmup " } else { "measure" };
    format!("[{:>4}s] {phase} {rate:>10.0} req/s  errors {errors}", elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_interval() {
        let threads: Vec<ThreadProgress> = (0..2).map(|_| ThreadProgress::default()).collect();
        let before = snapshot(&threads);
        threads[0].add(false);
        threads[1].add(true);
        threads[1].add(false);
        let after = snapshot(&threads);
        assert_eq!(after, Snapshot { completed: 3, errors: 1 });
        let l = line(Duration::from_secs(3), false, before, after, Duration::from_secs(1));
        assert_eq!(l, "[   3s] measure          3 req/s  errors 1");
    }

    #[test]
    fn counters_do_not_share_cache_lines() {
        assert!(std::mem::align_of::<ThreadProgress>() >= 64);
    }
}
