//! Listening sockets: one `SO_REUSEPORT` socket per listener per shard, so
//! the kernel spreads new connections over the shards and a connection
//! stays on the shard that accepted it.
//!
//! Sockets are bound on the main thread before any shard starts, so that a
//! bad or busy address is a startup error, and port 0 resolves to one port
//! that every shard then shares.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::http1::conn;
use crate::shard::Shard;

/// Pending-connection queue per socket (the kernel caps it at somaxconn).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Binds `count` reuse-port sockets on `addr`; returns them and the address
/// actually bound (port 0 resolved).
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        ensure_not_in_use(addr)?;
    }
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&bound.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        if bound.port() == 0 {
            bound = socket.local_addr()?.as_socket().ok_or_else(|| io::Error::other("listener has no inet address"))?;
        }
        sockets.push(socket.into());
    }
    Ok((sockets, bound))
}

/// `SO_REUSEPORT` would let a second shardgate (or anything else with the
/// option) silently share our port. A probe bind without it fails if any
/// socket already listens there.
fn ensure_not_in_use(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(io::ErrorKind::AddrInUse, format!("{addr} is already in use by another process"))
        } else {
            e
        }
    })
}

/// Accepts connections on one listener until the shard drains.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener_index: usize,
    listener: monoio::net::TcpListener,
    cancel: monoio::io::CancelHandle,
) {
    let max_connections = shard.config.listeners[listener_index].limits.max_connections_per_shard;
    loop {
        let accepted = listener.cancelable_accept(cancel.clone()).await;
        if shard.draining() {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        if shard.counters.active() >= max_connections as u64 {
            monoio::spawn(reject_over_limit(stream));
            continue;
        }
        shard.counters.connection_opened();
        let shard = shard.clone();
        monoio::spawn(async move {
            conn::serve(shard.clone(), listener_index, stream, peer, fd).await;
            shard.counters.connection_closed();
        });
    }
}

/// Above `max_connections_per_shard` a new connection gets a clear 503 and
/// is closed, rather than waiting unseen in the kernel's queue.
async fn reject_over_limit(mut stream: monoio::net::TcpStream) {
    use monoio::io::AsyncWriteRentExt;
    const BODY: &str = "503 Service Unavailable: connection limit reached\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(response.into_bytes()).await;
    let _ = monoio::io::AsyncWriteRent::shutdown(&mut stream).await;
}
