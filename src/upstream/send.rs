//! The send phase: a connection to the chosen endpoint (a reusable pooled
//! one, or a fresh one), then the request head and the body bytes in hand,
//! in one write.
//!
//! Where it sits: after select endpoint (`balance.rs`), before the
//! exchange (`forward.rs`: receive head, response stages, relay). What is
//! left of a streamed body goes up during the exchange, beside the
//! response.

use std::time::{Duration, Instant};

use super::balance::Endpoint;
use super::connect::connect;
use super::retry::{Attempt, TryFailure};
use super::stream::UpstreamStream;
use crate::error::{Error, ErrorKind};
use crate::io::rent::write_all;
use crate::shard::generation::Generation;
use crate::shard::Shard;

/// A connection to an endpoint with a request on its way.
pub struct Upstream {
    pub stream: UpstreamStream,
    pub endpoint: Endpoint,
    /// It came from the pool (see `retry.rs`).
    pub reused: bool,
    /// How long a fresh connection took (TCP, and TLS when the cluster
    /// speaks it).
    pub connect_time: Option<Duration>,
    /// When the request's head (and the body in hand) was written.
    pub sent_at: Instant,
}

/// Why the send phase failed.
pub enum SendError {
    /// No connection could be made: not retried on this endpoint.
    Connect(Error),
    /// The write failed (on `reused` connection).
    Write { failure: TryFailure, reused: bool },
}

/// Sends `request` (head and body bytes in hand) to `endpoint` of the
/// request's `generation`.
pub async fn send(
    shard: &Shard,
    generation: &Generation,
    endpoint: Endpoint,
    attempt: Attempt,
    request: &mut Vec<u8>,
) -> Result<Upstream, SendError> {
    let pooled = if attempt.may_use_pool() { shard.pool.checkout(endpoint.id) } else { None };
    let reused = pooled.is_some();
    let mut connect_time = None;
    let mut stream = match pooled {
        Some(s) => {
            shard.counters.upstream_reuse();
            s
        }
        None => {
            let connecting = Instant::now();
            let stream = connect(shard, generation, endpoint).await.map_err(SendError::Connect)?;
            connect_time = Some(connecting.elapsed());
            stream
        }
    };
    if write_all(&mut stream, request).await.is_err() {
        let error = Error::new(ErrorKind::UpstreamClosed, "upstream closed the connection while the request was sent");
        return Err(SendError::Write { failure: TryFailure::WriteFailed(error), reused });
    }
    Ok(Upstream { stream, endpoint, reused, connect_time, sent_at: Instant::now() })
}
