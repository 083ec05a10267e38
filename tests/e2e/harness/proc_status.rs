//! Resident memory of a process, from `/proc/PID/status`: the large-body
//! tests assert that streaming does not buffer whole bodies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `VmRSS` in bytes.
pub fn vm_rss(pid: u32) -> u64 {
    status_field_kib(pid, "VmRSS:") * 1024
}

/// `VmHWM` (peak resident set) in bytes.
pub fn vm_hwm(pid: u32) -> u64 {
    status_field_kib(pid, "VmHWM:") * 1024
}

fn status_field_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Samples `VmRSS` every few milliseconds on a thread until stopped, and
/// reports the highest value seen.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(vm_rss(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak.max(vm_rss(pid))
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling; returns the peak `VmRSS` seen, in bytes.
    pub fn peak(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("rss sampler thread")
    }
}
