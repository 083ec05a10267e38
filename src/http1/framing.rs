//! How a proxied response is framed towards the client, and whether the
//! client connection stays open after it: decided once the upstream's
//! response head is in hand (RFC 9112 §6, §9.3).
//!
//! Where it sits: the exchange (`upstream/forward.rs`) asks this before it
//! writes the response head downstream; the relay then frames the body
//! bytes accordingly.

use super::encode::DownstreamFraming;
use super::parse::Framing;
use super::Version;

/// The client's framing for an upstream body framed as `upstream`.
pub fn downstream_framing(upstream: Framing, client: Version) -> DownstreamFraming {
    match (upstream, client) {
        (Framing::Empty, _) => DownstreamFraming::Empty,
        (Framing::Length(n), _) => DownstreamFraming::Length(n),
        (Framing::Chunked, Version::Http11) => DownstreamFraming::ChunkedPassthrough,
        (Framing::Chunked, Version::Http10) => DownstreamFraming::UntilClose { dechunk: true },
        // A close-delimited body becomes chunked for an HTTP/1.1 client, so
        // its connection can stay open.
        (Framing::UntilClose, Version::Http11) => DownstreamFraming::ChunkEncode,
        (Framing::UntilClose, Version::Http10) => DownstreamFraming::UntilClose { dechunk: false },
    }
}

/// What decides whether the client connection ends with this response.
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// The client asked to keep it (HTTP/1.1 default, or 1.0 keep-alive).
    pub client_wants: bool,
    /// The request body has been read to its end: an unread rest would be
    /// taken for the next request.
    pub request_read: bool,
    /// The shard is draining.
    pub draining: bool,
}

/// Whether the response ends the client connection.
pub fn closes_connection(mode: DownstreamFraming, keep: KeepAlive) -> bool {
    !keep.client_wants || !keep.request_read || keep.draining || matches!(mode, DownstreamFraming::UntilClose { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_table() {
        const CASES: &[(Framing, Version, DownstreamFraming)] = &[
            (Framing::Empty, Version::Http11, DownstreamFraming::Empty),
            (Framing::Length(5), Version::Http10, DownstreamFraming::Length(5)),
            (Framing::Chunked, Version::Http11, DownstreamFraming::ChunkedPassthrough),
            (Framing::Chunked, Version::Http10, DownstreamFraming::UntilClose { dechunk: true }),
            (Framing::UntilClose, Version::Http11, DownstreamFraming::ChunkEncode),
            (Framing::UntilClose, Version::Http10, DownstreamFraming::UntilClose { dechunk: false }),
        ];
        for &(upstream, client, want) in CASES {
            assert_eq!(downstream_framing(upstream, client), want, "{upstream:?} to {client:?}");
        }
    }

    #[test]
    fn the_connection_closes_unless_everything_allows_keep_alive() {
        let all = KeepAlive { client_wants: true, request_read: true, draining: false };
        assert!(!closes_connection(DownstreamFraming::Length(1), all));
        assert!(closes_connection(DownstreamFraming::UntilClose { dechunk: false }, KeepAlive { ..all }));
        assert!(closes_connection(DownstreamFraming::Length(1), KeepAlive { request_read: false, ..all }));
        assert!(closes_connection(DownstreamFraming::Length(1), KeepAlive { client_wants: false, ..all }));
        assert!(closes_connection(DownstreamFraming::Length(1), KeepAlive { draining: true, ..all }));
    }
}
