//! `GET /shards`: each shard's load now: open connections, requests and
//! connections so far, and requests per second over the last second or
//! so, computed here on the admin thread from the shards' counters.
//!
//! ```text
//! {"window_seconds":1.02,"shards":[{"shard":0,"active":3,"accepted":10,
//!   "requests":5120,"requests_per_second":4980.4},…]}
//! ```
//! The rate needs two readings: each scrape keeps a sample of the
//! counters (at most one per [`SAMPLE_SPACING`], for [`SAMPLES_KEPT`]) and
//! compares the counters now with the newest sample at least
//! [`RATE_WINDOW`] old (or the oldest there is). The first scrape has
//! nothing to compare with: its rates and window are `null`.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ShardCounters;

/// The span a rate is measured over, at least (unless the admin has not
/// been asked for that long).
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Scrapes closer together than this add no sample.
pub const SAMPLE_SPACING: Duration = Duration::from_millis(100);
/// Samples kept: with one per [`SAMPLE_SPACING`], ten seconds of them.
pub const SAMPLES_KEPT: usize = 100;

/// Counters read at one instant: per shard, requests so far.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    requests: Vec<u64>,
}

/// Recent readings of the shards' request counters, shared by the admin
/// connection threads (a lock on the admin side only: shards never see it).
#[derive(Debug, Default)]
pub struct LoadWindow {
    samples: Mutex<VecDeque<Sample>>,
}

impl LoadWindow {
    /// Keeps `now` as a sample (spacing permitting) and returns the one to
    /// measure rates against.
    fn compare_with(&self, now: &Sample) -> Option<Sample> {
        let mut samples = self.samples.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Samples of another shard count cannot be compared (never happens
        // in one process; cheap to guard).
        samples.retain(|s| s.requests.len() == now.requests.len());
        let base = samples
            .iter()
            .rev()
            .find(|s| now.at.saturating_duration_since(s.at) >= RATE_WINDOW)
            .or_else(|| samples.front())
            .filter(|s| now.at > s.at)
            .cloned();
        if samples.back().is_none_or(|last| now.at.saturating_duration_since(last.at) >= SAMPLE_SPACING) {
            if samples.len() == SAMPLES_KEPT {
                samples.pop_front();
            }
            samples.push_back(now.clone());
        }
        base
    }
}

/// The `/shards` document.
pub fn shards_json(shards: &[Arc<ShardCounters>], window: &LoadWindow) -> String {
    shards_json_at(shards, window, Instant::now())
}

fn shards_json_at(shards: &[Arc<ShardCounters>], window: &LoadWindow, at: Instant) -> String {
    let snapshots: Vec<_> = shards.iter().map(|c| c.snapshot()).collect();
    let now = Sample { at, requests: snapshots.iter().map(|s| s.requests).collect() };
    let base = window.compare_with(&now);
    let seconds = base.as_ref().map(|b| at.duration_since(b.at).as_secs_f64());
    let mut out = String::with_capacity(64 + 128 * shards.len());
    match seconds {
        Some(s) => {
            let _ = write!(out, "{{\"window_seconds\":{s:.3},\"shards\":[");
        }
        None => out.push_str("{\"window_seconds\":null,\"shards\":["),
    }
    for (i, s) in snapshots.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"shard\":{i},\"active\":{},\"accepted\":{},\"requests\":{},\"requests_per_second\":",
            s.active, s.accepted, s.requests
        );
        match (&base, seconds) {
            (Some(b), Some(secs)) => {
                let _ = write!(out, "{:.1}", s.requests.saturating_sub(b.requests[i]) as f64 / secs);
            }
            _ => out.push_str("null"),
        }
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(shards: &[Arc<ShardCounters>], window: &LoadWindow, at: Instant) -> serde_json::Value {
        let text = shards_json_at(shards, window, at);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn rates_compare_with_a_sample_at_least_a_window_old() {
        let shards: Vec<Arc<ShardCounters>> = (0..2).map(|_| Arc::new(ShardCounters::default())).collect();
        let window = LoadWindow::default();
        let t0 = Instant::now();
        shards[0].connection_opened();
        let first = doc(&shards, &window, t0);
        assert!(first["window_seconds"].is_null() && first["shards"][0]["requests_per_second"].is_null());
        assert_eq!(first["shards"][0]["active"], 1);
        assert_eq!(first["shards"][0]["accepted"], 1);

        for _ in 0..300 {
            shards[0].request();
        }
        // Half a second later: only the first sample to compare with.
        let half = doc(&shards, &window, t0 + Duration::from_millis(500));
        assert_eq!(half["window_seconds"], 0.5);
        assert_eq!(half["shards"][0]["requests_per_second"], 600.0);
        assert_eq!(half["shards"][1]["requests_per_second"], 0.0);

        for _ in 0..100 {
            shards[0].request();
        }
        // 1.5 s after the start: the newest sample a second old is t0 +
        // 0.5 s (300 requests then, 400 now).
        let later = doc(&shards, &window, t0 + Duration::from_millis(1500));
        assert_eq!(later["window_seconds"], 1.0);
        assert_eq!(later["shards"][0]["requests"], 400);
        assert_eq!(later["shards"][0]["requests_per_second"], 100.0);
    }

    #[test]
    fn close_scrapes_add_no_sample_and_the_window_stays_bounded() {
        let shards = vec![Arc::new(ShardCounters::default())];
        let window = LoadWindow::default();
        let t0 = Instant::now();
        for i in 0..10 {
            doc(&shards, &window, t0 + Duration::from_millis(i));
        }
        assert_eq!(window.samples.lock().unwrap().len(), 1, "ten scrapes within 10 ms: one sample");
        for i in 1..=(SAMPLES_KEPT as u64 + 50) {
            doc(&shards, &window, t0 + SAMPLE_SPACING * i as u32);
        }
        assert_eq!(window.samples.lock().unwrap().len(), SAMPLES_KEPT);
    }
}
