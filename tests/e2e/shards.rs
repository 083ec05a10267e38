//! Thread-per-core: connections spread over the shards' `SO_REUSEPORT`
//! listeners, and each shard counts its own work (admin `/stats`).

use crate::harness::proxy::ShardStats;
use crate::harness::*;

/// Connections the spreading test opens, one request each.
const CONNECTIONS: u64 = 64;

#[test]
fn connections_spread_over_shards_and_every_request_is_counted() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().shards(2).everything_to(upstream.addr()).start();

    for i in 0..CONNECTIONS {
        let response = send_raw(
            proxy.addr(),
            format!("GET /{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(response.status, 200, "request {i}");
    }

    // Counters are updated after the response is written: give them a moment.
    let mut stats: Vec<ShardStats> = Vec::new();
    let settled = eventually(SLACK, || {
        stats = proxy.stats();
        stats.iter().map(|s| s.requests).sum::<u64>() >= CONNECTIONS && stats.iter().all(|s| s.active == 0)
    });
    assert!(settled, "counters never settled: {stats:#?}");

    assert_eq!(stats.len(), 2, "{stats:#?}");
    let mut ids: Vec<u64> = stats.iter().map(|s| s.shard).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1]);
    for shard in &stats {
        assert!(shard.accepted >= 1, "shard {} accepted nothing: {stats:#?}", shard.shard);
        assert!(shard.requests >= 1, "shard {} served nothing: {stats:#?}", shard.shard);
    }
    assert_eq!(stats.iter().map(|s| s.requests).sum::<u64>(), CONNECTIONS);
    assert_eq!(stats.iter().map(|s| s.accepted).sum::<u64>(), CONNECTIONS);
    assert_eq!(upstream.requests().len() as u64, CONNECTIONS);
}

#[test]
fn stats_count_open_connections_per_shard() {
    let upstream = Upstream::ok("ok");
    let proxy = ProxyConfig::new().shards(1).everything_to(upstream.addr()).start();

    let mut open: Vec<Client> = (0..3).map(|_| Client::connect(proxy.addr())).collect();
    for client in &mut open {
        assert_eq!(client.get("/").status, 200);
    }
    let mut stats = Vec::new();
    let three_open = eventually(SLACK, || {
        stats = proxy.stats();
        stats.len() == 1 && stats[0].active == 3
    });
    assert!(three_open, "{stats:#?}");
    assert_eq!(stats[0].accepted, 3);
    assert_eq!(stats[0].requests, 3);

    drop(open);
    let none_open = eventually(SLACK, || {
        stats = proxy.stats();
        stats[0].active == 0
    });
    assert!(none_open, "closed connections still counted as active: {stats:#?}");
}

#[test]
fn stats_list_every_configured_shard() {
    let proxy = ProxyConfig::new().shards(3).route(Route::new("all").direct(200, "ok")).start();

    let mut ids: Vec<u64> = proxy.stats().iter().map(|s| s.shard).collect();
    ids.sort_unstable();

    assert_eq!(ids, [0, 1, 2]);
}
