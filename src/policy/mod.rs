//! The gateway's policy stages: what decides, before a route's action,
//! whether a request may go on, and as whom. `pipeline/mod.rs` calls them
//! in its one statement of stage order; each reads the plain data its
//! route's config compiled into (`config::policy`, `config::consumers`)
//! and either lets the request on or returns the refusal (an [`Error`]
//! with its status kind, reason and response header fields), which the
//! one error renderer (`error::render`) answers in the route's format.
//! A refused request never reaches an upstream.
//!
//! - `ip_rules.rs`: client address allow/deny lists, per listener and
//!   per route (403).
//! - `api_key.rs`: authentication by API key: the key from a header, a
//!   query parameter (removed before forwarding) or a cookie, looked up
//!   among the consumers' key digests (401).
//!
//! [`Error`]: crate::error::Error

pub mod api_key;
pub mod ip_rules;
