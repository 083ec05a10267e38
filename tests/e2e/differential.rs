//! Differential test of request parsing: shardgate against h11, an
//! independent HTTP/1.1 implementation in Python, over the corpus of odd
//! requests in `tests/differential/requests/` (see the README there).
//!
//! h11's reading of each file comes from `tests/differential/h11_verdict.py`.
//! shardgate's reading is observed end to end: the real binary, the raw
//! file written to a real socket (then the write side shut), and what a
//! real upstream received. The rule: wherever the two disagree about
//! framing — how many requests there are, where each ends, which bytes are
//! its body — shardgate refused (answered with its own error status) and
//! no request h11 would frame differently reached the upstream. Where h11
//! refuses and shardgate forwards for a reason that is not framing, the
//! file is listed in [`KNOWN_DIFFERENCES`] with the reason; a new
//! difference, or a listed one that no longer happens, fails the test.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Files h11 refuses and shardgate forwards, and why that is not a framing
/// disagreement. Each must still be a difference: an entry that no longer
/// applies fails the test, so the table stays true.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "chunk-extension-space-before-semicolon.http",
        "`5 ;name=value`: RFC 9112 §7.1.1 allows BWS before the `;` of a chunk extension, h11's chunk-line \
         grammar does not. The size is the hex digits before the whitespace in any reading; a parser that \
         refuses the line refuses the message, it cannot frame it another way.",
    ),
    (
        "head-leading-empty-line.http",
        "An empty line before the request line: RFC 9112 §2.2 says a server SHOULD ignore at least one; h11 \
         refuses it. The upstream receives the request re-encoded, without the empty line.",
    ),
    (
        "pipelined-http10-keep-alive-then-get.http",
        "h11 does not implement HTTP/1.0 keep-alive (it closes after every 1.0 request); shardgate honours \
         `Connection: keep-alive` (RFC 9112 §9.3). Both end the first request at the same byte; the \
         difference is whether the connection persists, not where a message ends.",
    ),
    (
        "te-chunked-leading-comma.http",
        "`Transfer-Encoding: , chunked`: RFC 9110 §5.6.1 requires a recipient to ignore empty list elements; \
         h11 compares the whole value with `chunked`. The coding list is `chunked` either way, and the \
         upstream receives `transfer-encoding: chunked`.",
    ),
    (
        "te-chunked-trailing-comma.http",
        "`Transfer-Encoding: chunked,`: an empty list element (RFC 9110 §5.6.1), as above.",
    ),
];

/// The header the test upstream puts on its answers, so that a response the
/// proxy made itself (a refusal) is told apart from a forwarded one.
const UPSTREAM_MARK: &str = "x-answered-by";

/// How long one file's exchange may take before the test gives up on it.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(10);

/// How long the upstream must be quiet after an exchange before its
/// counters are read, and the most time given to get there.
const SETTLE_QUIET: Duration = Duration::from_millis(30);
const SETTLE_DEADLINE: Duration = Duration::from_secs(2);

/// One request as a parser framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Framed {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// How h11 read one file (see `h11_verdict.py` for the fields).
#[derive(Debug)]
struct H11Verdict {
    /// Requests whose body ended.
    complete: Vec<Framed>,
    /// Request heads read, including one whose body had not ended.
    heads: usize,
    /// `clean`, `incomplete`, `refused`, `closed` or `switched`.
    end: String,
    error: Option<String>,
}

/// How shardgate read one file: what the upstream received, and the
/// statuses shardgate answered with itself.
#[derive(Debug)]
struct GateVerdict {
    forwarded: Vec<Framed>,
    /// Statuses of responses the upstream did not make (1xx excluded).
    own_statuses: Vec<u16>,
    /// Request heads the upstream saw whose body never completed: a body
    /// refused midway after its head was streamed, a message cut short by
    /// the client, or one the upstream could not frame.
    aborted_heads: usize,
}

/// The outcome of comparing the two verdicts for one file.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Same requests, same bodies.
    Agree,
    /// shardgate refused where h11 accepted (stricter): fine.
    Stricter,
    /// shardgate forwarded a request h11 did not read (h11 refused, or
    /// ended the connection before it), and the file is in
    /// [`KNOWN_DIFFERENCES`].
    Known,
    /// A framing disagreement shardgate did not refuse: the test fails.
    Disagree(String),
}

#[test]
fn shardgate_refuses_wherever_it_and_h11_disagree_about_framing() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/requests");
    let (h11_version, h11) = h11_verdicts(&corpus);
    assert!(h11.len() >= 60, "the corpus holds {} files; expected 60 or more", h11.len());

    let upstream = Upstream::start(|req| {
        Reply::ok(format!("{} {}", req.method, req.target)).with_header(UPSTREAM_MARK, "upstream")
    });
    let proxy = ProxyConfig::new()
        .limits("header_timeout = \"2s\"\nbody_timeout = \"2s\"")
        .everything_to(upstream.addr())
        .start();

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (name, theirs) in &h11 {
        let raw = std::fs::read(corpus.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
        let ours = shardgate_verdict(proxy.addr(), &upstream, &raw);
        let outcome = compare(name, theirs, &ours);
        if let Outcome::Disagree(why) = &outcome {
            failures.push(format!("{name}: {why}\n      h11: {theirs:?}\n      shardgate: {ours:?}"));
        }
        rows.push(format!(
            "{name:<48} h11 {:<10} {} req | shardgate {} fwd {:?}{} | {}",
            theirs.end,
            theirs.complete.len(),
            ours.forwarded.len(),
            ours.own_statuses,
            if ours.aborted_heads > 0 { " (a head sent on, its body never completed)" } else { "" },
            match &outcome {
                Outcome::Agree => "agree",
                Outcome::Stricter => "shardgate stricter",
                Outcome::Known => "known difference",
                Outcome::Disagree(_) => "DISAGREE",
            }
        ));
    }
    for (name, _) in KNOWN_DIFFERENCES {
        if !h11.contains_key(*name) {
            failures.push(format!("{name}: listed in KNOWN_DIFFERENCES but not in the corpus"));
        }
    }
    println!("differential parse, h11 {h11_version}, {} files:\n{}", rows.len(), rows.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} files: shardgate and h11 disagree about framing and shardgate did not refuse \
         (or a known difference went stale):\n  {}\n\nproxy log:\n{}",
        failures.len(),
        h11.len(),
        failures.join("\n  "),
        proxy.log()
    );
}

/// The rule, for one file.
fn compare(name: &str, theirs: &H11Verdict, ours: &GateVerdict) -> Outcome {
    let known = KNOWN_DIFFERENCES.iter().find(|(n, _)| *n == name);
    let refused = ours.own_statuses.iter().any(|&s| is_refusal(s));
    // Every request shardgate forwarded must be one h11 framed the same
    // way, in the same place.
    for (i, got) in ours.forwarded.iter().enumerate() {
        match theirs.complete.get(i) {
            Some(want) if want.method == got.method && want.body == got.body => {}
            Some(want) => {
                return Outcome::Disagree(format!(
                "request {i}: shardgate forwarded {} with a {}-byte body {:?}, h11 read {} with a {}-byte body {:?}",
                got.method,
                got.body.len(),
                String::from_utf8_lossy(&got.body),
                want.method,
                want.body.len(),
                String::from_utf8_lossy(&want.body)
            ))
            }
            None if known.is_some() => return Outcome::Known,
            None => {
                return Outcome::Disagree(format!(
                    "shardgate forwarded request {i} ({} {}, {}-byte body); h11 read only {} complete request(s) \
                     and then {} ({})",
                    got.method,
                    got.target,
                    got.body.len(),
                    theirs.complete.len(),
                    theirs.end,
                    theirs.error.as_deref().unwrap_or("no error")
                ))
            }
        }
    }
    if known.is_some() {
        return Outcome::Disagree(
            "listed in KNOWN_DIFFERENCES, but shardgate no longer forwards more than h11 reads".into(),
        );
    }
    // A head sent on whose body never completed upstream: fine when
    // shardgate refused the body midway (it streams), or when the input
    // ended inside that very request for h11 too. Otherwise shardgate sent
    // on a message it did not refuse and the upstream could not frame
    // (the upstream's failure shows as a 502).
    let cut_short_for_both = theirs.end == "incomplete"
        && theirs.heads > theirs.complete.len()
        && ours.forwarded.len() == theirs.complete.len();
    if ours.aborted_heads > 0 && !refused && !cut_short_for_both {
        return Outcome::Disagree(format!(
            "the upstream received {} request head(s) whose body never completed, and shardgate did not refuse \
             (its own statuses: {:?}); h11 read {} complete request(s) and then {} ({})",
            ours.aborted_heads,
            ours.own_statuses,
            theirs.complete.len(),
            theirs.end,
            theirs.error.as_deref().unwrap_or("no error")
        ));
    }
    // Fewer requests than h11 read: shardgate must have said no, not have
    // waited for bytes h11 did not count as part of the message.
    if ours.forwarded.len() < theirs.complete.len() {
        return if refused {
            Outcome::Stricter
        } else {
            Outcome::Disagree(format!(
                "h11 read {} complete request(s), shardgate forwarded {} and did not refuse the next",
                theirs.complete.len(),
                ours.forwarded.len()
            ))
        };
    }
    if refused && theirs.end != "refused" {
        // Same requests, then shardgate refused bytes h11 did not refuse
        // (or a request h11 left incomplete): stricter.
        return Outcome::Stricter;
    }
    Outcome::Agree
}

/// Statuses shardgate refuses a request with (`error.rs`): 4xx, 501 (an
/// unknown transfer coding) and 505. A 502/503/504 means the request was
/// sent on and the upstream failed: not a refusal.
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) || status == 501 || status == 505
}

/// Runs the h11 side over the corpus. Fails (never skips) when python3 or
/// h11 is missing: CI installs both (`.ci/run`).
fn h11_verdicts(corpus: &Path) -> (String, BTreeMap<String, H11Verdict>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/h11_verdict.py");
    let python = std::env::var("SHARDGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python).arg(&script).arg(corpus).output().unwrap_or_else(|e| {
        panic!("the differential parser test needs {python} with the h11 package (.ci/run installs both): {e}")
    });
    assert!(
        output.status.success(),
        "{} {} failed ({}); it needs the h11 package (.ci/run installs it: python3 -m pip install h11):\n{}",
        python,
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("h11_verdict.py prints JSON");
    let version = json["h11"].as_str().unwrap_or("?").to_string();
    let files = json["files"].as_object().expect("h11_verdict.py: files");
    let verdicts = files
        .iter()
        .map(|(name, v)| {
            let complete = v["requests"]
                .as_array()
                .expect("requests")
                .iter()
                .filter(|r| r["complete"].as_bool() == Some(true))
                .map(|r| Framed {
                    method: latin1(&r["method"]).into_iter().map(char::from).collect(),
                    target: latin1(&r["target"]).into_iter().map(char::from).collect(),
                    body: latin1(&r["body"]),
                })
                .collect();
            let heads = v["requests"].as_array().expect("requests").len();
            let end = v["end"].as_str().expect("end").to_string();
            let error = v["error"].as_str().map(str::to_string);
            (name.clone(), H11Verdict { complete, heads, end, error })
        })
        .collect();
    (version, verdicts)
}

/// The bytes of a JSON string that holds one character per byte.
fn latin1(v: &serde_json::Value) -> Vec<u8> {
    v.as_str().expect("a string").chars().map(|c| u8::try_from(u32::from(c)).expect("latin-1")).collect()
}

/// Writes `raw` to the proxy in one write, shuts the write side (so a
/// message cut short ends there, as it does for h11), reads every response
/// until the proxy closes, and collects what the upstream received
/// meanwhile.
fn shardgate_verdict(proxy: SocketAddr, upstream: &Upstream, raw: &[u8]) -> GateVerdict {
    let requests_before = upstream.requests().len();
    let heads_before = upstream.heads_received();

    let mut stream = TcpStream::connect(proxy).expect("connect to proxy");
    stream.set_read_timeout(Some(EXCHANGE_DEADLINE)).expect("read timeout");
    // The proxy may refuse and close before reading everything: a failed
    // write is part of the answer, not an error of the test.
    let _ = stream.write_all(raw);
    let _ = stream.shutdown(Shutdown::Write);
    let received = read_to_close(&mut stream);
    settle(upstream);

    let forwarded: Vec<Framed> = upstream.requests()[requests_before..]
        .iter()
        .map(|r| Framed { method: r.method.clone(), target: r.target.clone(), body: r.body.clone() })
        .collect();
    let aborted_heads = (upstream.heads_received() - heads_before).saturating_sub(forwarded.len());
    let own_statuses = responses(&received)
        .into_iter()
        .filter(|(status, from_upstream)| !from_upstream && !(100..200).contains(status))
        .map(|(status, _)| status)
        .collect();
    GateVerdict { forwarded, own_statuses, aborted_heads }
}

/// Waits until the upstream's counters stop moving: a head the proxy sent
/// on just before it refused may still be on its way to the upstream's
/// thread, and must be counted for this file, not the next.
fn settle(upstream: &Upstream) {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut seen = (upstream.heads_received(), upstream.bytes_received());
    while Instant::now() < deadline {
        std::thread::sleep(SETTLE_QUIET);
        let now = (upstream.heads_received(), upstream.bytes_received());
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Everything the proxy sends until it closes the connection.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + EXCHANGE_DEADLINE;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    received
}

/// (status, answered by the upstream) of every response in `bytes`. The
/// proxy frames everything it sends here by Content-Length (its own
/// refusals and the upstream's answers alike); 1xx have no body.
fn responses(mut bytes: &[u8]) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    while let Some(end) = find(bytes, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let mut length = 0usize;
        let mut from_upstream = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case(UPSTREAM_MARK) {
                from_upstream = true;
            }
        }
        out.push((status, from_upstream));
        let body_start = end + 4;
        let body_len = if (100..200).contains(&status) { 0 } else { length };
        bytes = &bytes[(body_start + body_len).min(bytes.len())..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
