//! Tracing: W3C Trace Context propagation and OTLP span export.
//!
//! Where it sits in a request's life:
//!
//! ```text
//! head parsed -> client address -> request id -> decide (here)   once per request
//!   -> ... -> upstream head: traceparent (trace id, the proxy's span id
//!             as parent-id), tracestate passed on          http1/encode.rs
//!   -> record -> ShardTrace::record: a sampled request's span, encoded into
//!             the shard's batch                              span.rs
//!   -> full batch or flush_interval -> bounded queue -> exporter thread
//!             -> POST /v1/traces (OTLP/HTTP JSON)            export.rs
//! ```
//!
//! - [`context`]: the `traceparent`/`tracestate` rules (sans-io).
//! - [`span`]: a finished request as an OTLP span, JSON-encoded.
//! - [`export`]: the exporter thread, its queue and its counters.
//!
//! The proxy is a hop: it continues a valid incoming trace (from any
//! client, or only from trusted proxies, `[tracing] trust_incoming`),
//! keeping the caller's sampled flag, or starts one sampled at
//! `sample_ratio`; either way the upstream gets a `traceparent` naming the
//! proxy's own span, and a client's invalid one is replaced, never
//! forwarded. Exporting never costs a request latency: a shard only
//! appends to its own buffer and hands a full batch over with `try_send`;
//! a full queue or a collector that is down or slow drops spans (counted
//! in [`export::STATS`], shown in `/stats`).

pub mod context;
pub mod export;
pub mod span;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use context::{combine_tracestate, hex_from, parse_traceparent, write_traceparent, TRACEPARENT_LEN};
use export::Batch;

use crate::config::{OtlpExport, Tracing, TrustIncoming};
use crate::http1::encode::TraceFields;
use crate::http1::parse::{HeaderKind, RequestHead};
use crate::observe::record::Record;

/// One request's trace, decided once right after its request id.
#[derive(Debug, Clone)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The proxy's own span: the parent-id the upstream sees.
    pub span_id: [u8; 8],
    /// The caller's span, when an incoming trace was continued.
    pub parent_id: Option<[u8; 8]>,
    /// Spans of sampled requests are exported; the flag goes upstream.
    pub sampled: bool,
    /// `trace_id` in lowercase hex (the access log's `trace_id`).
    pub trace_id_hex: [u8; 32],
    /// The `traceparent` sent upstream.
    traceparent: [u8; TRACEPARENT_LEN],
    /// The caller's `tracestate`, checked and combined; empty when none
    /// (or it was invalid, or the trace was not continued).
    pub tracestate: Vec<u8>,
}

impl TraceContext {
    fn new(trace_id: [u8; 16], span_id: [u8; 8], parent_id: Option<[u8; 8]>, sampled: bool) -> TraceContext {
        let mut traceparent = [0u8; TRACEPARENT_LEN];
        write_traceparent(&mut traceparent, &trace_id, &span_id, sampled);
        let mut trace_id_hex = [0u8; 32];
        hex_from(&mut trace_id_hex, &trace_id);
        TraceContext { trace_id, span_id, parent_id, sampled, trace_id_hex, traceparent, tracestate: Vec::new() }
    }

    /// What the upstream head carries (`ForwardInfo::trace`).
    pub fn fields(&self) -> TraceFields<'_> {
        TraceFields { traceparent: &self.traceparent, tracestate: &self.tracestate }
    }

    pub fn traceparent(&self) -> &[u8] {
        &self.traceparent
    }
}

/// Decides a request's trace from its head: `None` when tracing is off.
/// `peer_trusted`: the TCP peer is in the listener's `trusted_proxies`.
pub fn decide(
    shard: &ShardTrace,
    config: &Tracing,
    head: &RequestHead,
    buf: &[u8],
    peer_trusted: bool,
) -> Option<TraceContext> {
    if !config.enabled {
        return None;
    }
    let trusted = match config.trust_incoming {
        TrustIncoming::Any => true,
        TrustIncoming::Trusted => peer_trusted,
        TrustIncoming::None => false,
    };
    let span_id = shard.span_id();
    if trusted {
        if let Some(parent) = incoming(head, buf) {
            let mut t = TraceContext::new(parent.trace_id, span_id, Some(parent.parent_id), parent.sampled());
            let states = head.headers.iter().filter(|h| h.kind == HeaderKind::Tracestate).map(|h| h.value.of(buf));
            combine_tracestate(states, &mut t.tracestate);
            return Some(t);
        }
    }
    let sampled = shard.sample(config.sample_ratio);
    Some(TraceContext::new(shard.trace_id(), span_id, None, sampled))
}

/// The one valid `traceparent` of the head; several fields make it
/// invalid (§3.2.1: a vendor receiving more than one MUST treat it as
/// invalid, there is no way to choose).
fn incoming(head: &RequestHead, buf: &[u8]) -> Option<context::TraceParent> {
    let mut fields = head.headers.iter().filter(|h| h.kind == HeaderKind::Traceparent);
    let first = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    parse_traceparent(first.value.of(buf))
}

/// A shard's tracing state: its id generator and its batch of spans
/// waiting for the exporter (`!Send`, touched only by its shard).
pub struct ShardTrace {
    rng: Cell<u64>,
    pending: Rc<RefCell<Pending>>,
}

#[derive(Default)]
struct Pending {
    /// JSON-encoded spans, comma-separated.
    spans: Vec<u8>,
    count: usize,
    /// Where they go (the generation's collector when they were made).
    export: Option<Arc<OtlpExport>>,
    /// A flush task is waiting for `flush_interval`.
    timer_armed: bool,
}

impl Default for ShardTrace {
    fn default() -> ShardTrace {
        // Distinct per shard and per process: the clock, and a counter
        // for shards created in the same nanosecond.
        static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let seed = now ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ShardTrace { rng: Cell::new(seed), pending: Rc::default() }
    }
}

impl ShardTrace {
    /// splitmix64: ids must be unique in practice, not unpredictable.
    fn next(&self) -> u64 {
        let s = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn nonzero(&self) -> u64 {
        loop {
            let v = self.next();
            if v != 0 {
                return v;
            }
        }
    }

    fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.nonzero().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }

    fn span_id(&self) -> [u8; 8] {
        self.nonzero().to_be_bytes()
    }

    /// True for a share `ratio` of calls (0 never, 1 always).
    fn sample(&self, ratio: f64) -> bool {
        ratio >= 1.0 || ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < ratio
    }

    /// The record step's part: a sampled request's span joins the batch.
    pub fn record(&self, r: &Record<'_>) {
        let Some(trace) = r.trace.filter(|t| t.sampled) else {
            return;
        };
        let config = &r.generation.config().tracing;
        let Some(export) = &config.export else {
            return;
        };
        let span = span::Span::of(r, trace, SystemTime::now(), Instant::now());
        let mut p = self.pending.borrow_mut();
        if p.export.as_ref().is_some_and(|e| !Arc::ptr_eq(e, export)) {
            // A reload changed the collector: what was made for the old
            // one goes there.
            flush(&mut p, config.queue_size);
        }
        p.export = Some(export.clone());
        if p.count > 0 {
            p.spans.push(b',');
        }
        span.encode(&mut p.spans);
        p.count += 1;
        if p.count >= config.batch_size {
            flush(&mut p, config.queue_size);
        } else if !p.timer_armed {
            p.timer_armed = true;
            let pending = self.pending.clone();
            let (interval, queue_size) = (config.flush_interval, config.queue_size);
            monoio::spawn(async move {
                monoio::time::sleep(interval).await;
                let mut p = pending.borrow_mut();
                p.timer_armed = false;
                flush(&mut p, queue_size);
            });
        }
    }
}

/// Hands the pending spans to the exporter (or counts them dropped).
fn flush(p: &mut Pending, queue_size: usize) {
    if p.count == 0 {
        return;
    }
    let Some(export) = p.export.clone() else {
        return;
    };
    let batch = Batch { export, spans: std::mem::take(&mut p.spans), count: std::mem::take(&mut p.count) };
    export::submit(batch, queue_size);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::parse::{parse_request, HeadLimits};

    const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 8192, max_headers: 64, max_uri_bytes: 1024 };
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn on(trust: TrustIncoming, ratio: f64) -> Tracing {
        Tracing { enabled: true, trust_incoming: trust, sample_ratio: ratio, ..Tracing::default() }
    }

    fn decide_on(config: &Tracing, headers: &str, peer_trusted: bool) -> Option<TraceContext> {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        let mut head = RequestHead::default();
        assert!(parse_request(raw.as_bytes(), &LIMITS, &mut head).unwrap());
        decide(&ShardTrace::default(), config, &head, raw.as_bytes(), peer_trusted)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn off_decides_nothing() {
        assert!(decide_on(&Tracing::default(), &format!("traceparent: {PARENT}\r\n"), true).is_none());
    }

    #[test]
    fn a_valid_incoming_trace_is_continued_with_a_new_parent_id() {
        let t =
            decide_on(&on(TrustIncoming::Any, 0.0), &format!("traceparent: {PARENT}\r\ntracestate: a=1\r\n"), false)
                .unwrap();
        assert_eq!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(&t.trace_id_hex[..], b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&t.parent_id.unwrap()), "00f067aa0ba902b7");
        // The caller's sampled flag wins over a ratio of 0.
        assert!(t.sampled);
        let sent = String::from_utf8(t.traceparent().to_vec()).unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-01"), "{sent}");
        assert_ne!(&sent[36..52], "00f067aa0ba902b7", "the proxy's own span id goes upstream");
        assert_eq!(&sent[36..52], hex(&t.span_id));
        assert_eq!(t.fields().tracestate, b"a=1");

        // An unsampled caller stays unsampled at ratio 1.
        let unsampled = PARENT.replace("-01", "-00");
        let t = decide_on(&on(TrustIncoming::Any, 1.0), &format!("traceparent: {unsampled}\r\n"), false).unwrap();
        assert!(!t.sampled && t.traceparent().ends_with(b"-00"));
    }

    #[test]
    fn trust_decides_whose_trace_is_continued() {
        let h = format!("traceparent: {PARENT}\r\ntracestate: a=1\r\n");
        let continued = |c: &Tracing, peer_trusted| decide_on(c, &h, peer_trusted).unwrap().parent_id.is_some();
        assert!(continued(&on(TrustIncoming::Trusted, 1.0), true));
        assert!(!continued(&on(TrustIncoming::Trusted, 1.0), false));
        assert!(!continued(&on(TrustIncoming::None, 1.0), true));
        assert!(continued(&on(TrustIncoming::Any, 1.0), false));
        // An ignored trace's tracestate goes with it.
        let t = decide_on(&on(TrustIncoming::Trusted, 1.0), &h, false).unwrap();
        assert!(t.tracestate.is_empty());
        assert_ne!(hex(&t.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_or_repeated_traceparent_starts_a_new_trace() {
        let config = on(TrustIncoming::Any, 1.0);
        for headers in [
            format!("traceparent: {}\r\n", PARENT.to_uppercase()),
            format!("traceparent: {PARENT}\r\ntraceparent: {PARENT}\r\n"),
            "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n".to_owned(),
            format!("traceparent: {PARENT}\r\ntracestate: Bad=1\r\n"),
        ] {
            let t = decide_on(&config, &headers, true).unwrap();
            if headers.contains("Bad=1") {
                // A valid traceparent with an invalid tracestate: the trace
                // goes on, the tracestate is dropped.
                assert!(t.parent_id.is_some() && t.tracestate.is_empty());
                continue;
            }
            assert!(t.parent_id.is_none(), "{headers}");
            assert!(t.trace_id != [0; 16] && !t.traceparent().starts_with(&PARENT.as_bytes()[..35]), "{headers}");
            assert!(t.tracestate.is_empty());
        }
    }

    #[test]
    fn sampling_ratio_applies_to_started_traces() {
        let shard = ShardTrace::default();
        let sampled = |ratio: f64| (0..10_000).filter(|_| shard.sample(ratio)).count();
        assert_eq!(sampled(0.0), 0);
        assert_eq!(sampled(1.0), 10_000);
        let quarter = sampled(0.25);
        assert!((2_000..3_000).contains(&quarter), "{quarter}");
        // Ids are fresh and non-zero.
        let a = shard.trace_id();
        assert_ne!(a, shard.trace_id());
        assert_ne!(shard.span_id(), [0; 8]);
    }
}
