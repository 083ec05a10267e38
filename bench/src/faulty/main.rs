//! shardgate-faulty-upstream: an HTTP/1.1 upstream that misbehaves on
//! command, per request, as a standalone process — for the soak run
//! (`scripts/soak.sh`), which routes a small share of its traffic to it.
//!
//! The path names the fault (`fault.rs` has the table): `/fault/reset`,
//! `/fault/close`, `/fault/truncate`, `/fault/slow?ms=N`,
//! `/fault/malformed`; any other path gets a normal 200. Prints
//! `listening on ADDR` on stdout once bound (so `--listen 127.0.0.1:0`
//! works for tests), then serves until killed.

#![forbid(unsafe_code)]

mod fault;
mod serve;

use clap::Parser;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once (one thread each); more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

#[derive(Parser, Debug)]
#[command(
    name = "shardgate-faulty-upstream",
    version,
    about = "HTTP/1.1 upstream that misbehaves on command: /fault/reset, /fault/close, /fault/truncate, \
             /fault/slow?ms=N, /fault/malformed; any other path: 200"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shardgate-faulty-upstream: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("shardgate-faulty-upstream: {e}");
            return ExitCode::FAILURE;
        }
    }
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("shardgate-faulty-upstream: accept: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: closed
        }
        let counter = open.clone();
        let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
            let _ = serve::connection(stream);
            counter.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            open.fetch_sub(1, Ordering::AcqRel);
            eprintln!("shardgate-faulty-upstream: cannot spawn a connection thread: {e}");
        }
    }
    ExitCode::SUCCESS
}
