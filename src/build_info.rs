//! What `shardgate version` prints: the version, the build's commit,
//! compiler, target and profile (from `build.rs`), and the io drivers —
//! both are compiled in; whether this kernel grants io_uring is probed.

use std::fmt::Write;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("SHARDGATE_GIT_COMMIT");
pub const RUSTC_VERSION: &str = env!("SHARDGATE_RUSTC_VERSION");
pub const TARGET: &str = env!("SHARDGATE_TARGET");
pub const PROFILE: &str = env!("SHARDGATE_PROFILE");
/// The io drivers in every build: monoio's io_uring driver and its legacy
/// (epoll) driver, chosen at start by `--io-driver`.
pub const IO_DRIVERS: &[&str] = &["io_uring", "epoll"];

/// The `version` text, one `field: value` line each.
pub fn describe() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "shardgate {VERSION}");
    let _ = writeln!(out, "commit: {GIT_COMMIT}");
    let _ = writeln!(out, "rustc: {RUSTC_VERSION}");
    let _ = writeln!(out, "target: {TARGET}");
    let _ = writeln!(out, "profile: {PROFILE}");
    let _ = writeln!(out, "io drivers: {}", IO_DRIVERS.join(", "));
    let _ = writeln!(out, "io_uring on this kernel: {}", probe_io_uring());
    out
}

/// Whether this kernel lets the process set up an io_uring (seccomp,
/// `kernel.io_uring_disabled` and old kernels refuse it; `--io-driver
/// auto` then runs on epoll).
fn probe_io_uring() -> String {
    match io_uring::IoUring::new(2) {
        Ok(_) => "available".to_string(),
        Err(e) => format!("refused ({e}); --io-driver auto uses epoll"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_field_is_printed() {
        let text = super::describe();
        for field in [
            "shardgate ",
            "commit: ",
            "rustc: ",
            "target: ",
            "profile: ",
            "io drivers: io_uring, epoll",
            "io_uring on this kernel: ",
        ] {
            assert!(text.contains(field), "{field:?} missing in:\n{text}");
        }
        assert!(super::RUSTC_VERSION.starts_with("rustc "), "{}", super::RUSTC_VERSION);
    }
}
