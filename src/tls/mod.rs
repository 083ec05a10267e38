//! TLS: termination on every shard and TLS to upstreams, with rustls on the
//! aws-lc-rs provider (one crypto stack shared with JWT and test
//! certificates).
//!
//! - `certs.rs`: PEM loading, key/certificate checks, client identity.
//! - `sni.rs`: certificate selection by SNI, reloadable in place.
//! - `server_config.rs` / `client_config.rs`: rustls configs built once per
//!   listener / cluster on the main thread and shared by every shard (so
//!   session tickets issued by one shard resume on any other).
//! - `stream.rs`: the TLS stream over a monoio `TcpStream`, in the same
//!   rent-style I/O as plain TCP, with the rustls session reachable (for the
//!   negotiated version, resumption and the client certificate).

pub mod certs;
pub mod client_config;
pub mod server_config;
pub mod sni;
pub mod stream;
