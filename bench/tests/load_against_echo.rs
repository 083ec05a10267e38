//! End to end against the real upstream of the benchmarks: `shardgate
//! echo`, started in this process on 127.0.0.1:0, driven by the built
//! `shardgate-load` for about a second in each mode the comparison uses.
//!
//! Assertions are on counts that must add up and on bytes, never on timing.

mod common;

use common::{assert_counts_add_up, n, run_load};
use shardgate::config::IoDriver;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// One echo server for the whole test binary; its threads live until the
/// process exits.
fn echo() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        shardgate::echo::start_background("127.0.0.1:0".parse().unwrap(), 1, IoDriver::Auto, std::time::Duration::ZERO)
            .expect("echo server starts")
    })
}

/// Every request of a clean run is ok, and everything it read is whole
/// responses.
fn assert_all_ok(v: &serde_json::Value) {
    assert_counts_add_up(v);
    assert!(n(v, &["requests"]) > 0, "{v}");
    assert_eq!(n(v, &["requests"]), n(v, &["ok"]), "{v}");
    assert_eq!(n(v, &["errors", "total"]), 0, "{v}");
    assert_eq!(n(v, &["status_codes", "200"]), n(v, &["ok"]), "{v}");
    assert_eq!(n(v, &["unfinished"]), 0, "{v}");
}

#[test]
fn closed_loop_keep_alive_small_responses() {
    let url = format!("http://{}/bytes/13", echo());
    let v = run_load(&["-t", "2", "-c", "8", "-d", "1s", "--warmup", "200ms", &url]);
    assert_all_ok(&v);
    // Each response is one head plus exactly 13 body bytes; the head is
    // the same every time, so bytes divide evenly by the request count.
    let (bytes, requests) = (n(&v, &["bytes_read"]), n(&v, &["requests"]));
    assert_eq!(bytes % requests, 0, "{v}");
    assert!(bytes / requests > 13, "{v}");
    assert!(n(&v, &["exchanges"]) > n(&v, &["requests"]), "warmup exchanges are counted: {v}");
}

#[test]
fn closed_loop_large_responses_arrive_whole() {
    let url = format!("http://{}/bytes/1048576", echo());
    let v = run_load(&["-c", "2", "-d", "1s", "--warmup", "0s", &url]);
    assert_all_ok(&v);
    assert!(n(&v, &["bytes_read"]) >= n(&v, &["requests"]) * 1_048_576, "{v}");
}

#[test]
fn open_loop_post_bodies_and_new_connections() {
    let url = format!("http://{}/bytes/13", echo());
    let v = run_load(&[
        "-c",
        "4",
        "-R",
        "400",
        "--new-conn",
        "-m",
        "POST",
        "--body-size",
        "4096",
        "-d",
        "1s",
        "--warmup",
        "0s",
        &url,
    ]);
    assert_all_ok(&v);
    assert_eq!(v["mode"], "open");
    assert_eq!(v["new_conn"], true);
    // At most what was scheduled in the window (400/s for 1 s) finished.
    assert!(n(&v, &["requests"]) + n(&v, &["unsent"]) <= 400, "{v}");
}

#[test]
fn echoed_request_comes_back_as_the_body() {
    // Any other path echoes the request: a 4 KiB POST comes back as its
    // head plus 4 KiB, so each response is longer than the body sent.
    let url = format!("http://{}/echo", echo());
    let v = run_load(&["-c", "2", "-m", "POST", "--body-size", "4096", "-d", "1s", "--warmup", "0s", &url]);
    assert_all_ok(&v);
    assert!(n(&v, &["bytes_read"]) > n(&v, &["requests"]) * 4096, "{v}");
}
