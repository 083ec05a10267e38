//! shardgate-relay: the benchmarks' relay floor (`bench/compare`, contender
//! `relay`; docs/benchmarks.md). It accepts a client, opens one upstream
//! connection for it, and copies bytes both ways with plain non-blocking
//! reads and writes on epoll, on one thread: no HTTP parsing, no pooling,
//! no timers. What a proxy spends per request above this is its own work;
//! what this spends is the sockets' (two receives and two sends per
//! keep-alive exchange, plus accept and connect per new connection).
//!
//! Prints `listening on ADDR` on stdout once bound (so `--listen
//! 127.0.0.1:0` works for tests), then relays until killed. Pinning is the
//! caller's (`taskset`), as for the proxies it is compared with.

mod pair;
mod sys;

use clap::Parser;
use pair::{Pair, Progress, Side};
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

/// Bytes read per `read` call: enough for a 16 KiB response and its head
/// in one call; a 1 MiB body takes 16.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Listen backlog, as the peers' configs ask for (nginx `backlog=4096`).
const BACKLOG: i32 = 4096;
/// The listener's token; a pair's sockets have `slot << 1 | side`.
const LISTENER_TOKEN: u64 = u64::MAX;
/// After an accept failure such as EMFILE the (level-triggered) listener
/// stays ready: pause instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

#[derive(Parser, Debug)]
#[command(
    name = "shardgate-relay",
    version,
    about = "Byte relay for benchmarks: one upstream connection per client, bytes copied both ways on epoll, \
             one thread, no HTTP"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream every client is relayed to (IPv4).
    #[arg(long)]
    upstream: SocketAddrV4,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match listen(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardgate-relay: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("shardgate-relay: {e}");
            return ExitCode::FAILURE;
        }
    }
    match Relay::new(listener, args.upstream).and_then(|mut relay| relay.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A non-blocking listener whose accepted sockets inherit TCP_NODELAY.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Small responses leave at once, as the proxies' (TCP_NODELAY) do.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

struct Relay {
    epoll: sys::Epoll,
    listener: TcpListener,
    upstream: SocketAddrV4,
    pairs: Vec<Option<Pair>>,
    /// Slots free for the next pair.
    free: Vec<usize>,
    /// Slots closed during the current batch of events: freed only after
    /// it, so that a later event of the batch for a closed pair cannot
    /// reach a new pair in the same slot.
    closed: Vec<usize>,
    scratch: Vec<u8>,
    /// Upstream connects that failed (the first is printed).
    connect_failures: u64,
}

impl Relay {
    fn new(listener: TcpListener, upstream: SocketAddrV4) -> io::Result<Relay> {
        let epoll = sys::Epoll::new()?;
        epoll.add(listener.as_raw_fd(), sys::LISTENER_EVENTS, LISTENER_TOKEN)?;
        Ok(Relay {
            epoll,
            listener,
            upstream,
            pairs: Vec::new(),
            free: Vec::new(),
            closed: Vec::new(),
            scratch: vec![0; SCRATCH_BYTES],
            connect_failures: 0,
        })
    }

    fn run(&mut self) -> io::Result<()> {
        let mut ready = Vec::with_capacity(sys::EVENTS_PER_WAIT);
        loop {
            self.epoll.wait(&mut ready)?;
            for event in &ready {
                if event.token == LISTENER_TOKEN {
                    self.accept_one();
                    continue;
                }
                let slot = (event.token >> 1) as usize;
                let side = if event.token & 1 == 0 { Side::Client } else { Side::Upstream };
                let Some(pair) = self.pairs[slot].as_mut() else {
                    continue;
                };
                match pair.on_event(side, event.events, &mut self.scratch) {
                    Ok(Progress::Open) => {}
                    // Finished or failed: dropping the pair closes both
                    // sockets, which also takes them out of epoll.
                    Ok(Progress::Finished) | Err(_) => {
                        self.pairs[slot] = None;
                        self.closed.push(slot);
                    }
                }
            }
            self.free.append(&mut self.closed);
        }
    }

    fn accept_one(&mut self) {
        let client = match sys::accept(&self.listener) {
            Ok(c) => c,
            Err(e) => {
                if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionAborted) {
                    eprintln!("shardgate-relay: accept: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                return;
            }
        };
        let (upstream, connected) = match sys::connect(self.upstream) {
            Ok(u) => u,
            Err(e) => {
                self.connect_failed(e);
                return; // the client is closed
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.pairs.push(None);
            self.pairs.len() - 1
        });
        let token = (slot as u64) << 1;
        let pair = Pair::new(client, upstream, connected);
        let added = self
            .epoll
            .add(pair.client().as_raw_fd(), sys::CONNECTION_EVENTS, token)
            .and_then(|()| self.epoll.add(pair.upstream().as_raw_fd(), sys::CONNECTION_EVENTS, token | 1));
        match added {
            Ok(()) => self.pairs[slot] = Some(pair),
            Err(e) => {
                eprintln!("shardgate-relay: epoll_ctl: {e}");
                self.free.push(slot);
            }
        }
    }

    fn connect_failed(&mut self, e: io::Error) {
        self.connect_failures += 1;
        if self.connect_failures == 1 {
            eprintln!("shardgate-relay: connect to {}: {e} (later failures are not printed)", self.upstream);
        }
    }
}
