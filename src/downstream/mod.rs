//! The downstream side: what is known about the client a request came
//! from. (The connection loop itself is `http1/conn.rs` today; an HTTP/2
//! codec will produce the same per-request state beside it.)
//!
//! - `client_addr.rs`: the effective client address (`trusted_proxies`),
//!   computed once per connection and request; everything keyed by "the
//!   client" reads it.
//! - `outcome.rs`: what happened to a request, for the record step
//!   (`observe/record.rs`).

pub mod client_addr;
pub mod outcome;
