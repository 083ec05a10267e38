//! A real headless Chromium, driven over the DevTools protocol, for tests
//! of pages the proxy serves (the admin dashboard).
//!
//! Chromium is started with `--remote-debugging-port=0` and a profile of
//! its own in a temporary directory; it prints the port it chose on
//! stderr (`DevTools listening on ws://127.0.0.1:PORT/…`). The page
//! target's websocket address comes from `GET /json/list`, and the test
//! talks to the page over that websocket: a minimal RFC 6455 client here
//! (text frames, masked as a client must; pings answered), enough for
//! the protocol's JSON messages. Every wait has a deadline generous
//! enough for a slow 2-core CI machine, and Chromium is closed through
//! the protocol, then killed through its own `Child` handle if it lingers.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::tempdir::TempDir;

/// Time for Chromium to start and report its DevTools port (a cold start
/// on a busy CI machine takes seconds).
const LAUNCH_DEADLINE: Duration = Duration::from_secs(60);
/// Time for one DevTools call to be answered.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The Chromium binary: `$CHROMIUM`, else `chromium` or
/// `chromium-browser` on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A headless Chromium with one page, driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    page: DevTools,
    log: Arc<Mutex<Vec<String>>>,
    _profile: TempDir,
}

impl Browser {
    /// Starts `exe` headless with a blank page.
    pub fn launch(exe: &std::path::Path) -> Browser {
        let profile = TempDir::new();
        let mut child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--window-size=1280,1100",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        // Chromium writes to stderr all its life: drain it on a thread
        // (kept for a failure message) and pick out the DevTools line.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, port) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
                    let port = rest.split('/').next().and_then(|hp| hp.rsplit(':').next()?.parse::<u16>().ok());
                    if let Some(port) = port {
                        let _ = found.send(port);
                    }
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let port = match port.recv_timeout(LAUNCH_DEADLINE) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chromium reported no DevTools port within {LAUNCH_DEADLINE:?}:\n{}",
                    log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
                );
            }
        };
        let page = DevTools::connect(&page_websocket(port));
        Browser { child, page, log, _profile: profile }
    }

    /// Opens `url` and waits for the page's `load`.
    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        let until = Instant::now() + CALL_DEADLINE;
        while self.eval("document.readyState") != "complete" {
            assert!(Instant::now() < until, "{url} did not finish loading within {CALL_DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of JavaScript `expression` in the page (returned by value:
    /// numbers, strings, plain objects).
    pub fn eval(&mut self, expression: &str) -> Value {
        let reply = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }));
        if let Some(exception) = reply.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        reply["result"]["value"].clone()
    }

    /// A PNG of the page as rendered now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let reply = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }));
        base64_decode(reply["data"].as_str().expect("screenshot data"))
    }

    /// One DevTools call; panics with Chromium's log on an error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        match self.page.call(method, params) {
            Ok(result) => result,
            Err(e) => panic!("{method}: {e}\n--- chromium ---\n{}", self.log()),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Politely first (Chromium then ends its own helper processes).
        let _ = self.page.call("Browser.close", json!({}));
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The websocket address of the browser's page target.
fn page_websocket(port: u16) -> String {
    let until = Instant::now() + LAUNCH_DEADLINE;
    loop {
        let targets = http_get_json(port, "/json/list");
        let page = targets
            .as_array()
            .and_then(|list| list.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string));
        if let Some(url) = page {
            return url;
        }
        assert!(Instant::now() < until, "no page target: {targets}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on Chromium's DevTools HTTP endpoint. It keeps the
/// connection open whatever the request says: the body is read by its
/// `Content-Length`, not to the end of the stream.
fn http_get_json(port: u16, path: &str) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
    stream.set_read_timeout(Some(CALL_DEADLINE)).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").expect("write");
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|n| body.len() >= n) {
                return serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                let text = String::from_utf8_lossy(&response);
                let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
                return serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
            }
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("GET {path} from DevTools: {e}"),
        }
    }
}

/// A websocket to one DevTools target.
struct DevTools {
    stream: TcpStream,
    next_id: u64,
}

impl DevTools {
    /// Opens `url` (`ws://127.0.0.1:PORT/devtools/page/ID`).
    fn connect(url: &str) -> DevTools {
        let rest = url.strip_prefix("ws://").unwrap_or_else(|| panic!("not a ws:// address: {url}"));
        let (host, path) = rest.split_once('/').map_or((rest, String::from("/")), |(h, p)| (h, format!("/{p}")));
        let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        stream.set_read_timeout(Some(CALL_DEADLINE)).expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        // RFC 6455 §4.1; the key is any 16 bytes in base64.
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: c2hhcmRnYXRlLXRlc3RzLQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("websocket handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap_or_else(|e| panic!("websocket handshake from {url}: {e}"));
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "websocket handshake refused: {head}");
        DevTools { stream, next_id: 0 }
    }

    /// Sends one call and waits for its answer (events in between are
    /// skipped): the `result`, or the protocol's `error`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.send(0x1, message.as_bytes()).map_err(|e| format!("send: {e}"))?;
        let until = Instant::now() + CALL_DEADLINE;
        while Instant::now() < until {
            let text = self.receive().map_err(|e| format!("receive: {e}"))?;
            let reply: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            if reply["id"] == id {
                return match reply.get("error") {
                    Some(error) => Err(error.to_string()),
                    None => Ok(reply["result"].clone()),
                };
            }
        }
        Err(format!("no answer within {CALL_DEADLINE:?}"))
    }

    /// One frame, FIN set, masked (RFC 6455 §5.3: a client masks every frame).
    fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        const MASK: [u8; 4] = [0x5a, 0x13, 0xc7, 0x2e];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        self.stream.write_all(&frame)
    }

    /// The next whole text message (fragments joined; pings answered).
    fn receive(&mut self) -> std::io::Result<String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head)?;
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.stream.read_exact(&mut n)?;
                    u16::from_be_bytes(n) as usize
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.stream.read_exact(&mut n)?;
                    u64::from_be_bytes(n) as usize
                }
                n => n as usize,
            };
            let mask = if head[1] & 0x80 != 0 {
                let mut m = [0u8; 4];
                self.stream.read_exact(&mut m)?;
                Some(m)
            } else {
                None
            };
            let mut payload = vec![0u8; len];
            self.stream.read_exact(&mut payload)?;
            if let Some(m) = mask {
                payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= m[i % 4]);
            }
            match opcode {
                // Continuation, text, binary.
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(String::from_utf8_lossy(&message).into_owned());
                    }
                }
                0x8 => return Err(std::io::Error::new(ErrorKind::ConnectionAborted, "websocket closed by chromium")),
                0x9 => self.send(0xA, &payload)?,
                _ => {}
            }
        }
    }
}

/// Standard base64 (RFC 4648 §4), as DevTools sends binary data.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_the_rfc_vectors() {
    for (text, want) in [("", ""), ("Zg==", "f"), ("Zm8=", "fo"), ("Zm9v", "foo"), ("Zm9vYmFy", "foobar")] {
        assert_eq!(base64_decode(text), want.as_bytes(), "{text}");
    }
}
