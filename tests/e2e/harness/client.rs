//! A raw-socket HTTP/1.1 client: tests write exact bytes and read exactly
//! what the proxy sent back.
//!
//! The response reader understands Content-Length, chunked and
//! close-delimited bodies, 1xx interim responses and HEAD; it records how the
//! body was framed so tests can assert on it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::upstream::find;

/// How long any single read waits before the test gives up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a streamed response body goes, piece by piece.
pub type Sink<'a, 's> = &'a mut (dyn FnMut(&[u8]) + 's);

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body by definition (1xx, 204, 304, HEAD).
    None,
    ContentLength,
    Chunked,
    /// Read until the proxy closed the connection.
    Close,
}

#[derive(Debug, Clone)]
pub struct Response {
    /// e.g. `HTTP/1.1`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub raw_head: Vec<u8>,
    /// The decoded body (empty when it was streamed into a sink instead).
    pub body: Vec<u8>,
    pub framing: BodyFraming,
    /// Whether the proxy closed the connection after this response (known
    /// only when the reader looked for it: [`send_raw`],
    /// [`Client::read_response_then_close`], or a close-delimited body).
    pub closed: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// Whether list-valued header `name` contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name).iter().flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a [`Client`] reads and writes: a plain TCP stream, or a TLS stream
/// over one (`super::tls`). Timeouts and addresses come from the socket.
pub trait Transport: Read + Write + Send {
    fn socket(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

/// A client connection to the proxy.
pub struct Client {
    stream: Box<dyn Transport>,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("set read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client::over(Box::new(stream))
    }

    /// A client over an established transport (e.g. a TLS stream whose
    /// handshake is done); its socket gets the usual read timeout.
    pub fn over(stream: Box<dyn Transport>) -> Client {
        stream.socket().set_read_timeout(Some(READ_TIMEOUT)).expect("set read timeout");
        Client { stream, buf: Vec::new(), eof: false }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.socket().local_addr().expect("local addr")
    }

    /// Writes all of `bytes` in one `write_all`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("write to proxy: {e}"));
    }

    /// Writes, returning the error instead of panicking (the proxy may have
    /// closed already).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// `GET path HTTP/1.1` with `Host: localhost`, then its response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        self.read_response()
    }

    /// Writes `raw` and reads one final response.
    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    /// Reads the next final (non-1xx) response; panics on failure.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads the next response, including a 1xx interim one.
    pub fn read_any_response(&mut self) -> Response {
        self.read_one(false, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads the response to a HEAD request (no body whatever the headers say).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads the next final response, passing the body to `sink` piece by
    /// piece instead of keeping it.
    pub fn read_response_streaming(&mut self, sink: &mut dyn FnMut(&[u8])) -> Response {
        self.try_read_response(false, Some(sink)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads the next final response and then waits (up to 5 s) for the
    /// proxy to close the connection; `closed` says whether it did.
    pub fn read_response_then_close(&mut self) -> Result<Response, String> {
        let mut response = self.try_read_response(false, None)?;
        response.closed = response.closed || self.wait_closed(Duration::from_secs(5));
        Ok(response)
    }

    pub fn try_read_response<'s>(
        &mut self,
        head_request: bool,
        mut sink: Option<Sink<'_, 's>>,
    ) -> Result<Response, String> {
        loop {
            let response = self.read_one(head_request, sink.as_deref_mut())?;
            if !(100..200).contains(&response.status) {
                return Ok(response);
            }
        }
    }

    /// Reads until the proxy closes the connection or `within` passes.
    /// Returns the bytes read and whether the connection was closed (EOF or
    /// reset).
    pub fn read_until_close(&mut self, within: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + within;
        let mut data = std::mem::take(&mut self.buf);
        if self.eof {
            return (data, true);
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return (data, false);
            }
            let _ = self.stream.socket().set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    let _ = self.stream.socket().set_read_timeout(Some(READ_TIMEOUT));
                    return (data, true);
                }
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    // Reset by the proxy: closed too.
                    self.eof = true;
                    let _ = self.stream.socket().set_read_timeout(Some(READ_TIMEOUT));
                    return (data, true);
                }
            }
        }
    }

    /// Whether the proxy closes the connection within `within`; any bytes
    /// it sends meanwhile are discarded.
    pub fn wait_closed(&mut self, within: Duration) -> bool {
        self.read_until_close(within).1
    }

    /// Whether the connection is still open and silent for `for_at_least`.
    pub fn stays_open(&mut self, for_at_least: Duration) -> bool {
        let (data, closed) = self.read_until_close(for_at_least);
        data.is_empty() && !closed
    }

    /// Reads more bytes; Ok(false) on EOF.
    fn fill(&mut self) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!(
                        "no bytes from the proxy within {READ_TIMEOUT:?} (have {} unparsed bytes: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                    ));
                }
                // UnexpectedEof: a TLS peer closed without close_notify.
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof) => {
                    self.eof = true;
                    return Ok(false);
                }
                Err(e) => return Err(format!("read from proxy: {e}")),
            }
        }
    }

    fn read_line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line: Vec<u8> = self.buf.drain(..end + 2).collect();
                line.truncate(end);
                return Ok(line);
            }
            if !self.fill()? {
                return Err("connection closed in the middle of a chunked body".into());
            }
        }
    }

    fn read_exact_into(&mut self, mut n: u64, out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        while n > 0 {
            if self.buf.is_empty() && !self.fill()? {
                return Err(format!("connection closed with {n} body bytes missing"));
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            out(&self.buf[..take]);
            self.buf.drain(..take);
            n -= take as u64;
        }
        Ok(())
    }

    fn read_one<'s>(&mut self, head_request: bool, sink: Option<Sink<'_, 's>>) -> Result<Response, String> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if !self.fill()? {
                return Err(format!(
                    "connection closed before a complete response head (got {:?})",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let raw_head: Vec<u8> = self.buf.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&raw_head[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status =
            parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| format!("bad response header line {line:?}"))?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut response = Response {
            version,
            status,
            reason,
            headers,
            raw_head,
            body: Vec::new(),
            framing: BodyFraming::None,
            closed: false,
        };

        let mut kept = Vec::new();
        let mut keep = |bytes: &[u8]| kept.extend_from_slice(bytes);
        let out: &mut dyn FnMut(&[u8]) = match sink {
            Some(sink) => sink,
            None => &mut keep,
        };

        let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
        let chunked = response
            .header_all("transfer-encoding")
            .iter()
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        if no_body {
            response.framing = BodyFraming::None;
        } else if chunked {
            response.framing = BodyFraming::Chunked;
            loop {
                let line = self.read_line()?;
                let line = String::from_utf8_lossy(&line).into_owned();
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size, 16).map_err(|_| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    while !self.read_line()?.is_empty() {}
                    break;
                }
                self.read_exact_into(size, out)?;
                if !self.read_line()?.is_empty() {
                    return Err("chunk data not followed by CRLF".into());
                }
            }
        } else if let Some(len) = response.header("content-length").map(str::to_string) {
            response.framing = BodyFraming::ContentLength;
            let len: u64 = len.parse().map_err(|_| format!("bad Content-Length {len:?}"))?;
            self.read_exact_into(len, out)?;
        } else {
            response.framing = BodyFraming::Close;
            loop {
                if !self.buf.is_empty() {
                    out(&self.buf);
                    self.buf.clear();
                }
                if !self.fill()? {
                    break;
                }
            }
            response.closed = true;
        }
        response.body = kept;
        Ok(response)
    }
}

/// Connects, writes `raw` in one write, reads one final response and waits
/// (up to 5 s) to see whether the proxy closes the connection.
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> Response {
    try_send_raw(addr, raw).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_send_raw(addr: SocketAddr, raw: &[u8]) -> Result<Response, String> {
    let mut client = Client::connect(addr);
    client.try_send(raw).map_err(|e| format!("write to proxy: {e}"))?;
    client.read_response_then_close()
}

/// A one-off `GET path` with `Host: localhost` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    Client::connect(addr).get(path)
}

/// A one-off GET with the given `Host` header.
pub fn get_host(addr: SocketAddr, host: &str, path: &str) -> Response {
    Client::connect(addr).request(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
}

/// sha256 of a body as it streams by.
pub struct StreamHash {
    hasher: Sha256,
    pub len: u64,
}

impl Default for StreamHash {
    fn default() -> Self {
        StreamHash { hasher: Sha256::new(), len: 0 }
    }
}

impl StreamHash {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.hasher.update(bytes);
    }

    pub fn hex(self) -> String {
        super::hex(&self.hasher.finalize())
    }
}
