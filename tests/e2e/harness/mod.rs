//! The test harness: a real proxy process, real upstream servers, a raw
//! socket client.
//!
//! - [`proxy`] starts the `shardgate` binary and learns its listen addresses.
//! - [`config`] writes the TOML a test's proxy runs from.
//! - [`upstream`] is a std-thread HTTP/1.1 server that records everything it
//!   receives and answers the way each test asks, misbehaviour included
//!   (late, cut short, reset, silent, malformed; see `tests/e2e/faults`).
//! - [`client`] writes raw bytes and reads responses (Content-Length,
//!   chunked, close-delimited).
//! - [`pki`] makes certificates (rcgen) and writes their PEM files;
//!   [`tls`] is a TLS client, a TLS upstream and the TLS counters.
//! - [`pattern`] is the deterministic byte stream the large-body tests send
//!   and verify.

#![allow(dead_code)]

pub mod chromium;
pub mod client;
pub mod config;
pub mod pattern;
pub mod pki;
pub mod proc_status;
pub mod proxy;
pub mod tempdir;
pub mod tls;
pub mod upstream;

pub use client::{get, send_raw, Client, Response};
pub use config::{ProxyConfig, Route};
pub use proxy::Proxy;
pub use upstream::{AfterCut, Early, Reply, Upstream};

use std::time::{Duration, Instant};

/// Extra time allowed on top of a configured timeout before a test decides
/// the timeout did not fire. Generous: CI machines stall.
pub const SLACK: Duration = Duration::from_secs(4);

/// Polls `condition` every 10 ms until it holds or `within` has passed.
/// Returns whether it held.
pub fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
