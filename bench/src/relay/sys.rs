//! The system calls the relay needs that std does not offer: epoll, an
//! accept that returns a non-blocking socket in one call (`accept4`), and a
//! non-blocking connect. Everything comes back as an owned std type, so
//! closing stays with `Drop` and reads, writes and shutdowns go through std.

use std::io;
use std::mem::size_of;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// A connection socket's registration: readable, writable and peer-closed,
/// edge-triggered. Registered once; the relay never re-arms (no
/// `epoll_ctl` per request), it remembers readiness itself (`pair.rs`).
pub const CONNECTION_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// The listener's registration: level-triggered, so one `accept` per event
/// is enough (nginx's default, `multi_accept off`) and no call is spent on
/// the `EAGAIN` that draining an edge-triggered listener would end with.
pub const LISTENER_EVENTS: u32 = libc::EPOLLIN as u32;

pub const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP) as u32;
pub const WRITABLE: u32 = (libc::EPOLLOUT | libc::EPOLLHUP) as u32;
pub const PEER_CLOSED: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32;
pub const ERROR: u32 = libc::EPOLLERR as u32;

/// Events taken from the kernel per `epoll_wait`.
pub const EVENTS_PER_WAIT: usize = 256;

pub struct Epoll {
    fd: OwnedFd,
}

/// One ready file descriptor: its events and the token it was added with.
#[derive(Clone, Copy)]
pub struct Ready {
    pub events: u32,
    pub token: u64,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Watch `fd` for `events`, reported with `token`. Closing `fd` (never
    /// duplicated here) removes it again, so there is no `remove`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` lives across the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Block until something is ready; fills `out` (cleared first).
    /// An interrupted wait returns with `out` empty.
    pub fn wait(&self, out: &mut Vec<Ready>) -> io::Result<()> {
        out.clear();
        let mut raw = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        // SAFETY: `raw` holds EVENTS_PER_WAIT entries, the length passed.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), raw.as_mut_ptr(), EVENTS_PER_WAIT as i32, -1) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(err) };
        }
        // The struct is packed on x86_64: copy the fields out, never borrow them.
        out.extend(raw[..n as usize].iter().map(|e| Ready { events: e.events, token: e.u64 }));
        Ok(())
    }
}

/// Accept one connection, already non-blocking (one system call, where
/// std's accept + `set_nonblocking` would take two). TCP_NODELAY comes
/// from the listener: Linux copies it to accepted sockets.
pub fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    // SAFETY: null address and length pointers are allowed: the peer's
    // address is not wanted.
    let fd = unsafe {
        libc::accept4(listener.as_raw_fd(), ptr::null_mut(), ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor from the kernel, owned by no one else.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

/// Start connecting to `addr` without waiting: the socket, and whether it
/// is connected already (else it becomes writable once it is, or reports
/// the error through `SO_ERROR`).
pub fn connect(addr: SocketAddrV4) -> io::Result<(TcpStream, bool)> {
    // SAFETY: no pointers; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor from the kernel, owned by no one else; from
    // here on an early return closes it.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_nodelay(true)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip().octets()) },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in and its size is passed with it.
    let rc = unsafe {
        libc::connect(fd, (&sin as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    if rc == 0 {
        return Ok((stream, true));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok((stream, false))
    } else {
        Err(err)
    }
}
