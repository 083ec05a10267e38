//! The admin listener under clients that misbehave: a slow-loris client
//! (one byte every 300 ms, never finishing its head) must not delay
//! `GET /stats` for anyone else and is itself cut off at the whole-request
//! deadline; several clients are served at once; past the connection cap a
//! client gets 503 and the connection is closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shardgate::admin::{ADMIN_REQUEST_DEADLINE, MAX_ADMIN_CONNECTIONS};

use crate::harness::*;

/// How often the slow-loris client sends its next byte.
const SLOW_BYTE_EVERY: Duration = Duration::from_millis(300);
/// The slow-loris client gives up on its own after this, so a proxy that
/// never cuts it off fails the test instead of hanging it.
const SLOW_CLIENT_GIVES_UP_AFTER: Duration = Duration::from_secs(30);

fn admin_proxy() -> Proxy {
    ProxyConfig::new().route(Route::new("all").direct(200, "ok")).start()
}

/// What the slow-loris client saw.
struct SlowOutcome {
    /// Time from connecting until the proxy closed the connection; `None`
    /// if it was still open when the client gave up.
    closed_after: Option<Duration>,
    /// What the proxy sent before closing.
    received: Vec<u8>,
}

/// A client that connects to the admin listener and sends a request head
/// one byte every [`SLOW_BYTE_EVERY`], a head that never ends.
struct SlowLoris {
    sent: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    thread: JoinHandle<SlowOutcome>,
}

impl SlowLoris {
    fn start(addr: SocketAddr) -> SlowLoris {
        let sent = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(SLOW_BYTE_EVERY)).expect("read timeout");
        let connected = Instant::now();
        let (sent_in, closed_in) = (sent.clone(), closed.clone());
        let thread = std::thread::spawn(move || {
            let head = b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            let mut i = 0usize;
            while connected.elapsed() < SLOW_CLIENT_GIVES_UP_AFTER {
                let byte = head.get(i).copied().unwrap_or(b'a');
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                i += 1;
                sent_in.store(i, Ordering::Release);
                // Waits one interval for the proxy to answer or close.
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let closed_after = (connected.elapsed() < SLOW_CLIENT_GIVES_UP_AFTER).then(|| connected.elapsed());
            closed_in.store(true, Ordering::Release);
            SlowOutcome { closed_after, received }
        });
        SlowLoris { sent, closed, thread }
    }

    fn bytes_sent(&self) -> usize {
        self.sent.load(Ordering::Acquire)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn join(self) -> SlowOutcome {
        self.thread.join().expect("slow-loris client thread")
    }
}

#[test]
fn a_slow_loris_admin_client_neither_delays_stats_nor_outlives_the_whole_request_deadline() {
    let proxy = admin_proxy();
    let slow = SlowLoris::start(proxy.admin());
    assert!(eventually(Duration::from_secs(5), || slow.bytes_sent() >= 3), "the slow client is sending");

    // The slow client is mid head; /stats is answered meanwhile, on another
    // connection, while the slow one is still open.
    let asked = Instant::now();
    let stats = proxy.stats();
    let answered_after = asked.elapsed();
    assert_eq!(stats.len(), 1, "one shard");
    assert!(
        !slow.is_closed(),
        "/stats was answered only after the slow client was cut off ({answered_after:?}): one client blocks the rest"
    );

    let outcome = slow.join();
    let closed_after = outcome.closed_after.unwrap_or_else(|| {
        panic!(
            "the slow client was still connected after {SLOW_CLIENT_GIVES_UP_AFTER:?} (no whole-request deadline); \
             it got {:?}",
            String::from_utf8_lossy(&outcome.received)
        )
    });
    assert!(
        closed_after <= ADMIN_REQUEST_DEADLINE + SLACK,
        "cut off after {closed_after:?}, deadline {ADMIN_REQUEST_DEADLINE:?}"
    );
    // The deadline is for the whole head, so the slow client, though never
    // idle for long, still gets the 408 it earned.
    let text = String::from_utf8_lossy(&outcome.received);
    assert!(text.starts_with("HTTP/1.1 408 "), "the slow client got {text:?}");
}

#[test]
fn several_admin_clients_are_served_at_once() {
    let proxy = admin_proxy();
    // Four clients each hold an admin connection with an unfinished head.
    let mut waiting: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(proxy.admin()).expect("connect admin");
            stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
            stream.write_all(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("write partial head");
            stream
        })
        .collect();

    // Someone else is answered meanwhile.
    assert_eq!(proxy.stats().len(), 1);

    // Each waiting client, finished in reverse order, gets its own answer.
    for (i, stream) in waiting.iter_mut().enumerate().rev() {
        stream.write_all(b"\r\n").expect("finish head");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap_or_else(|e| panic!("client {i}: {e}"));
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "client {i} got {text:?}");
        assert!(text.contains("\"shards\":[{\"shard\":0,"), "client {i} got {text:?}");
    }
}

#[test]
fn admin_connections_past_the_cap_get_503_and_are_closed() {
    let proxy = admin_proxy();
    // The cap's worth of clients, each holding a connection open mid head.
    let mut holding: Vec<TcpStream> = (0..MAX_ADMIN_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(proxy.admin()).expect("connect admin");
            stream.write_all(b"GET /stats HTTP/1.1\r\n").expect("write partial head");
            stream
        })
        .collect();
    // The proxy accepts in order, so by the time it reaches this one it
    // counts all of the above (none is past its deadline yet).
    let response = send_raw(proxy.admin(), b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.closed, "the connection over the cap is closed");
    assert!(response.text().contains("admin connection limit"), "{}", response.text());

    // The connections under the cap are served as usual.
    let mut first = holding.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    first.write_all(b"Host: 127.0.0.1\r\n\r\n").expect("finish head");
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).expect("read answer");
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{:?}", String::from_utf8_lossy(&answer));

    // When they leave, their places are free again.
    drop(holding);
    assert!(
        eventually(Duration::from_secs(5), || {
            let r = send_raw(proxy.admin(), b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            r.status == 200
        }),
        "admin still refuses after the held connections closed"
    );
}
