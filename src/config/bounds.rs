//! The allowed range of every bounded setting, checked by `validate` in
//! `file -> validate -> Config` and by the command-line flags that override
//! the same settings, so a flag accepts exactly what the file accepts.
//!
//! A value outside its range is an error: zero usually means a typo, and a
//! huge value defeats the limit it sets. Naming: a limit setting `max_x` is
//! allowed `MIN_X ..= MAX_X_CEILING`; any other setting `x` is allowed
//! `MIN_X ..= MAX_X`. `max_request_body_bytes` takes any size, and
//! `drain_timeout` may be zero.
//!
//! The `check_*` functions return the value, or a one-line message without
//! a field path (the caller adds the path, or the flag name).

use std::fmt::Display;
use std::time::Duration;

use super::units::{fmt_duration, fmt_size};

/// Smallest `max_request_head_bytes`: room for a request line and a Host.
pub const MIN_REQUEST_HEAD_BYTES: u64 = 64;
/// Largest `max_request_head_bytes` (Envoy's cap for max_request_headers_kb).
pub const MAX_REQUEST_HEAD_BYTES_CEILING: u64 = 8 * 1024 * 1024;
pub const MIN_HEADER_COUNT: usize = 1;
/// Largest `max_header_count`: the HTTP/1 parser has this many header slots.
pub const MAX_HEADER_COUNT_CEILING: usize = crate::http1::parse::MAX_HEADER_SLOTS;
pub const MIN_URI_BYTES: u64 = 16;
pub const MAX_URI_BYTES_CEILING: u64 = 8 * 1024 * 1024;
pub const MIN_CONNECTIONS_PER_SHARD: usize = 1;
pub const MAX_CONNECTIONS_PER_SHARD_CEILING: usize = 1 << 20;
/// Shortest timeout of any kind except `drain_timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Shortest `drain_timeout`: zero drops in-flight requests at once.
pub const MIN_DRAIN_TIMEOUT: Duration = Duration::ZERO;
/// Longest timeout of any kind.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// A listener's `send_buffer_bytes` (SO_SNDBUF; the kernel doubles it).
pub const MIN_SEND_BUFFER_BYTES: u64 = 4 * 1024;
pub const MAX_SEND_BUFFER_BYTES: u64 = 64 * 1024 * 1024;
pub const MIN_SHARDS: usize = 1;
pub const MAX_SHARDS: usize = 1024;
/// CPU ids must be below this to fit a `cpu_set_t` (glibc's CPU_SETSIZE).
pub const CPU_SETSIZE: usize = 1024;
/// Also a power of two, see [`check_ring_entries`].
pub const MIN_RING_ENTRIES: u32 = 1;
/// io_uring's own limit on submission queue entries.
pub const MAX_RING_ENTRIES: u32 = 32_768;
/// Zero keeps no idle upstream connections (a new one per request).
pub const MIN_IDLE_PER_ENDPOINT: usize = 0;
pub const MAX_IDLE_PER_ENDPOINT_CEILING: usize = 65_536;

/// A count within `min..=max`.
pub fn check_count<T: PartialOrd + Display>(v: T, min: T, max: T) -> Result<T, String> {
    if min <= v && v <= max {
        Ok(v)
    } else {
        Err(format!("{v} is out of range: allowed {min} to {max}"))
    }
}

/// A size in bytes within `min..=max`; the message writes sizes in file syntax.
pub fn check_size(n: u64, min: u64, max: u64) -> Result<u64, String> {
    if n < min {
        Err(format!("{} is too small: at least {}", fmt_size(n), fmt_size(min)))
    } else if n > max {
        Err(format!("{} is too large: at most {}", fmt_size(n), fmt_size(max)))
    } else {
        Ok(n)
    }
}

/// A duration within `min..=max`; the message writes durations in file syntax.
pub fn check_duration(d: Duration, min: Duration, max: Duration) -> Result<Duration, String> {
    if d < min {
        Err(format!("{} is too short: at least {}", fmt_duration(d), fmt_duration(min)))
    } else if d > max {
        Err(format!("{} is too long: at most {}", fmt_duration(d), fmt_duration(max)))
    } else {
        Ok(d)
    }
}

/// `ring_entries`: `MIN_RING_ENTRIES..=MAX_RING_ENTRIES` and a power of two.
pub fn check_ring_entries(n: u32) -> Result<u32, String> {
    let n = check_count(n, MIN_RING_ENTRIES, MAX_RING_ENTRIES)?;
    if n.is_power_of_two() {
        Ok(n)
    } else {
        Err(format!("{n} is not a power of two"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::defaults;
    use super::*;

    #[test]
    fn defaults_are_within_bounds() {
        let head = defaults::MAX_REQUEST_HEAD_BYTES as u64;
        assert_eq!(check_size(head, MIN_REQUEST_HEAD_BYTES, MAX_REQUEST_HEAD_BYTES_CEILING), Ok(head));
        let uri = defaults::MAX_URI_BYTES as u64;
        assert_eq!(check_size(uri, MIN_URI_BYTES, MAX_URI_BYTES_CEILING), Ok(uri));
        let n = defaults::MAX_HEADER_COUNT;
        assert_eq!(check_count(n, MIN_HEADER_COUNT, MAX_HEADER_COUNT_CEILING), Ok(n));
        let n = defaults::MAX_CONNECTIONS_PER_SHARD;
        assert_eq!(check_count(n, MIN_CONNECTIONS_PER_SHARD, MAX_CONNECTIONS_PER_SHARD_CEILING), Ok(n));
        let n = defaults::MAX_IDLE_PER_ENDPOINT;
        assert_eq!(check_count(n, MIN_IDLE_PER_ENDPOINT, MAX_IDLE_PER_ENDPOINT_CEILING), Ok(n));
        assert_eq!(check_ring_entries(defaults::RING_ENTRIES), Ok(defaults::RING_ENTRIES));
        for d in [
            defaults::HEADER_TIMEOUT,
            defaults::BODY_TIMEOUT,
            defaults::IDLE_TIMEOUT,
            defaults::CONNECT_TIMEOUT,
            defaults::RESPONSE_TIMEOUT,
            defaults::POOL_IDLE_TIMEOUT,
        ] {
            assert_eq!(check_duration(d, MIN_TIMEOUT, MAX_TIMEOUT), Ok(d));
        }
        let d = defaults::DRAIN_TIMEOUT;
        assert_eq!(check_duration(d, MIN_DRAIN_TIMEOUT, MAX_TIMEOUT), Ok(d));
    }

    #[test]
    fn messages() {
        assert_eq!(check_count(0, 1, 512), Err("0 is out of range: allowed 1 to 512".to_owned()));
        assert_eq!(check_size(0, 16, 1 << 23), Err("0B is too small: at least 16B".to_owned()));
        assert_eq!(check_size(1 << 30, 16, 1 << 23), Err("1GiB is too large: at most 8MiB".to_owned()));
        let long = Duration::from_secs(48 * 3600);
        assert_eq!(check_duration(long, MIN_TIMEOUT, MAX_TIMEOUT), Err("48h is too long: at most 24h".to_owned()));
        assert_eq!(check_ring_entries(1000), Err("1000 is not a power of two".to_owned()));
        assert_eq!(check_ring_entries(0), Err("0 is out of range: allowed 1 to 32768".to_owned()));
        assert_eq!(check_ring_entries(65_536), Err("65536 is out of range: allowed 1 to 32768".to_owned()));
    }
}
