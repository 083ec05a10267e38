//! Helpers shared by the end-to-end tests: run the built `shardgate-load`
//! bounded in time, read its JSON, check the counts that must add up.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a run may take before the test calls it hung: the runs below
/// ask for about a second, the tool's own drain bound adds at most 2 s.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Run the binary with `args`, bounded by `RUN_LIMIT`; return its JSON.
pub fn run_load(args: &[&str]) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardgate-load"))
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            // Only our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("shardgate-load did not stop within {RUN_LIMIT:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"))
}

pub fn n(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

/// The invariants every run must satisfy, whatever the server did.
pub fn assert_counts_add_up(v: &serde_json::Value) {
    let errors: u64 =
        ["connect", "tls", "timeout", "status", "protocol", "io"].iter().map(|k| n(v, &["errors", k])).sum();
    assert_eq!(n(v, &["errors", "total"]), errors, "{v}");
    assert_eq!(n(v, &["requests"]), n(v, &["ok"]) + errors, "{v}");
    // Every complete response (ok or wrong status) has a latency and a
    // status code; failures have neither.
    let by_status: u64 = v["status_codes"].as_object().unwrap().values().map(|c| c.as_u64().unwrap()).sum();
    let complete = n(v, &["ok"]) + n(v, &["errors", "status"]);
    assert_eq!(by_status, complete, "{v}");
    assert_eq!(n(v, &["latency_us", "count"]), complete, "{v}");
    // The whole run (warmup and drain too) holds at least the window.
    assert!(n(v, &["exchanges"]) >= n(v, &["requests"]), "{v}");
}
