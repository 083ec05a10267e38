//! Session resumption whichever shard accepts the connection: one client
//! (one session store) opens many connections to a 2-shard proxy; after the
//! first, no handshake is full.

use rustls::{HandshakeKind, ProtocolVersion};

use super::{tls_lines, Pki};
use crate::harness::tls::{tls_stats, TlsClient, TlsStats, Versions};
use crate::harness::*;

/// New connections per test, one request each.
const CONNECTIONS: usize = 48;

fn every_connection_after_the_first_resumes(versions: Versions, want: ProtocolVersion) {
    let pki = Pki::new();
    let (_, files) = pki.server("resume", &["resume.test"]);
    let upstream = Upstream::ok("hello");
    let proxy = ProxyConfig::new()
        .shards(2)
        .tls("main", &tls_lines(&[files.toml()], &[]))
        .everything_to(upstream.addr())
        .start();
    let client = TlsClient::builder().trust(&pki.ca).versions(versions).build();

    let mut kinds = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let (handshake, response) = client.get(proxy.addr(), "resume.test", &format!("/{i}"));
        assert_eq!(response.status, 200, "connection {i}: {}", response.text());
        assert_eq!(handshake.version, want, "connection {i}");
        kinds.push(handshake.kind);
    }

    assert_eq!(kinds[0], HandshakeKind::Full, "the first connection has no session to resume");
    let full: Vec<(usize, HandshakeKind)> =
        kinds.iter().copied().enumerate().skip(1).filter(|(_, kind)| *kind != HandshakeKind::Resumed).collect();
    assert!(full.is_empty(), "{} of {CONNECTIONS} connections were not resumed: {full:?}", full.len());

    let mut stats: Vec<TlsStats> = Vec::new();
    let settled = eventually(SLACK, || {
        stats = tls_stats(&proxy);
        TlsStats::total(&stats).tls_handshakes >= CONNECTIONS as u64
    });
    assert!(settled, "{stats:#?}");
    let totals = TlsStats::total(&stats);
    assert_eq!(totals.tls_handshakes, CONNECTIONS as u64, "{stats:#?}");
    assert!(totals.tls_resumed >= CONNECTIONS as u64 - 1, "{stats:#?}");
    let by_version = if want == ProtocolVersion::TLSv1_3 { totals.tls13 } else { totals.tls12 };
    assert_eq!(by_version, CONNECTIONS as u64, "{stats:#?}");
    assert_eq!(totals.tls_failures, 0, "{stats:#?}");

    // The kernel spreads connections over the shards' SO_REUSEPORT sockets
    // by hash; when it used both, both resumed sessions.
    if stats.iter().all(|s| s.accepted > 0) {
        for shard in &stats {
            assert_eq!(shard.tls_handshakes, shard.accepted, "{stats:#?}");
            assert!(shard.tls_resumed >= 1, "shard {} resumed nothing: {stats:#?}", shard.shard);
        }
    } else {
        eprintln!("NOTE: the kernel sent every connection to one shard: {stats:#?}");
    }
}

#[test]
fn tls13_sessions_resume_across_two_shards() {
    every_connection_after_the_first_resumes(Versions::Only13, ProtocolVersion::TLSv1_3);
}

#[test]
fn tls12_sessions_resume_across_two_shards() {
    every_connection_after_the_first_resumes(Versions::Only12, ProtocolVersion::TLSv1_2);
}
