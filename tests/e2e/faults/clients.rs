//! Clients that misbehave: one that aborts its upload halfway, one that
//! never reads, and a flood of connections past the proxy's limit.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{eventually, get, Client, ProxyConfig, Reply, Upstream, SLACK};

/// Starts an upload of `declared` bytes, sends `sent` of them, then goes
/// away: with a FIN (`reset` false) or a RST.
fn abandoned_upload(addr: std::net::SocketAddr, declared: usize, sent: usize, reset: bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {declared}\r\n\r\n").as_bytes())
        .unwrap();
    stream.write_all(&vec![b'u'; sent]).unwrap();
    if reset {
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
    }
}

#[test]
fn a_client_that_aborts_mid_upload_gets_its_upstream_connection_aborted_not_pooled() {
    const DECLARED: usize = 4 * 1024 * 1024;
    const SENT: usize = 512 * 1024;
    let upstream = Upstream::start(|req| Reply::ok(format!("{} {}", req.target, req.body_len)));
    let proxy = ProxyConfig::new().everything_to(upstream.addr()).start();

    for (round, reset) in [(0usize, false), (1, true)] {
        abandoned_upload(proxy.addr(), DECLARED, SENT, reset);
        // A large body streams: its head reaches the upstream at once.
        assert!(eventually(SLACK, || upstream.heads_received() == 2 * round + 1), "round {round}: the upload began");
        let upload_conn = upstream.heads().last().unwrap().connection;
        assert!(
            eventually(SLACK, || upstream.connection_ended(upload_conn)),
            "round {round} (reset {reset}): the upstream connection of the abandoned upload was left open"
        );

        let response = get(proxy.addr(), &format!("/next{round}"));
        assert_eq!(response.text(), format!("/next{round} 0"), "round {round}");
        let next_conn = upstream.heads().last().unwrap().connection;
        assert_ne!(next_conn, upload_conn, "round {round}: the next request went to the aborted upload's connection");
    }
    assert!(
        upstream.requests().iter().all(|r| r.target != "/upload"),
        "the upstream received an abandoned upload as a complete request"
    );
}

#[test]
fn a_connection_flood_past_the_limit_leaves_established_clients_served() {
    const LIMIT: usize = 32;
    const ESTABLISHED: usize = 4;
    const FLOOD: usize = 400;
    let upstream = Upstream::start(|req| Reply::ok(req.target.clone()));
    let proxy = ProxyConfig::new()
        .limits(&format!("max_connections_per_shard = {LIMIT}\nheader_timeout = \"1s\""))
        .everything_to(upstream.addr())
        .start();
    let addr = proxy.addr();

    let mut established: Vec<Client> = (0..ESTABLISHED).map(|_| Client::connect(addr)).collect();
    for (i, client) in established.iter_mut().enumerate() {
        assert_eq!(client.get(&format!("/c{i}/warm")).status, 200);
    }

    // The flood: connections that say nothing (they take the free slots
    // until the header timeout ends them) and connections that ask.
    let flooding = Arc::new(AtomicBool::new(true));
    let refused = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..4)
        .map(|worker| {
            let (flooding, refused) = (flooding.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                let mut n = 0;
                while flooding.load(Ordering::SeqCst) && n < FLOOD / 4 {
                    n += 1;
                    let Ok(mut stream) = TcpStream::connect(addr) else { continue };
                    if (n + worker) % 2 == 0 {
                        held.push(stream);
                        continue;
                    }
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = stream.write_all(b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
                    let mut client = Client::over(Box::new(stream));
                    if let Ok(response) = client.try_read_response(false, None) {
                        if response.status == 503 {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                held
            })
        })
        .collect();

    // Meanwhile the established clients keep asking on their connections.
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for (i, client) in established.iter_mut().enumerate() {
            let target = format!("/c{i}/{served}");
            let response = client.get(&target);
            assert_eq!(
                (response.status, response.text()),
                (200, target.clone()),
                "an established client during the flood"
            );
            served += 1;
        }
    }
    flooding.store(false, Ordering::SeqCst);
    let held: Vec<Vec<TcpStream>> = flood.into_iter().map(|t| t.join().unwrap()).collect();

    assert!(refused.load(Ordering::SeqCst) > 0, "the flood never went past the limit");
    assert!(served >= ESTABLISHED * 2, "established clients served only {served} requests during the flood");
    drop(held);
    // Once the flood is gone, new clients are served again.
    assert!(eventually(SLACK, || get(addr, "/after").status == 200), "the proxy did not recover after the flood");
}

/// The proxy's sockets to `client` (its local port) in the kernel's TCP
/// tables, as (state, bytes queued to send): `/proc/net/tcp` and `tcp6`.
fn proxy_sockets_towards(proxy: std::net::SocketAddr, client: std::net::SocketAddr) -> Vec<(u8, u64)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap_or(""), 16).ok();
            if f.len() > 4 && port(f[1]) == Some(proxy.port()) && port(f[2]) == Some(client.port()) {
                let state = u8::from_str_radix(f[3], 16).unwrap_or(0);
                let queued = u64::from_str_radix(f[4].split(':').next().unwrap_or("0"), 16).unwrap_or(0);
                found.push((state, queued));
            }
        }
    }
    found
}

/// A client that stops reading is cut off at the write deadline; its
/// connection is reset, not closed with a FIN queued behind the MiBs it
/// never read: that would leave an orphaned socket holding its send buffer
/// in FIN-WAIT-1 for as long as the client keeps its window shut (nginx's
/// `reset_timedout_connection`).
#[test]
fn a_client_cut_off_for_not_reading_is_reset_not_left_behind_a_fin() {
    const FIN_WAIT_1: u8 = 0x04;
    let upstream = Upstream::start(|_| Reply::pattern(64 * 1024 * 1024));
    let proxy = ProxyConfig::new().limits(r#"body_timeout = "500ms""#).everything_to(upstream.addr()).start();
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    let client = stream.local_addr().unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Never read: the proxy's send buffer fills and its writes stall.
    assert!(
        eventually(SLACK, || proxy_sockets_towards(proxy.addr(), client).iter().any(|&(_, queued)| queued > 0)),
        "the response never backed up"
    );
    let left = |sockets: &[(u8, u64)]| sockets.iter().any(|&(state, _)| state == FIN_WAIT_1);
    assert!(
        eventually(Duration::from_secs(2) + SLACK, || proxy.stats().iter().map(|s| s.active).sum::<u64>() == 0),
        "the client was not cut off"
    );
    std::thread::sleep(Duration::from_millis(200));
    let sockets = proxy_sockets_towards(proxy.addr(), client);
    assert!(!left(&sockets), "the proxy's socket waits in FIN-WAIT-1 behind unsent bytes: {sockets:?}");
    drop(stream);
}
