//! The record step: the one place a finished request is reported, called
//! by the connection loop after every request (served, refused or failed)
//! while the request's head is still in the connection buffer.

use std::net::{IpAddr, SocketAddr};

use crate::downstream::outcome::Outcome;
use crate::http1::parse::RequestHead;
use crate::shard::generation::ShardGeneration;
use crate::shard::Shard;

/// A finished request as the record step sees it: its outcome, and who
/// asked what. Borrowed from the connection: nothing is copied unless a
/// consumer (the access log) needs it.
pub struct Record<'a> {
    /// The generation the request ran on: names of its listener, route,
    /// cluster and endpoint.
    pub generation: &'a ShardGeneration,
    /// Index of the listener in `generation.config().listeners`.
    pub listener: usize,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The effective client (the peer, or whom a trusted proxy names).
    pub client: IpAddr,
    /// The request head; its spans point into `rbuf`. `None` when the
    /// head could not be parsed (the outcome says why).
    pub head: Option<&'a RequestHead>,
    pub rbuf: &'a [u8],
    /// The normalised path (empty before routing).
    pub path: &'a [u8],
    pub request_id: &'a [u8],
    /// "TLSv1.3"/"TLSv1.2" on a TLS listener.
    pub tls_version: Option<&'static str>,
    /// The W3C trace id (32 lowercase hex digits) when the request is
    /// traced (filled by the tracing stage, `observe/trace/`).
    pub trace_id: Option<&'a [u8]>,
    /// The request's trace context (`trace::decide`), when tracing is on.
    pub trace: Option<&'a crate::observe::trace::TraceContext>,
    /// The authenticated consumer's name.
    pub consumer: Option<&'a str>,
    /// The span in `rbuf` of a credential the request presented (an API
    /// key): whatever writes request bytes masks it.
    pub credential: Option<std::ops::Range<usize>>,
    pub outcome: &'a Outcome,
}

impl<'a> Record<'a> {
    /// A record of `outcome` alone: loopback peer and client, no head, no
    /// request id, no trace or consumer (unit tests and benchmarks of the
    /// consumers).
    pub fn of_outcome(generation: &'a ShardGeneration, outcome: &'a Outcome) -> Record<'a> {
        let loopback = std::net::Ipv4Addr::LOCALHOST;
        Record {
            generation,
            listener: 0,
            peer: SocketAddr::from((loopback, 9)),
            client: IpAddr::V4(loopback),
            head: None,
            rbuf: b"",
            path: b"",
            request_id: b"",
            tls_version: None,
            trace_id: None,
            trace: None,
            consumer: None,
            credential: None,
            outcome,
        }
    }
}

/// Reports one finished request.
pub fn record(shard: &Shard, r: &Record<'_>) {
    shard.counters.request_done(r.outcome);
    if r.generation.config().metrics.enabled {
        shard.observe.metrics.record(r);
    }
    shard.observe.trace.record(r);
    shard.observe.access_log.log(r, &shard.counters);
}
