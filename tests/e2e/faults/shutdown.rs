//! SIGTERM while clients keep the proxy busy: every request the upstream
//! received is answered, new connections are refused, the process exits 0.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{eventually, Client, ProxyConfig, Reply, Upstream, SLACK};

const CLIENTS: usize = 8;

#[test]
fn sigterm_under_load_answers_every_forwarded_request_and_exits_0() {
    let upstream = Upstream::start(|req| Reply::after(Duration::from_millis(200), Reply::ok(req.target.clone())));
    let mut proxy = ProxyConfig::new().drain_timeout("10s").everything_to(upstream.addr()).start();
    let addr = proxy.addr();

    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (running, answered, wrong) = (running.clone(), answered.clone(), wrong.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                // New connections until they are refused; on each, requests
                // until the proxy closes it.
                'connections: while running.load(Ordering::SeqCst) {
                    let Ok(stream) = TcpStream::connect(addr) else { return };
                    let mut client = Client::over(Box::new(stream));
                    for _ in 0..3 {
                        let target = format!("/c{c}/{n}");
                        n += 1;
                        if client.try_send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).is_err() {
                            continue 'connections;
                        }
                        match client.try_read_response(false, None) {
                            Ok(response) if response.status == 200 && response.text() == target => {
                                answered.lock().unwrap().insert(target);
                            }
                            Ok(response) => {
                                wrong.lock().unwrap().push(format!("{target}: {} {}", response.status, response.text()))
                            }
                            // Closed before an answer: allowed only if the
                            // request never reached the upstream (checked below).
                            Err(_) => continue 'connections,
                        }
                    }
                }
            })
        })
        .collect();

    // Load running, requests in flight at the upstream.
    assert!(eventually(SLACK, || upstream.heads_received() >= 2 * CLIENTS), "the load never got going");
    proxy.signal("TERM");

    let refused = eventually(
        Duration::from_millis(1500),
        || matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused),
    );
    assert!(refused, "new connections were still accepted after SIGTERM");
    let status = proxy.wait_exit(Duration::from_secs(10));
    running.store(false, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit status {status:?}");

    let wrong = wrong.lock().unwrap();
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    let answered = answered.lock().unwrap();
    let unanswered: Vec<String> =
        upstream.heads().into_iter().map(|h| h.target).filter(|t| !answered.contains(t)).collect();
    assert!(unanswered.is_empty(), "forwarded but never answered to the client: {unanswered:?}");
    assert!(answered.len() >= 2 * CLIENTS, "only {} requests answered", answered.len());
}
