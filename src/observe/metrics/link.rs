//! How the admin thread gets a shard's metrics: it asks over a bounded
//! channel, the shard answers between requests with a snapshot
//! ([`answer_asks`], a task of the shard's runtime), and the admin waits
//! for the answers of all shards together, at most [`ANSWER_TIMEOUT`].
//!
//! Nothing here runs on the request path: a shard that is never scraped
//! pays nothing, and the only cross-thread operations are the channel's
//! (once per scrape). A shard whose answering task has stopped is not
//! asked; one that does not answer in time (stuck in a long CPU burst, or
//! not started yet: a scrape right after start waits for it) is left out
//! of that scrape. Either way it is counted in
//! `shardgate_metrics_shards_missing`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::series::{Scope, ShardSnapshot};
use crate::admin::ShardCounters;

/// How long a scrape waits for the shards' answers (all together).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// Asks queued per shard: one per admin connection at most.
const ASKS_QUEUED: usize = crate::admin::MAX_ADMIN_CONNECTIONS;

/// One scrape's question to one shard.
pub struct Ask {
    pub scope: Scope,
    pub reply: mpsc::SyncSender<ShardSnapshot>,
}

/// Both ends of a shard's ask channel; one per shard, kept in its
/// `ShardCounters` (the one thing already shared by a shard and the
/// admin thread).
pub struct MetricsLink {
    tx: async_channel::Sender<Ask>,
    rx: async_channel::Receiver<Ask>,
    /// The shard's answering task runs or is about to (true from the
    /// start: an ask queued before the task's first poll is answered then,
    /// so a scrape right after start sees every shard).
    serving: AtomicBool,
}

impl Default for MetricsLink {
    fn default() -> MetricsLink {
        let (tx, rx) = async_channel::bounded(ASKS_QUEUED);
        MetricsLink { tx, rx, serving: AtomicBool::new(true) }
    }
}

impl std::fmt::Debug for MetricsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLink").field("serving", &self.serving.load(Ordering::Relaxed)).finish()
    }
}

impl MetricsLink {
    /// The shard stops answering (its main task ends; monoio does not
    /// drop the tasks of a runtime that stops, so the answering task cannot
    /// say so itself): later scrapes do not wait for it.
    pub fn stop_serving(&self) {
        self.serving.store(false, Ordering::Release);
    }

    /// Queues an ask; `None` when the shard does not serve asks or its
    /// queue is full.
    fn ask(&self, scope: Scope) -> Option<mpsc::Receiver<ShardSnapshot>> {
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.try_send(Ask { scope, reply }).ok().map(|()| answer)
    }
}

/// The shard side: answers every ask with `snapshot(scope)`, until the
/// shard's runtime ends.
pub async fn answer_asks(link: Arc<ShardCounters>, snapshot: impl Fn(Scope) -> ShardSnapshot) {
    link.metrics.serving.store(true, Ordering::Release);
    while let Ok(ask) = link.metrics.rx.recv().await {
        // The admin may have given up waiting: nothing to do then.
        let _ = ask.reply.try_send(snapshot(ask.scope));
    }
}

/// The admin side: every shard's snapshot, in shard order; `None` for a
/// shard that did not answer within [`ANSWER_TIMEOUT`].
pub fn gather(shards: &[Arc<ShardCounters>], scope: Scope) -> Vec<Option<ShardSnapshot>> {
    let asked: Vec<_> = shards.iter().map(|s| s.metrics.ask(scope)).collect();
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    asked
        .into_iter()
        .map(|answer| answer?.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_shard_answers_a_silent_one_times_out_a_stopped_one_is_not_asked() {
        // Asked before its answering task runs: answered once it does.
        let early = Arc::new(ShardCounters::default());
        let asked = {
            let early = early.clone();
            std::thread::spawn(move || gather(&[early], Scope::Stats))
        };
        std::thread::sleep(Duration::from_millis(50));
        let link = early.clone();
        std::thread::spawn(move || {
            crate::shard::spawn::block_on(crate::config::IoDriver::Auto, 64, || async move {
                let answering = monoio::spawn(answer_asks(link, |_| ShardSnapshot { shard: 3, ..Default::default() }));
                monoio::time::sleep(Duration::from_millis(200)).await;
                drop(answering);
            })
        });
        assert_eq!(asked.join().unwrap()[0].as_ref().map(|s| s.shard), Some(3), "asked before the task started");

        let shards: Vec<Arc<ShardCounters>> = (0..3).map(|_| Arc::new(ShardCounters::default())).collect();
        let link = shards[0].clone();
        let counters = shards[0].clone();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let shard = std::thread::spawn(move || {
            crate::shard::spawn::block_on(crate::config::IoDriver::Auto, 64, || async move {
                let answering = monoio::spawn(answer_asks(link, |_| ShardSnapshot { shard: 7, ..Default::default() }));
                let _ = stopped.recv().await;
                drop(answering);
                // What the shard's main task does as it ends.
                counters.metrics.stop_serving();
            })
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !shards[0].metrics.serving.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Shard 1 never answers; shard 2 has stopped.
        shards[2].metrics.stop_serving();
        let started = Instant::now();
        let got = gather(&shards, Scope::Stats);
        assert_eq!(got[0].as_ref().map(|s| s.shard), Some(7));
        assert!(got[1].is_none() && got[2].is_none());
        assert!(started.elapsed() >= ANSWER_TIMEOUT, "waited for shard 1 up to the timeout");
        let started = Instant::now();
        assert!(gather(&shards[2..], Scope::Stats)[0].is_none());
        assert!(started.elapsed() < ANSWER_TIMEOUT, "a stopped shard is not waited for");

        stop.send_blocking(()).unwrap();
        shard.join().unwrap().unwrap();
        let started = Instant::now();
        assert!(gather(&shards[..1], Scope::Stats)[0].is_none());
        assert!(started.elapsed() < ANSWER_TIMEOUT, "a stopped shard is not waited for");
    }
}
