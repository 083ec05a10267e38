//! The admin listener: a small blocking HTTP server on its own thread (off
//! the shards' cores' hot path) that reads the shards' counters on scrape.
//!
//! `GET /stats` -> `{"shards":[{"shard":0,"accepted":N,"requests":N,"active":N},…]}`.
//! The metrics issue will add Prometheus output and histograms here.

pub mod counters;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub use counters::ShardCounters;

/// How long the admin server waits for a scrape request to arrive.
const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest admin request head read.
const ADMIN_MAX_REQUEST_BYTES: usize = 8192;

/// Serves the admin endpoints on `listener` until the process exits.
pub fn spawn(listener: TcpListener, shards: Arc<Vec<Arc<ShardCounters>>>) -> std::io::Result<()> {
    std::thread::Builder::new().name("shardgate-admin".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Err(e) = serve(stream, &shards) {
                tracing::debug!(error = %e, "admin request failed");
            }
        }
    })?;
    Ok(())
}

fn serve(mut stream: TcpStream, shards: &[Arc<ShardCounters>]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ADMIN_READ_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || buf.len() + n > ADMIN_MAX_REQUEST_BYTES {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line_end = buf.iter().position(|&b| b == b'\r').unwrap_or(0);
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/stats") => ("200 OK", stats_json(shards)),
        ("GET", _) => ("404 Not Found", "{\"error\":\"not found\"}\n".to_string()),
        _ => ("405 Method Not Allowed", "{\"error\":\"method not allowed\"}\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn stats_json(shards: &[Arc<ShardCounters>]) -> String {
    let rows: Vec<String> = shards
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = c.snapshot();
            format!(
                "{{\"shard\":{i},\"accepted\":{},\"requests\":{},\"active\":{},\"upstream_connects\":{},\"upstream_reused\":{},\"upstream_retries\":{},\"tls_handshakes\":{},\"tls_resumed\":{},\"tls13\":{},\"tls12\":{},\"tls_failures\":{},\"idle_without_buffer\":{}}}",
                s.accepted,
                s.requests,
                s.active,
                s.upstream_connects,
                s.upstream_reused,
                s.upstream_retries,
                s.tls_handshakes,
                s.tls_resumed,
                s.tls13,
                s.tls12,
                s.tls_failures,
                s.idle_without_buffer
            )
        })
        .collect();
    format!("{{\"shards\":[{}]}}\n", rows.join(","))
}
