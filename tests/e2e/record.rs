//! The record step: every request is recorded once, with the status the
//! client was sent, whatever became of it — proxied, answered by the
//! proxy, refused before routing, failed upstream — and a connection that
//! closes without sending a request records nothing. Seen here through
//! the status classes of `/stats` (metrics, access log and traces read
//! the same record).

use std::io::Write;
use std::time::Duration;

use crate::harness::proxy::{json_u64, shard_objects};
use crate::harness::upstream::refusing_addr;
use crate::harness::*;

/// `[1xx, 2xx, 3xx, 4xx, 5xx, none]` summed over the shards.
fn status_classes(proxy: &Proxy) -> [u64; 6] {
    let json = proxy.stats_json();
    let mut sum = [0; 6];
    for shard in shard_objects(&statuses_flattened(&json)).expect("shards in /stats") {
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx", "none"].iter().enumerate() {
            sum[i] += json_u64(shard, class).unwrap_or_else(|| panic!("no {class} in {json}"));
        }
    }
    sum
}

/// `shard_objects` reads flat objects: lift the members of the nested
/// `"statuses"` object into their shard's object.
fn statuses_flattened(json: &str) -> String {
    json.replace("\"statuses\":{", "").replace("}}", "}")
}

#[test]
fn every_request_is_recorded_once_with_the_status_it_was_sent() {
    let upstream = Upstream::path_echo();
    let slow = Upstream::start(|_| Reply::after(Duration::from_millis(400), Reply::ok("late")));
    let proxy = ProxyConfig::new()
        .shards(2)
        .cluster("app", &[upstream.addr()])
        .cluster("down", &[refusing_addr()])
        .route(Route::new("gone").path("/down").cluster("down"))
        .route(Route::new("moved").path("/old").redirect("http://example.test/new", 301, false))
        .cluster("slow", &[slow.addr()])
        .route(Route::new("slow").path("/slow").cluster("slow"))
        .route(Route::new("app").path_prefix("/app").cluster("app"))
        .start();
    assert_eq!(status_classes(&proxy), [0; 6]);

    let mut client = Client::connect(proxy.addr());
    for i in 0..5 {
        assert_eq!(client.get(&format!("/app/{i}")).status, 200);
    }
    assert_eq!(client.get("/old").status, 301);
    assert_eq!(client.get("/nowhere").status, 404);
    assert_eq!(get(proxy.addr(), "/down").status, 502);
    // An unparsable head is answered 400 and recorded too.
    assert_eq!(send_raw(proxy.addr(), b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n").status, 400);
    // Connections that send nothing record nothing.
    for _ in 0..3 {
        drop(std::net::TcpStream::connect(proxy.addr()).unwrap());
    }
    // A client that leaves before its response: recorded, with no status
    // sent if it was gone before the head could go out, else the status.
    let mut leaving = std::net::TcpStream::connect(proxy.addr()).unwrap();
    leaving.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(leaving);

    // 2xx: five proxied and the leaving client's (its head went out to a
    // closed socket), or "none" if the write already failed; 3xx the
    // redirect; 4xx the 404 and the 400; 5xx the 502.
    let expected = [0, 6, 1, 2, 1, 0];
    let settled = eventually(Duration::from_secs(5), || {
        let got = status_classes(&proxy);
        got == expected || got == [0, 5, 1, 2, 1, 1]
    });
    assert!(settled, "status classes {:?}, expected {expected:?}", status_classes(&proxy));
}
