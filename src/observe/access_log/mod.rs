//! Access logs: one line per finished request, written without ever
//! making a shard wait.
//!
//! Where it sits: the record step (`observe/record.rs`) calls
//! [`ShardAccessLog::log`] once per request. The line is formatted into
//! the shard's own buffer (no lock, no syscall); the shard's periodic task
//! ([`ShardAccessLog::flush`], every sweep) or a buffer past
//! [`FLUSH_BYTES`] hands the whole buffer to the process's writer thread
//! (`writer.rs`) over a bounded channel. When that channel is full (the
//! disk or the pipe is slower than the traffic), the shard drops the
//! buffer and counts its lines (`access_log_dropped` in `/stats`,
//! [`names::ACCESS_LOG_DROPPED_LINES_TOTAL`](crate::observe::names)).
//!
//! - `line.rs`: a record as a JSON or `combined` line.
//! - `escape.rs`: request bytes made safe for either format.
//! - `clock.rs`: wall-clock timestamps.
//! - `writer.rs`: the writer thread, reopen on SIGUSR1, failure reports.
//!
//! What is logged comes from the request's generation (`[access_log]`), so
//! a reload changes format, fields and sampling from the next request on.

mod clock;
mod escape;
mod json_names;
mod line;
pub mod writer;

use std::cell::{Cell, RefCell};

use crate::admin::ShardCounters;
use crate::config::access_log::AccessLog;
use crate::observe::record::Record;
use clock::WallTime;
use json_names::JsonNames;
use writer::{Batch, Sink};

/// A shard's buffer is handed to the writer once it holds this much,
/// without waiting for the next periodic flush.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Room past `FLUSH_BYTES` for the line that crosses it.
const LINE_ROOM: usize = 4096;

/// A shard's access log state (`!Send`).
pub struct ShardAccessLog {
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
    /// The names of the generation last logged for, quoted for JSON.
    names: RefCell<Option<JsonNames>>,
    /// Taken from the writer the first time there is something to hand
    /// over (the writer may start after the shard: a reload that adds
    /// `[access_log]`).
    sink: RefCell<Option<Sink>>,
    /// xorshift64 state for sampling (not secret, no syscall).
    rng: Cell<u64>,
}

impl Default for ShardAccessLog {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        ShardAccessLog {
            buf: RefCell::new(Vec::new()),
            lines: Cell::new(0),
            names: RefCell::new(None),
            sink: RefCell::new(None),
            rng: Cell::new(seed | 1),
        }
    }
}

impl ShardAccessLog {
    /// Formats `r`'s line into the buffer, when the request's generation
    /// has an access log and the request is sampled; hands the buffer over
    /// once it passes [`FLUSH_BYTES`].
    pub fn log(&self, r: &Record<'_>, counters: &ShardCounters) {
        let config = r.generation.config();
        let Some(log) = config.access_log.as_ref() else { return };
        if !self.sampled(r, log) {
            return;
        }
        let time = WallTime::before_now(r.outcome.timings.total);
        let mut names = self.names.borrow_mut();
        if !names.as_ref().is_some_and(|n| n.is_for(config)) {
            *names = Some(JsonNames::of(config));
        }
        let Some(names) = names.as_ref() else { return };
        let full = {
            let mut buf = self.buf.borrow_mut();
            line::write_line(&mut buf, r, log, names, time);
            buf.len() >= FLUSH_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush(counters);
        }
    }

    /// Failed requests (status 400 and up, or an error) are always
    /// logged; successful ones with probability `sample`.
    fn sampled(&self, r: &Record<'_>, log: &AccessLog) -> bool {
        let failed = r.outcome.status >= 400 || r.outcome.error.is_some() || r.outcome.status == 0;
        if failed || log.sample >= 1.0 {
            return true;
        }
        if log.sample <= 0.0 {
            return false;
        }
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        // 53 random bits as a fraction in [0, 1).
        ((x >> 11) as f64 / (1u64 << 53) as f64) < log.sample
    }

    /// Hands the buffered lines to the writer thread, or drops and counts
    /// them when its queue is full. Called from the shard's periodic task
    /// and at shard exit; never waits.
    pub fn flush(&self, counters: &ShardCounters) {
        let lines = self.lines.get();
        if lines == 0 {
            return;
        }
        let mut sink = self.sink.borrow_mut();
        if sink.is_none() {
            *sink = writer::sink();
        }
        // The next lines go to a buffer of the flush size at once (not
        // one regrown by doubling from empty, copying as it goes).
        let bytes = std::mem::replace(&mut *self.buf.borrow_mut(), Vec::with_capacity(FLUSH_BYTES + LINE_ROOM));
        self.lines.set(0);
        let rejected = match sink.as_ref() {
            Some(s) => s.offer(Batch { bytes, lines }).err(),
            None => Some(Batch { bytes, lines }),
        };
        if let Some(mut batch) = rejected {
            counters.access_log_dropped(batch.lines);
            // Keep the allocation for the next lines.
            batch.bytes.clear();
            let mut buf = self.buf.borrow_mut();
            if buf.capacity() < batch.bytes.capacity() {
                *buf = batch.bytes;
            }
        }
    }

    /// Lines waiting in the buffer (tests).
    pub fn buffered(&self) -> (u64, Vec<u8>) {
        (self.lines.get(), self.buf.borrow().clone())
    }
}

#[cfg(test)]
mod tests;
