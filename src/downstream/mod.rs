//! The downstream side: client connections and the requests on them.
//!
//! - `conn.rs`: the connection loop (read a head, run the pipeline, record,
//!   repeat) and the connection's state: stream, buffers, listener,
//!   generation.
//! - `exchange.rs`: one request apart from its connection: head, path,
//!   query, request id, client, outcome. The pipeline's stages take it
//!   beside the connection.
//! - `respond.rs`: responses the proxy makes itself (errors, direct,
//!   redirects).
//! - `stream.rs`: what a plain or TLS client stream does beyond reads and
//!   writes.
//! - `client_addr.rs`: the effective client address (`trusted_proxies`),
//!   computed once per connection and request; everything keyed by "the
//!   client" reads it.
//! - `outcome.rs`: what happened to a request, for the record step
//!   (`observe/record.rs`).
//!
//! `http1/` is the codec these use (parse, encode, body framing); an
//! HTTP/2 codec would produce exchanges here beside it.

pub mod client_addr;
pub mod conn;
pub mod exchange;
pub mod outcome;
pub mod respond;
pub mod stream;
