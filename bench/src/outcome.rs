//! What became of one request: success or which kind of error.
//!
//! The kinds are the ones the report counts, and the mapping from a failure
//! to its kind is written here once, so the text report, the JSON and the
//! progress line cannot disagree.

use crate::client::ExchangeError;
use crate::response::FrameError;

/// Error kinds in report order. Their `name`s are JSON keys: stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection could not be opened (refused, unreachable, ...).
    Connect,
    /// The TLS handshake failed (certificate refused, no common version or
    /// cipher suite, an alert, or the server closed during it).
    Tls,
    /// No complete response within `--timeout` of sending.
    Timeout,
    /// A complete response whose status is not `--expect-status`.
    Status,
    /// A response that could not be framed or parsed.
    Protocol,
    /// A read or write failed, or the server closed before answering.
    Io,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] =
        [ErrorKind::Connect, ErrorKind::Tls, ErrorKind::Timeout, ErrorKind::Status, ErrorKind::Protocol, ErrorKind::Io];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Status => "status",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
        }
    }

    /// Position in `ALL`, for counter arrays.
    pub fn index(self) -> usize {
        match self {
            ErrorKind::Connect => 0,
            ErrorKind::Tls => 1,
            ErrorKind::Timeout => 2,
            ErrorKind::Status => 3,
            ErrorKind::Protocol => 4,
            ErrorKind::Io => 5,
        }
    }
}

/// Map a failed exchange to its kind.
pub fn classify_failure(err: &ExchangeError) -> ErrorKind {
    match err {
        ExchangeError::Connect(_) => ErrorKind::Connect,
        ExchangeError::Tls(_) => ErrorKind::Tls,
        ExchangeError::Timeout => ErrorKind::Timeout,
        ExchangeError::Io(_) => ErrorKind::Io,
        // A server closing an idle keep-alive connection just as we reuse
        // it is a connection event, not a malformed message.
        ExchangeError::Frame(FrameError::ClosedBeforeResponse) => ErrorKind::Io,
        ExchangeError::Frame(_) => ErrorKind::Protocol,
    }
}

/// A complete response is a success only with the expected status.
pub fn classify_status(status: u16, expected: u16) -> Result<(), ErrorKind> {
    if status == expected {
        Ok(())
    } else {
        Err(ErrorKind::Status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn failures_map_to_kinds() {
        let io_err = |k| io::Error::new(k, "x");
        let cases: Vec<(ExchangeError, ErrorKind)> = vec![
            (ExchangeError::Connect(io_err(io::ErrorKind::ConnectionRefused)), ErrorKind::Connect),
            // The kernel giving up on a SYN is still a connect failure; our
            // own --timeout is the only thing reported as a timeout.
            (ExchangeError::Connect(io_err(io::ErrorKind::TimedOut)), ErrorKind::Connect),
            (ExchangeError::Tls(io_err(io::ErrorKind::InvalidData)), ErrorKind::Tls),
            (ExchangeError::Tls(io_err(io::ErrorKind::UnexpectedEof)), ErrorKind::Tls),
            (ExchangeError::Timeout, ErrorKind::Timeout),
            (ExchangeError::Io(io_err(io::ErrorKind::ConnectionReset)), ErrorKind::Io),
            (ExchangeError::Io(io_err(io::ErrorKind::BrokenPipe)), ErrorKind::Io),
            (ExchangeError::Frame(FrameError::ClosedBeforeResponse), ErrorKind::Io),
            (ExchangeError::Frame(FrameError::Truncated), ErrorKind::Protocol),
            (ExchangeError::Frame(FrameError::BadContentLength), ErrorKind::Protocol),
            (ExchangeError::Frame(FrameError::TrailingBytes), ErrorKind::Protocol),
            (ExchangeError::Frame(FrameError::BadHead(httparse::Error::Token)), ErrorKind::Protocol),
        ];
        for (err, want) in cases {
            assert_eq!(classify_failure(&err), want, "{err:?}");
        }
    }

    #[test]
    fn status_must_match_expected() {
        assert_eq!(classify_status(200, 200), Ok(()));
        assert_eq!(classify_status(500, 200), Err(ErrorKind::Status));
        assert_eq!(classify_status(200, 204), Err(ErrorKind::Status));
        assert_eq!(classify_status(404, 404), Ok(()));
    }

    #[test]
    fn kinds_index_matches_all() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
