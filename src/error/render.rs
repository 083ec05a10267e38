//! The one error renderer: the body (and its content type) of every
//! response the proxy makes for an error or a refusal, in the format the
//! request's route asks for (`error_format`).
//!
//! Where it sits: `downstream/respond.rs::respond_error` calls it with the
//! failed request's error, status and request id; the route (when one
//! matched) chose the format at config load. Plain text is the default
//! and what every request without a route gets; API routes set
//! `error_format = "problem+json"` and get RFC 9457 problem details,
//! which API clients parse instead of scraping text. A gRPC shape joins
//! here with HTTP/2.

use super::{reason_phrase, Error};

/// How a route's error responses are written (`error_format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `text/plain`: `401 Unauthorized: reason` and the request id.
    #[default]
    Text,
    /// `application/problem+json` (RFC 9457): `type`, `title`, `status`,
    /// `detail` (the reason), and the extension members `error` (the
    /// kind's name, as in logs and metrics) and `request_id`.
    ProblemJson,
}

impl ErrorFormat {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] = &[("text", Self::Text), ("problem+json", Self::ProblemJson)];

    pub fn word(self) -> &'static str {
        match self {
            ErrorFormat::Text => "text",
            ErrorFormat::ProblemJson => "problem+json",
        }
    }
}

/// An error response's body and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub content_type: &'static [u8],
    pub body: Vec<u8>,
}

/// The body of the response answering `error` with `status`.
pub fn render(error: &Error, status: u16, format: ErrorFormat, request_id: &[u8]) -> Rendered {
    let reason = reason_phrase(status);
    match format {
        ErrorFormat::Text => {
            let mut body = Vec::with_capacity(64 + error.cause.len() + request_id.len());
            body.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
            body.push(b' ');
            body.extend_from_slice(reason.as_bytes());
            body.extend_from_slice(b": ");
            body.extend_from_slice(error.cause.as_bytes());
            body.extend_from_slice(b"\nrequest-id: ");
            body.extend_from_slice(String::from_utf8_lossy(request_id).as_bytes());
            body.push(b'\n');
            Rendered { content_type: b"text/plain; charset=utf-8", body }
        }
        ErrorFormat::ProblemJson => {
            // `about:blank`: the status says what kind of problem it is
            // (RFC 9457 section 4.2.1), so `title` is the reason phrase;
            // `error` tells the finer kind apart for programs.
            let mut body = Vec::with_capacity(128 + error.cause.len() + request_id.len());
            body.extend_from_slice(b"{\"type\":\"about:blank\",\"title\":");
            json_str(&mut body, reason.as_bytes());
            body.extend_from_slice(b",\"status\":");
            body.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
            body.extend_from_slice(b",\"detail\":");
            json_str(&mut body, error.cause.as_bytes());
            body.extend_from_slice(b",\"error\":");
            json_str(&mut body, error.kind.name().as_bytes());
            body.extend_from_slice(b",\"request_id\":");
            json_str(&mut body, request_id);
            body.extend_from_slice(b"}\n");
            Rendered { content_type: b"application/problem+json", body }
        }
    }
}

/// A JSON string of `bytes`: quotes, backslashes and control characters
/// escaped; bytes that are not UTF-8 (a request id is the client's) as
/// U+FFFD.
fn json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn text_names_status_reason_and_request_id() {
        let e = Error::new(ErrorKind::Unauthorized, "API key missing");
        let r = render(&e, 401, ErrorFormat::Text, b"abc123");
        assert_eq!(r.content_type, b"text/plain; charset=utf-8");
        assert_eq!(r.body, b"401 Unauthorized: API key missing\nrequest-id: abc123\n");
    }

    #[test]
    fn problem_json_is_rfc_9457_with_the_request_id() {
        let e = Error::new(ErrorKind::Forbidden, "client address denied by the route's ip_rules");
        let r = render(&e, 403, ErrorFormat::ProblemJson, b"req-\"7\"\n");
        assert_eq!(r.content_type, b"application/problem+json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("valid JSON");
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Forbidden");
        assert_eq!(v["status"], 403);
        assert_eq!(v["detail"], "client address denied by the route's ip_rules");
        assert_eq!(v["error"], "forbidden");
        assert_eq!(v["request_id"], "req-\"7\"\n", "escaped, and read back as sent");
    }

    #[test]
    fn problem_json_escapes_control_bytes_and_replaces_invalid_utf8() {
        let e = Error::new(ErrorKind::BadRequest, "bad\u{1}");
        let r = render(&e, 400, ErrorFormat::ProblemJson, &[b'a', 0xff]);
        let text = String::from_utf8(r.body).expect("the body is UTF-8");
        assert!(text.contains("\"detail\":\"bad\\u0001\""), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["request_id"], "a\u{fffd}");
    }

    #[test]
    fn words_round_trip() {
        for &(word, format) in ErrorFormat::WORDS {
            assert_eq!(format.word(), word);
        }
        assert_eq!(ErrorFormat::WORDS[0].1, ErrorFormat::default());
    }
}
