//! Micro-benchmark: what it costs to know that a pooled upstream
//! connection is still clean when it is checked out (see "Pooled upstream
//! connections: liveness" in docs/architecture.md).
//!
//!     cargo bench --bench pool_checkout
//!
//! Two ways, on an idle connected loopback socket, best of several
//! batches, printed as ns per checkout:
//! - `peek`: one `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte (what
//!   `UpstreamStream::is_reusable` does);
//! - `io_uring poll`: the other design, a poll armed while the connection
//!   sits in the pool and removed at checkout: a POLL_ADD, then a
//!   POLL_REMOVE, both completions reaped (one `io_uring_enter` each, as a
//!   runtime batching nothing else would pay; a busy runtime shares the
//!   enters, not the kernel work).
//!
//! For comparing designs on the same machine; harness = false, std only.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

const BATCHES: usize = 7;
const BATCH_TIME: Duration = Duration::from_millis(200);

fn best_ns_per_op(mut op: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..BATCHES {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < BATCH_TIME {
            for _ in 0..256 {
                op();
            }
            n += 256;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let _client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (idle, _) = listener.accept().expect("accept");
    let fd = idle.as_raw_fd();

    let peek = best_ns_per_op(|| {
        let mut probe = 0u8;
        // SAFETY: a one-byte buffer we own; MSG_PEEK consumes nothing.
        let n = unsafe { libc::recv(fd, (&mut probe as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        black_box(n);
    });
    println!("peek             {peek:8.0} ns per checkout");

    let mut ring = match IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => {
            println!("io_uring poll    unavailable here: {e}");
            return;
        }
    };
    let poll = best_ns_per_op(|| {
        let add = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32).build().user_data(1);
        // SAFETY: the fd outlives the operation (removed below, reaped).
        unsafe { ring.submission().push(&add).expect("sq space") };
        ring.submit().expect("submit poll");
        let remove = opcode::PollRemove::new(1).build().user_data(2);
        // SAFETY: as above.
        unsafe { ring.submission().push(&remove).expect("sq space") };
        ring.submit_and_wait(2).expect("submit remove");
        for cqe in ring.completion() {
            black_box(cqe.result());
        }
    });
    println!("io_uring poll    {poll:8.0} ns per checkout (arm + remove)");
    println!("ratio            {:8.2}x", poll / peek);
}
