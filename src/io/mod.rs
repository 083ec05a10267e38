//! I/O plumbing shared by both sides of the proxy.
//!
//! - `rent.rs`: buffer-ownership helpers over monoio's rent-style I/O.
//! - `split.rs`: a stream's read and write halves, borrowed, so one task can
//!   read from a peer while it writes to it (the duplex relay).

pub mod rent;
pub mod split;

use std::os::fd::RawFd;

/// Makes the socket's close send a reset (RST) instead of a FIN
/// (`SO_LINGER` 0): for a connection closed with bytes its peer never took,
/// where a FIN would queue behind them and the kernel would keep the
/// orphaned socket and its send buffer (MiBs) for as long as the peer keeps
/// its window shut. Used for clients cut off for not reading and upstream
/// connections abandoned mid-upload (nginx's `reset_timedout_connection`,
/// HAProxy's `nolinger`).
pub fn reset_on_close(fd: RawFd) {
    let abort = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid `linger` for the length given; a failure (fd not a
    // socket) leaves the close as it was.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&abort as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
