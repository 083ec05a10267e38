//! The relay floor relays: the built `shardgate-relay` binary between a
//! client and small upstreams written here, on 127.0.0.1 sockets, with
//! assertions on every byte that arrives and on what each side saw of the
//! other's end of stream.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// The running relay; killed (by its own handle) when the test ends.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(upstream: SocketAddr) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardgate-relay"))
        .args(["--listen", "127.0.0.1:0", "--upstream", &upstream.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("relay starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("announces its address").parse().unwrap();
    Relay { child, addr }
}

/// An upstream on 127.0.0.1:0 that runs `serve` on each connection, in a
/// thread of its own; counts the connections it accepted.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn start_upstream<F>(serve: F) -> Upstream
where
    F: Fn(TcpStream) + Send + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    // The accept loop ends with the test process.
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            thread::spawn(move || serve(stream));
        }
    });
    Upstream { addr, accepted }
}

/// Echo every byte back; pass the client's end of stream back as ours.
fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

fn connect(relay: &Relay) -> TcpStream {
    let s = TcpStream::connect(relay.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Byte `i` of a test stream: not periodic in any buffer size used here.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i / 251) % 251) as u8
}

fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("the peer's end of stream arrives");
    out
}

#[test]
fn keep_alive_exchanges_pass_both_ways_in_order_on_one_upstream_connection() {
    let up = start_upstream(echo);
    let relay = start_relay(up.addr);
    let mut client = connect(&relay);
    let sizes = [1, 13, 100, 4096, 16 * 1024 + 200, 70 * 1024, 13, 200 * 1024, 2];
    let mut offset = 0;
    for round in 0..20 {
        for &size in &sizes {
            let sent: Vec<u8> = (offset..offset + size).map(pattern).collect();
            offset += size;
            client.write_all(&sent).unwrap();
            let mut back = vec![0u8; size];
            client.read_exact(&mut back).unwrap_or_else(|e| panic!("round {round}, {size} B: {e}"));
            assert!(back == sent, "round {round}: {size} B came back changed");
        }
    }
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"", "nothing after the last exchange, then the end of stream");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "one upstream connection for the whole client connection");
}

#[test]
fn a_large_transfer_both_ways_at_once_survives_back_pressure() {
    // More than every socket buffer on the way can hold, while the client
    // does not read for a while: the relay must hold back (stop reading
    // the upstream, keep what a socket did not take) and lose nothing.
    const TOTAL: usize = 48 * 1024 * 1024;
    let up = start_upstream(echo);
    let relay = start_relay(up.addr);
    let mut client = connect(&relay);
    let mut writer = client.try_clone().unwrap();
    let sending = thread::spawn(move || {
        let mut offset = 0;
        while offset < TOTAL {
            let chunk: Vec<u8> = (offset..(offset + 100_003).min(TOTAL)).map(pattern).collect();
            writer.write_all(&chunk).unwrap();
            offset += chunk.len();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    thread::sleep(Duration::from_millis(300));
    let back = read_to_end(&mut client);
    sending.join().unwrap();
    assert_eq!(back.len(), TOTAL);
    if let Some(i) = (0..TOTAL).find(|&i| back[i] != pattern(i)) {
        panic!("byte {i} of {TOTAL} differs");
    }
}

/// Read to the end of stream, then answer with how many bytes came, and close.
fn count_then_answer(mut stream: TcpStream) {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    let _ = write!(stream, "got {}", got.len());
}

#[test]
fn the_clients_half_close_reaches_the_upstream_and_its_answer_still_comes_back() {
    let up = start_upstream(count_then_answer);
    let relay = start_relay(up.addr);
    let mut client = connect(&relay);
    let sent: Vec<u8> = (0..300_000).map(pattern).collect();
    client.write_all(&sent).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"got 300000");
}

#[test]
fn the_upstreams_half_close_reaches_the_client_which_can_still_send() {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let up = start_upstream(move |mut stream: TcpStream| {
        stream.write_all(b"hello").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        tx.send(got).unwrap();
    });
    let relay = start_relay(up.addr);
    let mut client = connect(&relay);
    assert_eq!(read_to_end(&mut client), b"hello", "the greeting, then the upstream's end of stream");
    let sent: Vec<u8> = (0..200_000).map(pattern).collect();
    client.write_all(&sent).expect("the client's sending side is still open");
    client.shutdown(Shutdown::Write).unwrap();
    let got = rx.recv_timeout(Duration::from_secs(20)).expect("the upstream saw the client's end of stream");
    assert!(got == sent, "the upstream got {} B, not the 200000 sent", got.len());
}

#[test]
fn each_client_gets_its_own_upstream_connection_even_when_many_are_open() {
    let up = start_upstream(echo);
    let relay = start_relay(up.addr);
    let clients: Vec<TcpStream> = (0..40).map(|_| connect(&relay)).collect();
    let workers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            thread::spawn(move || {
                for k in 0..50 {
                    let msg = format!("client {i} request {k}\n");
                    c.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg.as_bytes());
                }
                c
            })
        })
        .collect();
    let clients: Vec<TcpStream> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(up.accepted.load(Ordering::SeqCst), 40);
    drop(clients);
}

#[test]
fn a_client_whose_upstream_refuses_is_closed_not_left_hanging() {
    // A port nobody listens on: bound once, then released.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let relay = start_relay(dead);
    let mut client = connect(&relay);
    let _ = client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

/// Send `signal` (`STOP`, `CONT`) to the relay, by its PID.
fn signal(relay: &Relay, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &relay.child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal}");
}

#[test]
fn bytes_the_upstream_sent_before_resetting_still_reach_the_client() {
    // The relay is stopped while the upstream sends its last bytes and a
    // reset, so that it wakes to both in one event: the bytes are passed
    // on before the pair is closed, not dropped with it.
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
    let up = start_upstream(move |mut stream: TcpStream| {
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).unwrap();
        connected_tx.send(()).unwrap();
        go_rx.lock().unwrap().recv().unwrap();
        stream.write_all(b"last words").unwrap();
        // SO_LINGER 0: close sends a reset.
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let relay = start_relay(up.addr);
    let mut client = connect(&relay);
    client.write_all(b"x").unwrap();
    connected_rx.recv_timeout(Duration::from_secs(20)).expect("the upstream got the first byte");
    signal(&relay, "STOP");
    go_tx.send(()).unwrap();
    // The upstream has written and reset once its thread is done with the
    // socket; give it that moment while the relay sleeps.
    thread::sleep(Duration::from_millis(300));
    signal(&relay, "CONT");
    let mut got = Vec::new();
    let end = client.read_to_end(&mut got);
    assert_eq!(got, b"last words", "then the end ({end:?})");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}
