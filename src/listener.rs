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

use std::sync::Arc;

use rustls::{HandshakeKind, ProtocolVersion, ServerConnection};

use crate::downstream::conn::{self, TlsInfo};
use crate::shard::generation::ShardGeneration;
use crate::shard::identity::ListenerId;
use crate::shard::Shard;
use crate::tls::stream::TlsStream;

/// Pending-connection queue per socket (the kernel caps it at somaxconn).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Binds `count` reuse-port sockets on `addr`; returns them and the address
/// actually bound (port 0 resolved).
/// Socket options of a listener's sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOptions {
    /// TCP_DEFER_ACCEPT (see `set_defer_accept`).
    pub defer_accept: bool,
    /// SO_SNDBUF, inherited by accepted connections.
    pub send_buffer_bytes: Option<usize>,
}

pub fn bind_shared(
    addr: SocketAddr,
    count: usize,
    options: SocketOptions,
) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        ensure_not_in_use(addr)?;
    }
    bind_reuse_port(addr, count, options)
}

/// Binds `count` more sockets into the `SO_REUSEPORT` group at `addr`,
/// without the probe of `bind_shared`: for a new process that took the
/// group's first sockets from the old one in an upgrade (`crate::upgrade`)
/// and runs more shards than the old one had.
pub fn bind_reuse_port(
    addr: SocketAddr,
    count: usize,
    options: SocketOptions,
) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if options.defer_accept {
            set_defer_accept(&socket)?;
        }
        if let Some(bytes) = options.send_buffer_bytes {
            socket.set_send_buffer_size(bytes)?;
        }
        socket.bind(&bound.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        if bound.port() == 0 {
            bound = socket.local_addr()?.as_socket().ok_or_else(|| io::Error::other("listener has no inet address"))?;
        }
        sockets.push(socket.into());
    }
    Ok((sockets, bound))
}

/// TCP_DEFER_ACCEPT with nginx's `deferred` value, 1 s: a connection is
/// handed to accept once its first data arrives. One that sends nothing
/// is accepted after the SYN-ACK retransmissions that fit in that second,
/// and then meets the header timeout like any other.
fn set_defer_accept(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let seconds: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// Accepts connections on one listener until the shard drains or a
/// reload removes the listener. Each connection starts on the shard's
/// newest generation (its limits and TLS config).
pub async fn accept_loop(
    shard: Rc<Shard>,
    id: ListenerId,
    listener: monoio::net::TcpListener,
    cancel: monoio::io::CancelHandle,
) {
    loop {
        let accepted = listener.cancelable_accept(cancel.clone()).await;
        let generation = shard.generation();
        let Some(listener_index) = generation.shared.listener_index(id) else {
            // Removed by a reload: the socket closes with this task.
            break;
        };
        // Draining: the socket closes with this task (in an upgrade the
        // new process holds it open, queue and all). A connection the
        // kernel handed over as the accept was cancelled (io_uring
        // completes an accept already under way) is served all the same:
        // dropping it would reset a client before its first byte.
        let stop = shard.draining();
        if stop && accepted.is_err() {
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
        // TCP_NODELAY is inherited from the listening socket (Linux
        // clones the listener's options; a test checks): no setsockopt here.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let max_connections = generation.config().listeners[listener_index].limits.max_connections_per_shard;
        if shard.counters.active() >= max_connections as u64 {
            monoio::spawn(reject_over_limit(stream));
            continue;
        }
        shard.counters.connection_opened();
        let shard = shard.clone();
        monoio::spawn(connection(shard, Accepted { generation, listener_index, id }, stream, peer, fd));
        if stop {
            break;
        }
    }
}

/// Which listener accepted a connection, in which generation.
pub struct Accepted {
    pub generation: Rc<ShardGeneration>,
    /// Index into the generation's `Config::listeners`.
    pub listener_index: usize,
    pub id: ListenerId,
}

/// One downstream connection's task, from accept to close.
async fn connection(
    shard: Rc<Shard>,
    accepted: Accepted,
    stream: monoio::net::TcpStream,
    peer: std::net::SocketAddr,
    fd: std::os::fd::RawFd,
) {
    match accepted.generation.shared.tls.listeners[accepted.listener_index].clone() {
        None => conn::serve(shard.clone(), accepted, stream, peer, fd, None).await,
        Some(tls) => {
            // Boxed: a TLS connection's state is larger (rustls session,
            // record buffers); plain connections should not be sized for it.
            Box::pin(async {
                let listener = &accepted.generation.config().listeners[accepted.listener_index];
                if let Some((stream, info)) = accept_tls(&shard, listener, stream, tls).await {
                    conn::serve(shard.clone(), accepted, stream, peer, fd, Some(info)).await;
                }
            })
            .await
        }
    }
    shard.counters.connection_closed();
}

/// The TLS handshake of a new downstream connection, bounded by the
/// listener's `header_timeout` (a stalled handshake is slowloris too).
/// Failures are counted and logged at debug level; the client sees the
/// TLS alert rustls sent.
async fn accept_tls(
    shard: &Shard,
    listener: &crate::config::Listener,
    stream: monoio::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Option<(TlsStream<ServerConnection>, TlsInfo)> {
    let session = match ServerConnection::new(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a TLS session");
            return None;
        }
    };
    let mut stream = TlsStream::new(stream, session);
    match monoio::time::timeout(listener.limits.header_timeout, stream.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            shard.counters.tls_failure();
            tracing::debug!(listener = %listener.name, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            shard.counters.tls_failure();
            tracing::debug!(listener = %listener.name, "TLS handshake timed out");
            return None;
        }
    }
    let session = stream.session();
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    let tls13 = session.protocol_version() == Some(ProtocolVersion::TLSv1_3);
    shard.counters.tls_handshake(tls13, resumed);
    let wants_identity = listener.tls.as_ref().is_some_and(|t| t.client_cert_header.is_some());
    let client_identity =
        if wants_identity { session.peer_certificates().and_then(crate::tls::certs::client_identity) } else { None };
    let version = Some(if tls13 { "TLSv1.3" } else { "TLSv1.2" });
    Some((stream, TlsInfo { client_identity, version }))
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

#[cfg(test)]
mod tests {
    use super::SocketOptions;

    /// Accepted connections take the listener's SO_SNDBUF: the bound on a
    /// slow client's kernel memory holds for every connection.
    #[test]
    fn accepted_connections_inherit_the_send_buffer_size() {
        let options = SocketOptions { send_buffer_bytes: Some(16 * 1024), ..SocketOptions::default() };
        let (listeners, addr) = super::bind_shared("127.0.0.1:0".parse().unwrap(), 1, options).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listeners[0].accept().unwrap();
        let size = socket2::SockRef::from(&accepted).send_buffer_size().unwrap();
        // Linux doubles the value for its bookkeeping.
        assert_eq!(size, 32 * 1024);
    }

    /// The accept loop relies on this instead of a setsockopt per connection.
    #[test]
    fn accepted_connections_inherit_tcp_nodelay_from_the_listener() {
        let (listeners, addr) =
            super::bind_shared("127.0.0.1:0".parse().unwrap(), 1, SocketOptions::default()).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listeners[0].set_nonblocking(false).unwrap();
        let (accepted, _) = listeners[0].accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }

    /// With defer_accept a connected client that has sent nothing is not
    /// handed to accept; its first bytes make it acceptable.
    #[test]
    fn a_deferred_listener_accepts_a_connection_once_it_has_data() {
        use std::io::Write;
        let (listeners, addr) = super::bind_shared(
            "127.0.0.1:0".parse().unwrap(),
            1,
            SocketOptions { defer_accept: true, ..SocketOptions::default() },
        )
        .unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let pending = listeners[0].accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(pending, Err(std::io::ErrorKind::WouldBlock), "no data yet: not acceptable");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match listeners[0].accept() {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("accept after data: {e}"),
            }
        }
        // Without the option the same connection is acceptable at once.
        let (plain, plain_addr) =
            super::bind_shared("127.0.0.1:0".parse().unwrap(), 1, SocketOptions::default()).unwrap();
        let _silent = std::net::TcpStream::connect(plain_addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(plain[0].accept().is_ok());
    }

    /// An idle keep-alive connection costs its task's future: keep it small
    /// (the pipeline and TLS states are boxed, so they are not part of it).
    #[test]
    fn a_plain_connection_task_stays_small() {
        let config = std::sync::Arc::new(crate::config::Config::quick_proxy(
            "127.0.0.1:0".parse().unwrap(),
            vec!["127.0.0.1:1".parse().unwrap()],
        ));
        let (generation, _) = crate::shard::generation::Generation::build(
            1,
            config,
            &mut crate::shard::identity::Identities::default(),
            None,
        )
        .unwrap();
        let shard = std::rc::Rc::new(crate::shard::Shard::new(0, std::sync::Arc::new(generation), Default::default()));
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let stream = monoio::net::TcpStream::from_std(client).unwrap();
            let accepted =
                super::Accepted { generation: shard.generation(), listener_index: 0, id: super::ListenerId(0) };
            let task = super::connection(shard, accepted, stream, "127.0.0.1:1".parse().unwrap(), -1);
            let size = std::mem::size_of_val(&task);
            assert!(size <= MAX_CONNECTION_TASK_BYTES, "connection task is {size} bytes");
        });
    }

    /// Measured 1.1 KiB when written; the bound leaves room, not a lot.
    const MAX_CONNECTION_TASK_BYTES: usize = 2 * 1024;
}
