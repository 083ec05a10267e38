//! The request every connection sends, encoded once at start-up.
//!
//! All requests of a run are identical, so the bytes are built once and
//! shared; the hot loop only hands the same buffer to the kernel again.

use crate::target::Target;
use std::fmt;

/// Largest request body `--body-size` accepts. The whole request lives in
/// memory (one copy per thread), so this bounds the tool's own footprint.
pub const MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

/// Most `-H` headers accepted; far above any real scenario, low enough that
/// a runaway script cannot build a megabyte head by accident.
pub const MAX_EXTRA_HEADERS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body_size: usize,
    /// `--new-conn`: ask the server to close, so each request is one
    /// connection's whole life and TIME_WAIT lands on the server side.
    pub close: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    BadMethod(String),
    BadHeaderName(String),
    BadHeaderValue(String),
    /// Content-Length and Transfer-Encoding are ours to write: a second,
    /// user-written framing header would make an ambiguous (smuggling-shaped)
    /// request.
    FramingHeader(String),
    BodyTooLarge(usize),
    TooManyHeaders(usize),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadMethod(m) => write!(f, "method {m:?} is not an HTTP token"),
            RequestError::BadHeaderName(n) => write!(f, "header name {n:?} is not an HTTP token"),
            RequestError::BadHeaderValue(n) => {
                write!(f, "header {n:?} has a control character (CR/LF/NUL) in its value")
            }
            RequestError::FramingHeader(n) => {
                write!(f, "-H {n:?} is not allowed: the body framing is set by --body-size")
            }
            RequestError::BodyTooLarge(n) => {
                write!(f, "--body-size {n} exceeds the limit of {MAX_BODY_SIZE} bytes")
            }
            RequestError::TooManyHeaders(n) => {
                write!(f, "{n} -H headers exceed the limit of {MAX_EXTRA_HEADERS}")
            }
        }
    }
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

impl RequestSpec {
    /// Whether the response will have no body whatever its headers say
    /// (RFC 9112 §6.3 rule 1): the framing parser must know.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether a client may send the request again after a failure that
    /// left its outcome unknown (RFC 9110 §9.2.2; browsers and HTTP
    /// libraries retry these once when a reused connection closes first).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
    }

    /// Build the wire bytes. Order: request line, Host (unless given with
    /// -H), the -H headers as written, Content-Length, Connection, body.
    pub fn encode(&self, target: &Target) -> Result<Vec<u8>, RequestError> {
        if !is_token(&self.method) {
            return Err(RequestError::BadMethod(self.method.clone()));
        }
        if self.headers.len() > MAX_EXTRA_HEADERS {
            return Err(RequestError::TooManyHeaders(self.headers.len()));
        }
        if self.body_size > MAX_BODY_SIZE {
            return Err(RequestError::BodyTooLarge(self.body_size));
        }
        let mut has_host = false;
        for (name, value) in &self.headers {
            if !is_token(name) {
                return Err(RequestError::BadHeaderName(name.clone()));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(RequestError::BadHeaderValue(name.clone()));
            }
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(RequestError::FramingHeader(name.clone()));
            }
            has_host |= name.eq_ignore_ascii_case("host");
        }

        let mut out = Vec::with_capacity(256 + self.body_size);
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, target.path).as_bytes());
        if !has_host {
            out.extend_from_slice(format!("Host: {}\r\n", target.authority).as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        // A body-carrying method gets an explicit `Content-Length: 0` so a
        // strict server does not answer 411 Length Required.
        let wants_length = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if self.body_size > 0 || wants_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body_size).as_bytes());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.resize(out.len() + self.body_size, b'x');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::parse("http://127.0.0.1:8080/p?q=1").unwrap()
    }

    fn spec(method: &str) -> RequestSpec {
        RequestSpec { method: method.into(), headers: vec![], body_size: 0, close: false }
    }

    #[test]
    fn encodes_plain_get() {
        let bytes = spec("GET").encode(&target()).unwrap();
        assert_eq!(bytes, b"GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec());
    }

    #[test]
    fn encodes_body_headers_and_close() {
        let s = RequestSpec {
            method: "POST".into(),
            headers: vec![("X-Key".into(), "abc".into()), ("host".into(), "api".into())],
            body_size: 3,
            close: true,
        };
        let bytes = s.encode(&target()).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nX-Key: abc\r\nhost: api\r\nContent-Length: 3\r\n\
             Connection: close\r\n\r\nxxx"
        );
    }

    #[test]
    fn post_without_body_says_length_zero() {
        let bytes = spec("POST").encode(&target()).unwrap();
        assert!(String::from_utf8(bytes).unwrap().contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn refuses_bad_input() {
        let mut s = spec("GE T");
        assert_eq!(s.encode(&target()), Err(RequestError::BadMethod("GE T".into())));
        s = spec("GET");
        s.headers = vec![("Bad Name".into(), "v".into())];
        assert!(matches!(s.encode(&target()), Err(RequestError::BadHeaderName(_))));
        s.headers = vec![("X".into(), "a\r\nInjected: 1".into())];
        assert!(matches!(s.encode(&target()), Err(RequestError::BadHeaderValue(_))));
        s.headers = vec![("Transfer-Encoding".into(), "chunked".into())];
        assert!(matches!(s.encode(&target()), Err(RequestError::FramingHeader(_))));
        s.headers = vec![("content-length".into(), "5".into())];
        assert!(matches!(s.encode(&target()), Err(RequestError::FramingHeader(_))));
    }

    #[test]
    fn limits_trip() {
        let mut s = spec("POST");
        s.body_size = MAX_BODY_SIZE + 1;
        assert_eq!(s.encode(&target()), Err(RequestError::BodyTooLarge(MAX_BODY_SIZE + 1)));
        s.body_size = 0;
        s.headers = vec![("X".into(), "v".into()); MAX_EXTRA_HEADERS + 1];
        assert_eq!(s.encode(&target()), Err(RequestError::TooManyHeaders(MAX_EXTRA_HEADERS + 1)));
        s.headers.pop();
        assert!(s.encode(&target()).is_ok());
    }
}
