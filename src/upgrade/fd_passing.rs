//! Passing open file descriptors between processes over a Unix stream
//! socket (`SCM_RIGHTS` ancillary data), as HAProxy's `-x` and Envoy's hot
//! restart do. The receiver gets its own descriptors for the same open
//! sockets: a listening socket handed over keeps its accept queue.
//!
//! Every batch of descriptors rides on exactly one payload byte, and the
//! receiver asks for exactly one byte per `recvmsg`: a stream socket never
//! merges ancillary data of two sends into one read that way, and no plain
//! `read` ever swallows (and closes) descriptors in flight.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Descriptors per message (the kernel's `SCM_MAX_FD` is 253).
pub const FDS_PER_MESSAGE: usize = 200;
/// The payload byte that carries a batch.
const BATCH_MARK: u8 = b'F';

/// Sends `fds` in batches of at most [`FDS_PER_MESSAGE`].
pub fn send_fds(stream: &UnixStream, fds: &[RawFd]) -> io::Result<()> {
    for batch in fds.chunks(FDS_PER_MESSAGE) {
        send_batch(stream, batch)?;
    }
    Ok(())
}

/// Receives `count` descriptors sent by [`send_fds`].
pub fn recv_fds(stream: &UnixStream, count: usize) -> io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(count);
    while fds.len() < count {
        let want = (count - fds.len()).min(FDS_PER_MESSAGE);
        let batch = recv_batch(stream, want)?;
        if batch.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a message without descriptors"));
        }
        fds.extend(batch);
    }
    Ok(fds)
}

fn cmsg_space(count: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((count * std::mem::size_of::<RawFd>()) as u32) as usize }
}

fn send_batch(stream: &UnixStream, fds: &[RawFd]) -> io::Result<()> {
    let mut byte = [BATCH_MARK];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // u64 words keep the control buffer aligned for `cmsghdr`.
    let mut control = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid; every pointer set below points
    // into `iov`, `byte` or `control`, which outlive the sendmsg call, and
    // CMSG_FIRSTHDR/CMSG_DATA stay within `control`, sized by CMSG_SPACE
    // for `fds.len()` descriptors.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        loop {
            let n = libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if n == 1 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(if n < 0 { e } else { io::Error::new(io::ErrorKind::WriteZero, "descriptor batch not sent") });
        }
    }
}

fn recv_batch(stream: &UnixStream, max: usize) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let space = cmsg_space(max);
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: as in `send_batch`; MSG_CMSG_CLOEXEC makes every received
    // descriptor close-on-exec; the descriptors read out of the control
    // buffer are new ones owned by this process, each wrapped once.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fds = Vec::new();
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the other process closed the upgrade socket"));
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "more descriptors than announced"));
        }
        if byte[0] != BATCH_MARK {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a descriptor batch"));
        }
        Ok(fds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Listening sockets sent across keep their queue: a connection made
    /// before the hand-over is accepted from the received descriptor.
    #[test]
    fn listening_sockets_cross_with_their_accept_queue() {
        let (a, b) = UnixStream::pair().unwrap();
        let listeners: Vec<std::net::TcpListener> =
            (0..FDS_PER_MESSAGE + 3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let first = listeners[0].local_addr().unwrap();
        let mut queued = std::net::TcpStream::connect(first).unwrap();
        let raw: Vec<RawFd> = listeners.iter().map(|l| l.as_raw_fd()).collect();
        let sender = std::thread::spawn(move || send_fds(&a, &raw).map(|()| listeners));
        let received = recv_fds(&b, FDS_PER_MESSAGE + 3).unwrap();
        let listeners = sender.join().unwrap().unwrap();
        drop(listeners);
        let taken = std::net::TcpListener::from(received.into_iter().next().unwrap());
        assert_eq!(taken.local_addr().unwrap(), first);
        let (mut accepted, _) = taken.accept().unwrap();
        queued.write_all(b"x").unwrap();
        let mut byte = [0u8];
        accepted.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn a_closed_peer_is_an_error_not_an_empty_batch() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert_eq!(recv_fds(&b, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
