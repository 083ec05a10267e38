//! `shardgate demo`: the whole product on a fresh machine with nothing
//! else installed. Starts the built-in echo upstream on a free port, a
//! proxy in front of it, sends real requests through the proxy, prints
//! them with the curl lines to try, then serves until Ctrl-C (or exits,
//! with `--once`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{Config, IoDriver};

/// How long the self-test waits for the proxy to accept.
const STARTUP_WAIT: Duration = Duration::from_secs(10);

pub fn run(listen: SocketAddr, once: bool) -> ExitCode {
    let echo = match crate::echo::start_background(
        "127.0.0.1:0".parse().expect("literal address"),
        1,
        IoDriver::Auto,
        std::time::Duration::ZERO,
    ) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("demo: cannot start the echo upstream: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(listener = %"echo", addr = %echo, "listening");
    let mut config = Config::quick_proxy(listen, vec![echo]);
    config.server.shards = Some(config.server.shards.unwrap_or(1).min(2));
    config.server.pin = false;

    std::thread::spawn(move || {
        let ok = self_test(listen);
        println!();
        println!("shardgate is proxying http://{listen} -> echo upstream http://{echo}. Try:");
        println!("  curl -i http://{listen}/hello");
        println!("  curl -i -d 'some body' http://{listen}/post");
        println!("  curl -s http://{listen}/bytes/1048576 | wc -c");
        println!("  curl -i http://{listen}/status/418");
        if once {
            println!("(--once: stopping)");
        } else {
            println!("Ctrl-C to stop.");
        }
        if once || !ok {
            // SAFETY: sending a signal to our own process has no memory effects.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
        }
    });
    match crate::shard::supervisor::serve(config, None) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// Sends one GET and one POST through the proxy and prints the exchanges.
fn self_test(proxy: SocketAddr) -> bool {
    let started = Instant::now();
    let requests: [&[u8]; 2] = [
        b"GET /hello?from=demo HTTP/1.1\r\nHost: demo.local\r\nConnection: close\r\n\r\n",
        b"POST /orders HTTP/1.1\r\nHost: demo.local\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"item\":\"tea\"}",
    ];
    for request in requests {
        let mut stream = loop {
            match TcpStream::connect(proxy) {
                Ok(s) => break s,
                Err(_) if started.elapsed() < STARTUP_WAIT => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    eprintln!("demo: proxy did not come up: {e}");
                    return false;
                }
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut response = Vec::new();
        if stream.write_all(request).is_err() || stream.read_to_end(&mut response).is_err() {
            eprintln!("demo: request through the proxy failed");
            return false;
        }
        println!("--- request sent to http://{proxy}");
        println!("{}", String::from_utf8_lossy(request).trim_end());
        println!("--- response (the body is what the echo upstream received)");
        println!("{}", String::from_utf8_lossy(&response).trim_end());
    }
    true
}
