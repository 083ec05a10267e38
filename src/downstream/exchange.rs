//! One request apart from its connection: what the pipeline's stages read
//! and fill (head, path, query, request id, consumer, trace context, the
//! outcome), while the connection (`conn.rs`) keeps the stream, the
//! buffers and the effective client address (resolved per request, but
//! what it caches about the peer is the connection's). A connection in
//! use keeps one boxed `Exchange` across its requests, so its vectors keep
//! their capacity; one that goes idle without a head buffer gives it back
//! (a waiting connection costs no request state); an HTTP/2 codec would
//! make one per stream.

use std::ops::Range;
use std::time::Instant;

use super::outcome::Outcome;
use crate::http1::parse::RequestHead;
use crate::observe::trace::TraceContext;

pub struct Exchange {
    /// The parsed head; its spans point into the connection's `rbuf`,
    /// which keeps the head until the request is recorded.
    pub head: RequestHead,
    /// The normalised request path (set by the route stage).
    pub path: Vec<u8>,
    /// The query's span in the connection's `rbuf` (set by the route stage).
    pub query: Option<Range<usize>>,
    /// The query as it goes upstream when a stage changed it (an API key
    /// parameter removed, `policy/api_key.rs`); `None`: as sent. See
    /// [`Exchange::upstream_query`].
    pub upstream_query: Option<Vec<u8>>,
    /// The span in `rbuf` of a credential the request presented (an API
    /// key's value, found or not): the access log masks it.
    pub credential: Option<Range<usize>>,
    /// The authenticated consumer: an index into the generation's
    /// `config.consumers.list` (set by the authentication stage).
    pub consumer: Option<usize>,
    pub request_id: Vec<u8>,
    /// The request's trace context (`observe/trace/`), decided right
    /// after the request id; `None` when tracing is off.
    pub trace: Option<TraceContext>,
    /// The request body has been read to its end (or there was none).
    pub request_done: bool,
    /// What happened, for the record step.
    pub outcome: Outcome,
    /// The connection's bytes-sent count when the request started.
    sent_before: u64,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange::new()
    }
}

impl Exchange {
    pub fn new() -> Exchange {
        Exchange {
            head: RequestHead::default(),
            path: Vec::new(),
            query: None,
            upstream_query: None,
            credential: None,
            consumer: None,
            request_id: Vec::with_capacity(32),
            trace: None,
            request_done: true,
            outcome: Outcome::new(Instant::now()),
            sent_before: 0,
        }
    }

    /// A new request starts (its first byte came at `start`); `sent` is the
    /// connection's bytes-sent count so far.
    pub fn begin(&mut self, start: Instant, sent: u64) {
        self.outcome = Outcome::new(start);
        self.path.clear();
        self.query = None;
        self.upstream_query = None;
        self.credential = None;
        self.consumer = None;
        self.trace = None;
        self.sent_before = sent;
    }

    /// The query (without `?`) to send on, upstream or in a redirect:
    /// as sent, or as a stage rewrote it; `None` when there is none.
    pub fn upstream_query<'a>(&'a self, rbuf: &'a [u8]) -> Option<&'a [u8]> {
        match &self.upstream_query {
            Some(q) if q.is_empty() => None,
            Some(q) => Some(q),
            None => self.query.clone().map(|q| &rbuf[q]),
        }
    }

    /// The head is in: `head_len` bytes of it. `read_again`: it took more
    /// reads than the one that started the request (else it came whole
    /// with that read, and its read time is the parse's: not worth a
    /// clock read).
    pub fn head_read(&mut self, head_len: usize, read_again: bool) {
        self.outcome.bytes_received = head_len as u64;
        if read_again {
            self.outcome.timings.head_read = self.outcome.timings.start.elapsed();
        }
    }

    /// The request is over (served or not); `sent` is the connection's
    /// bytes-sent count now.
    pub fn finish(&mut self, sent: u64) {
        self.outcome.bytes_sent = sent - self.sent_before;
        self.outcome.timings.total = self.outcome.timings.start.elapsed();
    }
}
