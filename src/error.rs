//! The one error type of the data path: what went wrong (`ErrorKind`), on
//! which side (`Side`), and a short cause for logs and error bodies.
//!
//! The mapping from kind to HTTP status lives in exactly one place,
//! [`ErrorKind::status`], with no catch-all arm: adding a kind forces a
//! decision about its status. The body of every error response, in the
//! format the request's route asks for (plain text, or RFC 9457
//! `application/problem+json` on API routes), is made in one place too:
//! [`render`] (`error/render.rs`).

mod render;

pub use render::{render, ErrorFormat, Rendered};

use std::borrow::Cow;
use std::fmt;

/// Which peer the failure belongs to (Envoy's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client connection.
    Downstream,
    /// The backend connection.
    Upstream,
    /// shardgate itself.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is not valid HTTP/1.1 or its framing is ambiguous.
    BadRequest,
    /// A transfer coding we do not implement (only `chunked` is).
    UnsupportedTransferCoding,
    /// The request head is larger than `max_request_head_bytes`.
    HeadTooLarge,
    /// More header fields than `max_header_count`.
    TooManyHeaders,
    /// The request target is longer than `max_uri_bytes`.
    UriTooLong,
    /// The request body is larger than `max_request_body_bytes`.
    BodyTooLarge,
    /// The whole request head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// No body bytes arrived within `body_timeout`.
    BodyTimeout,
    /// The client closed or reset the connection.
    DownstreamClosed,
    /// No route matched the request.
    NoRoute,
    /// A policy found no acceptable credentials (API key missing or
    /// unknown): 401, with a `WWW-Authenticate` challenge.
    Unauthorized,
    /// A policy refused the request whoever sent it (an IP rule): 403.
    Forbidden,
    /// The shard is at `max_connections_per_shard`.
    ConnectionLimit,
    /// Every endpoint of the cluster is marked down on this shard (or
    /// failed for this request).
    NoHealthyEndpoint,
    /// TCP connect to the endpoint was refused or failed.
    UpstreamConnectFailed,
    /// TCP connect to the endpoint did not finish within `connect_timeout`.
    UpstreamConnectTimeout,
    /// The response head did not arrive within `response_timeout`.
    UpstreamResponseTimeout,
    /// The TLS handshake with the upstream failed (bad certificate, wrong
    /// name, no common version): never retried in plain text.
    UpstreamTlsFailed,
    /// The upstream closed or reset the connection before a complete response.
    UpstreamClosed,
    /// The upstream response is not valid HTTP/1.1 or its framing is ambiguous.
    UpstreamBadResponse,
    /// A body read from the upstream stalled past `body_timeout`.
    UpstreamBodyTimeout,
}

impl ErrorKind {
    /// The status answered downstream, if an answer can still be sent.
    /// `None`: the client is gone or the response has already started, so
    /// the only honest reaction is to close the connection.
    pub fn status(self) -> Option<u16> {
        use ErrorKind::*;
        match self {
            BadRequest => Some(400),
            UnsupportedTransferCoding => Some(501),
            HeadTooLarge => Some(431),
            TooManyHeaders => Some(431),
            UriTooLong => Some(414),
            BodyTooLarge => Some(413),
            HeaderTimeout => Some(408),
            BodyTimeout => Some(408),
            DownstreamClosed => None,
            NoRoute => Some(404),
            Unauthorized => Some(401),
            Forbidden => Some(403),
            ConnectionLimit => Some(503),
            NoHealthyEndpoint => Some(503),
            UpstreamConnectFailed => Some(502),
            UpstreamConnectTimeout => Some(504),
            UpstreamTlsFailed => Some(502),
            UpstreamResponseTimeout => Some(504),
            UpstreamClosed => Some(502),
            UpstreamBadResponse => Some(502),
            UpstreamBodyTimeout => Some(504),
        }
    }

    pub fn side(self) -> Side {
        use ErrorKind::*;
        match self {
            BadRequest
            | UnsupportedTransferCoding
            | HeadTooLarge
            | TooManyHeaders
            | UriTooLong
            | BodyTooLarge
            | HeaderTimeout
            | BodyTimeout
            | DownstreamClosed
            | Unauthorized
            | Forbidden => Side::Downstream,
            NoRoute | ConnectionLimit => Side::Internal,
            NoHealthyEndpoint
            | UpstreamConnectFailed
            | UpstreamConnectTimeout
            | UpstreamTlsFailed
            | UpstreamResponseTimeout
            | UpstreamClosed
            | UpstreamBadResponse
            | UpstreamBodyTimeout => Side::Upstream,
        }
    }

    /// Every kind in declaration order (so `ALL[k.index()] == k`), for
    /// tables keyed by kind (metrics).
    pub const ALL: [ErrorKind; 21] = {
        use ErrorKind::*;
        [
            BadRequest,
            UnsupportedTransferCoding,
            HeadTooLarge,
            TooManyHeaders,
            UriTooLong,
            BodyTooLarge,
            HeaderTimeout,
            BodyTimeout,
            DownstreamClosed,
            NoRoute,
            Unauthorized,
            Forbidden,
            ConnectionLimit,
            NoHealthyEndpoint,
            UpstreamConnectFailed,
            UpstreamConnectTimeout,
            UpstreamResponseTimeout,
            UpstreamTlsFailed,
            UpstreamClosed,
            UpstreamBadResponse,
            UpstreamBodyTimeout,
        ]
    };
    /// How many kinds there are.
    pub const COUNT: usize = ErrorKind::ALL.len();

    /// The kind's name in metric labels and access logs (snake case).
    pub fn name(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "bad_request",
            UnsupportedTransferCoding => "unsupported_transfer_coding",
            HeadTooLarge => "head_too_large",
            TooManyHeaders => "too_many_headers",
            UriTooLong => "uri_too_long",
            BodyTooLarge => "body_too_large",
            HeaderTimeout => "header_timeout",
            BodyTimeout => "body_timeout",
            DownstreamClosed => "downstream_closed",
            NoRoute => "no_route",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            ConnectionLimit => "connection_limit",
            NoHealthyEndpoint => "no_healthy_endpoint",
            UpstreamConnectFailed => "upstream_connect_failed",
            UpstreamConnectTimeout => "upstream_connect_timeout",
            UpstreamResponseTimeout => "upstream_response_timeout",
            UpstreamTlsFailed => "upstream_tls_failed",
            UpstreamClosed => "upstream_closed",
            UpstreamBadResponse => "upstream_bad_response",
            UpstreamBodyTimeout => "upstream_body_timeout",
        }
    }

    /// A dense index (0..COUNT) for per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A refusal by a policy stage: the request was whole and well
    /// formed, the proxy declined it (the connection may stay open).
    pub fn is_refusal(self) -> bool {
        matches!(self, ErrorKind::Unauthorized | ErrorKind::Forbidden)
    }
}

/// A data-path error: kind, side and a short human cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub side: Side,
    /// Names the reason, for logs and the response body. Never holds a
    /// credential (a key, a token): it is logged.
    pub cause: Cow<'static, str>,
    /// Response header fields the refusal carries (`WWW-Authenticate`,
    /// later `Retry-After`): (lowercase name, value). Empty for nearly
    /// every error, and then free (an empty `Vec` does not allocate).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
}

impl Error {
    pub fn new(kind: ErrorKind, cause: impl Into<Cow<'static, str>>) -> Error {
        Error { kind, side: kind.side(), cause: cause.into(), headers: Vec::new() }
    }

    /// The same error, answered with one more response header field.
    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Error {
        self.headers.push((name, value.into()));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({:?}): {}", self.kind, self.side, self.cause)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Standard reason phrases for the statuses shardgate itself produces (and
/// for echoing `/status/N`). Upstream reason phrases are forwarded as sent.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test per mapping the issue names, so a change to the map is seen.
    const MAP: &[(ErrorKind, Option<u16>)] = &[
        (ErrorKind::BadRequest, Some(400)),
        (ErrorKind::UnsupportedTransferCoding, Some(501)),
        (ErrorKind::HeadTooLarge, Some(431)),
        (ErrorKind::TooManyHeaders, Some(431)),
        (ErrorKind::UriTooLong, Some(414)),
        (ErrorKind::BodyTooLarge, Some(413)),
        (ErrorKind::HeaderTimeout, Some(408)),
        (ErrorKind::NoRoute, Some(404)),
        (ErrorKind::Unauthorized, Some(401)),
        (ErrorKind::Forbidden, Some(403)),
        (ErrorKind::ConnectionLimit, Some(503)),
        (ErrorKind::NoHealthyEndpoint, Some(503)),
        (ErrorKind::UpstreamConnectFailed, Some(502)),
        (ErrorKind::UpstreamConnectTimeout, Some(504)),
        (ErrorKind::UpstreamTlsFailed, Some(502)),
        (ErrorKind::UpstreamResponseTimeout, Some(504)),
        (ErrorKind::UpstreamClosed, Some(502)),
        (ErrorKind::UpstreamBadResponse, Some(502)),
        (ErrorKind::DownstreamClosed, None),
    ];

    #[test]
    fn all_is_in_declaration_order_with_distinct_names() {
        let mut names = std::collections::HashSet::new();
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
            assert!(names.insert(kind.name()), "{kind:?}");
        }
    }

    #[test]
    fn kinds_map_to_statuses() {
        for (kind, status) in MAP {
            assert_eq!(kind.status(), *status, "{kind:?}");
        }
    }

    #[test]
    fn sides() {
        assert_eq!(ErrorKind::BadRequest.side(), Side::Downstream);
        assert_eq!(ErrorKind::UpstreamClosed.side(), Side::Upstream);
        assert_eq!(ErrorKind::NoRoute.side(), Side::Internal);
        assert_eq!(ErrorKind::Unauthorized.side(), Side::Downstream);
        assert_eq!(ErrorKind::Forbidden.side(), Side::Downstream);
    }

    #[test]
    fn refusals_carry_their_headers() {
        let e = Error::new(ErrorKind::Unauthorized, "API key missing").with_header("www-authenticate", "ApiKey");
        assert_eq!(e.headers, [("www-authenticate", Cow::Borrowed("ApiKey"))]);
        assert!(e.kind.is_refusal());
        assert!(!ErrorKind::BadRequest.is_refusal());
        assert!(Error::new(ErrorKind::NoRoute, "x").headers.is_empty());
    }
}
