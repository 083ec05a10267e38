//! When requests are sent and from when their latency counts.
//!
//! Closed loop: a connection sends its next request as soon as the previous
//! response is complete; latency runs from the actual send.
//!
//! Open loop (`--rate`): each connection owns a fixed schedule, intended
//! send times `first + k * interval`. Latency runs from the *intended* time
//! (coordinated omission correction, as wrk2 does): if the server stalls and
//! the connection is still busy when a request was due, that request waits
//! and the wait is part of its latency, instead of silently vanishing from
//! the histogram.
//!
//! monoio's timer has 1 ms ticks and rounds twice: the deadline up to the
//! next tick, "now" down to the current one, so a sleep ends anywhere from
//! its deadline to 2 ms after it. Sleeping until the intended time would
//! make requests late by up to 2 ms (measured: p50 0.06 ms closed loop
//! became 0.7 ms open loop) and charge that to the server. So a connection
//! sets its timer `TIMER_SLACK` early and sends as soon as it wakes, and
//! latency runs from the *earlier* of intended and actual send: late sends
//! pay for their lateness, early ones are not credited with time they did
//! not wait. The cost is send-time jitter of at most `TIMER_SLACK`; the
//! rate over any longer span is exact.

use std::time::{Duration, Instant};

/// Worst-case lateness of a monoio sleep (two 1 ms roundings); see the
/// module comment.
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Longest time requests still in flight at the end are given to finish,
/// capped further by `--timeout`. Bounds the run whatever the server does.
pub const MAX_DRAIN: Duration = Duration::from_secs(2);

/// The phases of a run, shared by every thread.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    pub start: Instant,
    /// End of warmup: requests intended before this are not recorded.
    pub measure_from: Instant,
    /// No request is sent at or after this.
    pub end: Instant,
    /// In-flight requests are abandoned here; every thread is done by then.
    pub hard_stop: Instant,
}

impl Timeline {
    pub fn new(start: Instant, warmup: Duration, duration: Duration, timeout: Duration) -> Self {
        let measure_from = start + warmup;
        let end = measure_from + duration;
        Timeline { start, measure_from, end, hard_stop: end + timeout.min(MAX_DRAIN) }
    }

    pub fn records(&self, intended: Instant) -> bool {
        intended >= self.measure_from && intended < self.end
    }
}

/// One connection's open-loop schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    first: Instant,
    interval_ns: u64,
    next: u64,
}

impl Schedule {
    /// Spread `rate` (requests/s, all connections together) over
    /// `connections`: each gets every `connections`-th slot of the global
    /// sequence, offset by its index, so sends interleave evenly instead of
    /// arriving in bursts of `connections` at once.
    pub fn for_connection(start: Instant, rate: f64, connections: usize, index: usize) -> Self {
        let global_ns = 1e9 / rate;
        Schedule {
            first: start + Duration::from_nanos((global_ns * index as f64) as u64),
            interval_ns: ((global_ns * connections as f64) as u64).max(1),
            next: 0,
        }
    }

    /// Intended send time of the `k`-th request.
    pub fn intended(&self, k: u64) -> Instant {
        self.first + Duration::from_nanos(self.interval_ns.saturating_mul(k))
    }

    pub fn next_intended(&self) -> Instant {
        self.intended(self.next)
    }

    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Slots not yet sent whose intended time falls in `[from, to)`: at the
    /// end of a run, the requests a stalled connection never got to send.
    pub fn unsent_in(&self, from: Instant, to: Instant) -> u64 {
        // First slot index at or after `t`.
        let slot_at = |t: Instant| -> u64 {
            let since = t.saturating_duration_since(self.first).as_nanos();
            since.div_ceil(self.interval_ns as u128) as u64
        };
        let lo = slot_at(from).max(self.next);
        let hi = slot_at(to);
        hi.saturating_sub(lo)
    }
}

/// When to set the timer for a request intended at `intended`:
/// `TIMER_SLACK` early, or `None` to send right away.
pub fn wake_at(intended: Instant, now: Instant) -> Option<Instant> {
    let wake = intended.checked_sub(TIMER_SLACK)?;
    (wake > now).then_some(wake)
}

/// Latency of a request intended at `intended`, actually sent at `sent`,
/// completed at `done`. See the module comment for why it is the earlier
/// of the two start times.
pub fn latency(intended: Instant, sent: Instant, done: Instant) -> Duration {
    done.saturating_duration_since(intended.min(sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn intended_times_are_start_plus_k_intervals() {
        let t0 = Instant::now();
        // 1000 req/s over 4 connections: each connection every 4 ms,
        // connection 2 offset by 2 ms.
        let mut s = Schedule::for_connection(t0, 1000.0, 4, 2);
        assert_eq!(s.intended(1) - s.intended(0), 4 * MS);
        for k in 0..5u32 {
            assert_eq!(s.next_intended(), t0 + 2 * MS + 4 * k * MS);
            s.advance();
        }
        assert_eq!(s.intended(1_000), t0 + 2 * MS + 4_000 * MS);
    }

    #[test]
    fn connections_interleave_to_the_total_rate() {
        let t0 = Instant::now();
        let conns = 3;
        let mut all: Vec<Instant> = (0..conns)
            .flat_map(|i| {
                let s = Schedule::for_connection(t0, 300.0, conns, i);
                (0..10).map(move |k| s.intended(k))
            })
            .collect();
        all.sort();
        for w in all.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap.abs_diff(Duration::from_nanos(3_333_333)) < Duration::from_micros(2));
        }
    }

    #[test]
    fn late_sender_pays_for_the_wait() {
        let t0 = Instant::now();
        let intended = t0 + 10 * MS;
        // Connection was busy: sent 30 ms late, answered 1 ms after send.
        let sent = intended + 30 * MS;
        assert_eq!(latency(intended, sent, sent + MS), 31 * MS);
    }

    #[test]
    fn early_sender_is_not_credited() {
        let t0 = Instant::now();
        let intended = t0 + 10 * MS;
        let sent = intended - Duration::from_micros(700);
        let done = sent + Duration::from_micros(100);
        assert_eq!(latency(intended, sent, done), Duration::from_micros(100));
        // Closed loop: intended == sent.
        assert_eq!(latency(sent, sent, done), Duration::from_micros(100));
    }

    #[test]
    fn wakes_timer_slack_early_or_sends_now() {
        let now = Instant::now();
        assert_eq!(wake_at(now + 5 * MS, now), Some(now + 3 * MS));
        assert_eq!(wake_at(now + Duration::from_micros(1900), now), None);
        assert_eq!(wake_at(now, now + MS), None);
    }

    #[test]
    fn unsent_counts_missed_slots_in_window() {
        let t0 = Instant::now();
        // 100 req/s on one connection: slots every 10 ms at 0, 10, 20 ...
        let mut s = Schedule::for_connection(t0, 100.0, 1, 0);
        let (from, to) = (t0 + 20 * MS, t0 + 100 * MS);
        // Nothing sent: slots 2..=9 are in the window.
        assert_eq!(s.unsent_in(from, to), 8);
        for _ in 0..5 {
            s.advance();
        }
        // Slots 0..=4 sent; 5..=9 missed.
        assert_eq!(s.unsent_in(from, to), 5);
        for _ in 0..10 {
            s.advance();
        }
        assert_eq!(s.unsent_in(from, to), 0);
    }

    #[test]
    fn timeline_phases() {
        let t0 = Instant::now();
        let tl = Timeline::new(t0, 2 * 1000 * MS, 10 * 1000 * MS, 5 * 1000 * MS);
        assert_eq!(tl.measure_from, t0 + 2000 * MS);
        assert_eq!(tl.end, t0 + 12_000 * MS);
        assert_eq!(tl.hard_stop, tl.end + MAX_DRAIN);
        assert!(!tl.records(t0 + 1999 * MS));
        assert!(tl.records(t0 + 2000 * MS));
        assert!(!tl.records(tl.end));
        // A short timeout shortens the drain.
        let tl = Timeline::new(t0, MS, MS, 100 * MS);
        assert_eq!(tl.hard_stop, tl.end + 100 * MS);
    }
}
