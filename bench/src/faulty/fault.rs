//! What the faulty upstream does with one request: the command named by its
//! path, decided here without sockets (sans-io, table-tested).
//!
//! | path                 | behaviour                                                        |
//! |----------------------|------------------------------------------------------------------|
//! | `/fault/reset`       | reads the request, then resets the connection (RST, no response) |
//! | `/fault/close`       | reads the request, then closes (FIN) without a response byte     |
//! | `/fault/truncate`    | a head promising `TRUNCATE_PROMISED` body bytes, then only `TRUNCATE_SENT`, then FIN |
//! | `/fault/slow?ms=N`   | waits N ms (at most `MAX_SLOW`) before a normal 200              |
//! | `/fault/malformed`   | a response head no HTTP/1.1 parser accepts, then FIN             |
//! | anything else        | 200 with a short body, keep-alive                                |

use std::time::Duration;

/// Longest `/fault/slow` delay honoured: the soak uses it to trip the
/// proxy's response timeout, not to hold threads for ever.
pub const MAX_SLOW: Duration = Duration::from_secs(60);
/// Body length a `/fault/truncate` head announces.
pub const TRUNCATE_PROMISED: usize = 10_000;
/// Body bytes a `/fault/truncate` response actually sends before closing.
pub const TRUNCATE_SENT: usize = 1_000;
/// The whole `/fault/malformed` response: a status line without a status
/// code (RFC 9112 §4 requires three digits).
pub const MALFORMED: &[u8] = b"HTTP/1.1 OK\r\ncontent-length: 0\r\n\r\n";
/// Body of a normal answer (also after a `/fault/slow` wait).
pub const OK_BODY: &[u8] = b"ok\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave: 200, keep-alive.
    None,
    Reset,
    Close,
    Truncate,
    Slow(Duration),
    Malformed,
}

impl Fault {
    /// The command in a request target (`/fault/slow?ms=300`). An unknown
    /// `/fault/...` name or a bad `ms` is `None`: the upstream answers
    /// normally, and the soak counts that as a missed fault.
    pub fn of(target: &str) -> Fault {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match path {
            "/fault/reset" => Fault::Reset,
            "/fault/close" => Fault::Close,
            "/fault/truncate" => Fault::Truncate,
            "/fault/malformed" => Fault::Malformed,
            "/fault/slow" => match query_ms(query) {
                Some(ms) => Fault::Slow(Duration::from_millis(ms).min(MAX_SLOW)),
                None => Fault::None,
            },
            _ => Fault::None,
        }
    }
}

fn query_ms(query: &str) -> Option<u64> {
    query.split('&').find_map(|pair| pair.strip_prefix("ms=")?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[(&str, Fault)] = &[
        ("/fault/reset", Fault::Reset),
        ("/fault/close", Fault::Close),
        ("/fault/truncate", Fault::Truncate),
        ("/fault/malformed", Fault::Malformed),
        ("/fault/reset?x=1", Fault::Reset),
        ("/fault/slow?ms=250", Fault::Slow(Duration::from_millis(250))),
        ("/fault/slow?a=b&ms=7", Fault::Slow(Duration::from_millis(7))),
        ("/fault/slow?ms=99999999", Fault::Slow(MAX_SLOW)),
        ("/fault/slow", Fault::None),
        ("/fault/slow?ms=abc", Fault::None),
        ("/fault/other", Fault::None),
        ("/fault/reset/x", Fault::None),
        ("/", Fault::None),
        ("/ok", Fault::None),
    ];

    #[test]
    fn commands_from_targets() {
        for (target, want) in CASES {
            assert_eq!(Fault::of(target), *want, "{target}");
        }
    }

    #[test]
    fn malformed_is_refused_by_a_real_parser() {
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(MALFORMED).is_err());
    }
}
