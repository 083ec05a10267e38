//! The span exporter: one thread per process that takes batches from the
//! shards over a bounded queue and POSTs each to the collector as
//! OTLP/HTTP JSON (`Content-Type: application/json`).
//!
//! Off the data path by construction: a shard hands a batch over with
//! `try_send` and never waits. A full queue drops the batch on the shard;
//! a collector that refuses the connection, is slow past `export_timeout`
//! (connect, write and read each) or answers with a non-2xx status drops
//! it on the exporter thread. Both are counted in [`STATS`] (`/stats`,
//! `"tracing"`), and a failing collector is logged at most once per
//! [`LOG_INTERVAL`].
//!
//! One plain HTTP/1.1 request per batch, `Connection: close`: batches go
//! out at most every `flush_interval` per shard, so connection reuse
//! would save little and add a state machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::OtlpExport;

/// A failing collector is logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The collector's status line must arrive within this many bytes.
const MAX_STATUS_LINE_BYTES: usize = 1024;

/// Spans from one shard for one collector, JSON-encoded and
/// comma-separated (`span.rs`).
pub struct Batch {
    pub export: Arc<OtlpExport>,
    pub spans: Vec<u8>,
    pub count: usize,
}

/// Export counters, process-wide. Written on the exporter thread, and by
/// a shard only when it drops a batch (never per request).
#[derive(Debug, Default)]
pub struct TraceStats {
    pub spans_exported: AtomicU64,
    /// The exporter's queue was full: the shard dropped the batch.
    pub spans_dropped_queue_full: AtomicU64,
    /// The collector could not be reached in time or refused the batch.
    pub spans_dropped_export_failed: AtomicU64,
}

pub static STATS: TraceStats = TraceStats {
    spans_exported: AtomicU64::new(0),
    spans_dropped_queue_full: AtomicU64::new(0),
    spans_dropped_export_failed: AtomicU64::new(0),
};

impl TraceStats {
    /// The `"tracing"` object of `/stats`.
    pub fn json(&self) -> String {
        let full = self.spans_dropped_queue_full.load(Relaxed);
        let failed = self.spans_dropped_export_failed.load(Relaxed);
        format!(
            "{{\"spans_exported\":{},\"spans_dropped\":{},\"spans_dropped_queue_full\":{full},\"spans_dropped_export_failed\":{failed}}}",
            self.spans_exported.load(Relaxed),
            full + failed
        )
    }
}

static QUEUE: OnceLock<SyncSender<Batch>> = OnceLock::new();

/// Hands a batch to the exporter thread (started by the first batch,
/// with room for `queue_size` batches), or drops it if the queue is full.
pub fn submit(batch: Batch, queue_size: usize) {
    let queue = QUEUE.get_or_init(|| start(queue_size, &STATS));
    match queue.try_send(batch) {
        Ok(()) => {}
        Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
            STATS.spans_dropped_queue_full.fetch_add(b.count as u64, Relaxed);
        }
    }
}

/// Starts an exporter thread fed by the returned queue.
pub fn start(queue_size: usize, stats: &'static TraceStats) -> SyncSender<Batch> {
    let (tx, rx) = sync_channel(queue_size);
    std::thread::Builder::new()
        .name("span-exporter".into())
        .spawn(move || run(rx, stats))
        .expect("spawn the span exporter thread");
    tx
}

fn run(rx: Receiver<Batch>, stats: &TraceStats) {
    let mut last_logged: Option<Instant> = None;
    let mut body = Vec::new();
    while let Ok(batch) = rx.recv() {
        body.clear();
        envelope(&mut body, &batch);
        match post(&batch.export, &body) {
            Ok(()) => {
                stats.spans_exported.fetch_add(batch.count as u64, Relaxed);
            }
            Err(e) => {
                stats.spans_dropped_export_failed.fetch_add(batch.count as u64, Relaxed);
                if last_logged.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                    last_logged = Some(Instant::now());
                    tracing::warn!(collector = %batch.export.url, "span export failed, spans dropped: {e}");
                }
            }
        }
    }
}

/// `ExportTraceServiceRequest` with one resource (the service) and one
/// scope (shardgate) around the batch's spans.
pub fn envelope(out: &mut Vec<u8>, batch: &Batch) {
    out.extend_from_slice(
        b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":",
    );
    super::span::push_str(out, batch.export.service_name.as_bytes());
    out.extend_from_slice(b"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"shardgate\",\"version\":\"");
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\"},\"spans\":[");
    out.extend_from_slice(&batch.spans);
    out.extend_from_slice(b"]}]}]}");
}

/// One POST; `Ok` on a 2xx answer.
fn post(export: &OtlpExport, body: &[u8]) -> Result<(), String> {
    let t = export.timeout;
    let mut stream = TcpStream::connect_timeout(&export.addr, t).map_err(|e| format!("connect: {e}"))?;
    stream.set_write_timeout(Some(t)).and_then(|()| stream.set_read_timeout(Some(t))).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: shardgate/{}\r\n\r\n",
        export.path,
        export.host,
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| format!("write: {e}"))?;
    // Only the status line matters (a read timeout bounds a silent
    // collector; the whole answer is not waited for).
    let mut buf = [0u8; MAX_STATUS_LINE_BYTES];
    let mut len = 0;
    while !buf[..len].contains(&b'\n') {
        if len == buf.len() {
            return Err("no status line".into());
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err("closed before answering".into()),
            Ok(n) => len += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&buf[..len]);
    let status = line.split(' ').nth(1).and_then(|s| s.trim().parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        Some(s) => Err(format!("collector answered {s}")),
        None => Err("not an HTTP answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    fn export_to(addr: std::net::SocketAddr, timeout: Duration) -> Arc<OtlpExport> {
        Arc::new(OtlpExport {
            url: format!("http://{addr}"),
            addr,
            host: addr.to_string(),
            path: "/v1/traces".into(),
            service_name: "svc \"q\"".into(),
            timeout,
        })
    }

    fn batch(export: &Arc<OtlpExport>, spans: &[&str]) -> Batch {
        Batch { export: export.clone(), spans: spans.join(",").into_bytes(), count: spans.len() }
    }

    fn leak() -> &'static TraceStats {
        Box::leak(Box::default())
    }

    /// A collector on a real socket answering `status`; sends each
    /// request (head and body) it read on the channel.
    fn collector(status: &'static str) -> (std::net::SocketAddr, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = conn.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if got.len() >= i + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                let _ = conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
                let _ = tx.send(String::from_utf8_lossy(&got).to_string());
            }
        });
        (addr, rx)
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn posts_a_valid_otlp_json_request() {
        let (addr, requests) = collector("200 OK");
        let stats = leak();
        let queue = start(4, stats);
        let export = export_to(addr, Duration::from_secs(2));
        queue.try_send(batch(&export, &["{\"name\":\"a\"}", "{\"name\":\"b\"}"])).unwrap();
        let request = requests.recv_timeout(Duration::from_secs(10)).unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Content-Type: application/json\r\n"));
        assert!(head.contains(&format!("Host: {addr}\r\n")));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(rs["resource"]["attributes"][0]["value"]["stringValue"], "svc \"q\"");
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "shardgate");
        let names: Vec<&str> =
            rs["scopeSpans"][0]["spans"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(wait_for(|| stats.spans_exported.load(Relaxed) == 2));
        assert_eq!(stats.spans_dropped_export_failed.load(Relaxed), 0);
    }

    #[test]
    fn collector_errors_refusals_and_silence_drop_spans() {
        // A 503 answer.
        let (addr, _requests) = collector("503 Service Unavailable");
        let stats = leak();
        let queue = start(4, stats);
        queue.try_send(batch(&export_to(addr, Duration::from_secs(2)), &["{}", "{}", "{}"])).unwrap();
        assert!(wait_for(|| stats.spans_dropped_export_failed.load(Relaxed) == 3));

        // Nobody listening.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        queue.try_send(batch(&export_to(closed, Duration::from_secs(2)), &["{}"])).unwrap();
        assert!(wait_for(|| stats.spans_dropped_export_failed.load(Relaxed) == 4));

        // A collector that accepts and never answers: the read timeout.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        queue.try_send(batch(&export_to(silent.local_addr().unwrap(), Duration::from_millis(200)), &["{}"])).unwrap();
        assert!(wait_for(|| stats.spans_dropped_export_failed.load(Relaxed) == 5));
        assert_eq!(stats.spans_exported.load(Relaxed), 0);
        assert!(stats.json().contains("\"spans_dropped\":5,"), "{}", stats.json());
    }
}
