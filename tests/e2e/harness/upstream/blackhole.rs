//! Upstream addresses that never answer: one that refuses connections
//! (nothing listens), one whose handshakes never complete (a full accept
//! queue: a connect timeout on loopback), and one that completes them in
//! the kernel but never accepts, reads or answers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// An address nothing listens on: connecting to it is refused.
pub fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}

/// A listener whose accept queue is full and never drained: new TCP
/// handshakes to it are not completed (Linux drops the SYN while the accept
/// queue is full), so a connect attempt hangs until the connector's own
/// timeout — a connect timeout reproduced on loopback.
pub struct Blackhole {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

/// Room in a [`Blackhole::silent`] listener's accept queue.
const SILENT_BACKLOG: i32 = 128;

impl Blackhole {
    /// `None` when this kernel completes handshakes even with a full queue
    /// (then a connect timeout cannot be produced on loopback).
    pub fn start() -> Option<Blackhole> {
        let (socket, addr) = listening(0)?;
        let mut queued = Vec::new();
        // Fill the queue until a connect attempt no longer completes.
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(_) => return Some(Blackhole { addr, _listener: socket, _queued: queued }),
            }
        }
        None
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A listener that never accepts, with room in its accept queue: the
    /// kernel completes the handshake and buffers the request, and nothing
    /// ever reads or answers it (a hung process, a full server).
    pub fn silent() -> Blackhole {
        let (socket, addr) = listening(SILENT_BACKLOG).expect("bind a silent listener");
        Blackhole { addr, _listener: socket, _queued: Vec::new() }
    }
}

fn listening(backlog: i32) -> Option<(socket2::Socket, SocketAddr)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    let bind: SocketAddr = "127.0.0.1:0".parse().ok()?;
    socket.bind(&bind.into()).ok()?;
    socket.listen(backlog).ok()?;
    let addr = socket.local_addr().ok()?.as_socket()?;
    Some((socket, addr))
}
