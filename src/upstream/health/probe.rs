//! One active health probe of one endpoint, run by the prober thread
//! (`prober.rs`) on its own runtime: a TCP connect (and the TLS handshake
//! when the cluster speaks TLS, with the generation's client config), and
//! for `type = "http"` one HTTP/1.1 request with `Connection: close` whose
//! response is judged by [`judge`] (sans-io, table-tested).
//!
//! A response of any shape is a verdict, never a panic: garbage, a head
//! or body past the read limit, a connection closed early, or no answer
//! within the check's timeout (one deadline for the whole probe) all fail
//! the probe with a reason. At most `MAX_PROBE_RESPONSE_BYTES` are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::ClientConnection;

use crate::config::health_check::{HealthCheck, HttpProbe, Probe};
use crate::http1::body::BodyDecoder;
use crate::http1::head::Method;
use crate::http1::response::{parse_response, ResponseHead};
use crate::tls::stream::TlsStream;
use crate::upstream::stream::UpstreamStream;

/// Most bytes of a probe's response read (head and body together): the
/// verdict is taken on what arrived by then.
pub const MAX_PROBE_RESPONSE_BYTES: usize = 64 * 1024;
/// Most bytes of the response head.
pub const MAX_PROBE_HEAD_BYTES: usize = 16 * 1024;
/// Bytes asked of each read.
const READ_CHUNK: usize = 8 * 1024;

/// Where and how to probe one endpoint.
pub struct Target {
    pub addr: SocketAddr,
    /// The cluster's TLS client config and this endpoint's server name.
    pub tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    /// The request bytes, built once (`type = "http"`).
    pub request: Option<Vec<u8>>,
}

/// The HTTP probe's request: `Host` is the check's `host`, or else the
/// endpoint as written (`host[:port]`, as the proxy sends for a request
/// without one).
pub fn request_bytes(probe: &HttpProbe, endpoint_host: &str) -> Vec<u8> {
    let host = probe.host.as_deref().unwrap_or(endpoint_host);
    format!(
        "{} {} HTTP/1.1\r\nhost: {host}\r\nuser-agent: shardgate-health-check\r\naccept: */*\r\nconnection: close\r\n\r\n",
        probe.method, probe.path
    )
    .into_bytes()
}

/// Probes `target`: `Ok` when it passes, else why not.
pub async fn probe(check: &HealthCheck, target: &Target) -> Result<(), String> {
    match monoio::time::timeout(check.timeout, run(check, target)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no verdict within the timeout ({:?})", check.timeout)),
    }
}

async fn run(check: &HealthCheck, target: &Target) -> Result<(), String> {
    let tcp = TcpStream::connect_addr(target.addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut stream = match &target.tls {
        None => UpstreamStream::Plain(tcp),
        Some((config, name)) => {
            let session = ClientConnection::new(config.clone(), name.clone()).map_err(|e| format!("TLS setup: {e}"))?;
            let mut tls = TlsStream::new(tcp, session);
            tls.handshake().await.map_err(|e| format!("TLS handshake: {e}"))?;
            UpstreamStream::Tls(Box::new(tls))
        }
    };
    let (Probe::Http(http), Some(request)) = (&check.probe, &target.request) else {
        return Ok(());
    };
    let (written, _) = stream.write_all(request.clone()).await;
    written.map_err(|e| format!("write: {e}"))?;
    let head_request = http.method == "HEAD";
    let mut response: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    loop {
        let room = (MAX_PROBE_RESPONSE_BYTES - response.len()).min(READ_CHUNK);
        let (read, buf) = stream.read(Vec::with_capacity(room)).await;
        let n = read.map_err(|e| format!("read: {e}"))?;
        response.extend_from_slice(&buf[..n]);
        let end = n == 0 || response.len() >= MAX_PROBE_RESPONSE_BYTES;
        match judge(&response, end, http, head_request) {
            Judged::Pass => return Ok(()),
            Judged::Fail(why) => return Err(why),
            Judged::NeedMore => {}
        }
    }
}

/// The verdict on the response bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    Pass,
    Fail(String),
    /// Undecided: read more (only when `end` was false).
    NeedMore,
}

/// Judges `response` (everything read so far; `end`: nothing more will
/// come, because the upstream closed or the read limit is reached).
pub fn judge(response: &[u8], end: bool, probe: &HttpProbe, head_request: bool) -> Judged {
    let method = if head_request { Method::Head } else { Method::Get };
    let mut head = ResponseHead::default();
    match parse_response(response, MAX_PROBE_HEAD_BYTES, method, &mut head) {
        Err(e) => return Judged::Fail(format!("bad response: {}", e.cause)),
        Ok(false) if end => {
            return Judged::Fail(match response.is_empty() {
                true => "closed without a response".to_owned(),
                false => "closed before the response head was complete".to_owned(),
            })
        }
        Ok(false) => return Judged::NeedMore,
        Ok(true) => {}
    }
    // An interim response (100 Continue, 103) is not the answer; one that
    // comes as the last thing read fails.
    if head.status < 200 {
        return match end {
            true => Judged::Fail(format!("status {} and nothing after it", head.status)),
            false => judge_after_interim(response, &head, end, probe, head_request),
        };
    }
    if !probe.expects(head.status) {
        return Judged::Fail(format!("status {} is not expected", head.status));
    }
    let Some(needle) = &probe.body_contains else {
        return Judged::Pass;
    };
    let mut decoder = BodyDecoder::new(head.framing);
    let body = &response[head.head_len..];
    let mut payload = Vec::with_capacity(body.len());
    let step = match decoder.decode(body, |r| payload.extend_from_slice(&body[r])) {
        Ok(step) => step,
        Err(e) => return Judged::Fail(format!("bad chunked body: {}", e.cause())),
    };
    if contains(&payload, needle.as_bytes()) {
        return Judged::Pass;
    }
    if step.done || end {
        return Judged::Fail(format!("body does not contain {needle:?}"));
    }
    Judged::NeedMore
}

/// Skips an interim response head and judges what follows.
fn judge_after_interim(
    response: &[u8],
    head: &ResponseHead,
    end: bool,
    probe: &HttpProbe,
    head_request: bool,
) -> Judged {
    judge(&response[head.head_len..], end, probe, head_request)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// How long until the next probe: the interval plus up to `jitter`, drawn
/// from `seed` (a per-endpoint splitmix64 state).
pub fn next_delay(interval: Duration, jitter: Duration, seed: &mut u64) -> Duration {
    if jitter.is_zero() {
        return interval;
    }
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let nanos = jitter.as_nanos().min(u64::MAX as u128) as u64;
    interval + Duration::from_nanos(z % nanos.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(statuses: &[(u16, u16)], body: Option<&str>) -> HttpProbe {
        HttpProbe {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            expected_statuses: statuses.to_vec(),
            body_contains: body.map(str::to_owned),
        }
    }

    #[test]
    fn every_shape_of_response_gets_a_verdict() {
        let ok = probe(&[(200, 399)], None);
        let needle = probe(&[(200, 299)], Some("ready"));
        let fail = |s: &str| Judged::Fail(s.to_owned());
        // (response, end, probe, verdict)
        let cases: Vec<(&[u8], bool, &HttpProbe, Judged)> = vec![
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", false, &ok, Judged::Pass),
            (b"HTTP/1.1 302 Found\r\n\r\n", false, &ok, Judged::Pass),
            (b"HTTP/1.1 500 Oops\r\n\r\n", false, &ok, fail("status 500 is not expected")),
            (b"HTTP/1.1 404 Nope\r\n\r\n", true, &ok, fail("status 404 is not expected")),
            (b"HTTP/1.1 200 OK\r\ncontent-le", false, &ok, Judged::NeedMore),
            (b"HTTP/1.1 200 OK\r\ncontent-le", true, &ok, fail("closed before the response head was complete")),
            (b"", true, &ok, fail("closed without a response")),
            (b"\x00\xff garbage \r\n\r\n", false, &ok, fail("bad response: malformed response head")),
            (b"HTTP/1.1 2000 OK\r\n\r\n", false, &ok, fail("bad response: malformed status code in response")),
            (b"HTTP/1.1 100 Continue\r\n\r\n", true, &ok, fail("status 100 and nothing after it")),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n", false, &ok, Judged::Pass),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nall ready", false, &needle, Judged::Pass),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nall re", false, &needle, Judged::NeedMore),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbusyready",
                false,
                &needle,
                fail("body does not contain \"ready\""),
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nstarting", true, &needle, fail("body does not contain \"ready\"")),
            // Chunked: the needle split over two chunks is found.
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nrea\r\n2\r\ndy\r\n0\r\n\r\n",
                false,
                &needle,
                Judged::Pass,
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                false,
                &needle,
                fail("bad chunked body: invalid chunk size"),
            ),
            (
                b"HTTP/1.1 503 Busy\r\ncontent-length: 5\r\n\r\nready",
                false,
                &needle,
                fail("status 503 is not expected"),
            ),
        ];
        for (i, (response, end, p, want)) in cases.into_iter().enumerate() {
            let got = judge(response, end, p, false);
            match (&got, &want) {
                (Judged::Fail(g), Judged::Fail(w)) => assert!(g.starts_with(w.as_str()), "case {i}: {g}"),
                _ => assert_eq!(got, want, "case {i}"),
            }
        }
        // A head larger than the limit fails, also before the end.
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX_PROBE_HEAD_BYTES + 10 {
            big.extend_from_slice(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(judge(&big, false, &ok, false), Judged::Fail(_)));
        // HEAD: a Content-Length without a body is complete.
        let head_probe = HttpProbe { method: "HEAD".into(), ..needle.clone() };
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
        assert!(matches!(judge(r, false, &head_probe, true), Judged::Fail(_)), "no body to find the needle in");
    }

    #[test]
    fn request_names_the_host() {
        let p = HttpProbe { host: None, path: "/healthz".into(), method: "HEAD".into(), ..probe(&[(200, 200)], None) };
        let r = String::from_utf8(request_bytes(&p, "api.internal:8080")).unwrap();
        assert!(r.starts_with("HEAD /healthz HTTP/1.1\r\nhost: api.internal:8080\r\n"), "{r}");
        assert!(r.ends_with("connection: close\r\n\r\n"));
        let p = HttpProbe { host: Some("status.local".into()), ..p };
        assert!(String::from_utf8(request_bytes(&p, "x")).unwrap().contains("host: status.local\r\n"));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut seed = 7;
        let (interval, jitter) = (Duration::from_millis(100), Duration::from_millis(10));
        let delays: Vec<Duration> = (0..100).map(|_| next_delay(interval, jitter, &mut seed)).collect();
        assert!(delays.iter().all(|d| *d >= interval && *d < interval + jitter));
        assert!(delays.iter().any(|d| *d != delays[0]), "varies");
        assert_eq!(next_delay(interval, Duration::ZERO, &mut seed), interval);
    }
}
