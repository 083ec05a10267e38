//! Route selection: the first route of the listener whose every condition
//! holds (host, normalised path, method, headers), in config order.
//!
//! Where it sits: the first pipeline stage, right after the head is parsed
//! (the Host already checked to be a host name or address,
//! `http1::parse::check_host`) and the path normalised (`path.rs`).
//! Matching compares bytes against strings the config already lowercased,
//! ignoring ASCII case in the path only for routes with
//! `path_case_insensitive`; nothing is allocated.

use crate::config::{Config, HostMatch, PathMatch, Route, RouteMatch};
use crate::http1::parse::{host_without_port, RequestHead};

/// What a request offers for matching; borrowed from the connection buffer.
pub struct MatchInput<'a> {
    /// Host without port, as sent (compared case-insensitively).
    pub host: &'a [u8],
    /// Normalised path (its match form under `matrix_parameters = "strip"`).
    pub path: &'a [u8],
    pub method: &'a [u8],
    pub head: &'a RequestHead,
    pub buf: &'a [u8],
}

impl<'a> MatchInput<'a> {
    pub fn new(head: &'a RequestHead, buf: &'a [u8], path: &'a [u8]) -> MatchInput<'a> {
        let host = head.host.map(|h| host_without_port(h.of(buf))).unwrap_or(b"");
        // A fully qualified name may end in a dot; it names the same host.
        let host = host.strip_suffix(b".").unwrap_or(host);
        MatchInput { host, path, method: head.method_span.of(buf), head, buf }
    }
}

/// Index (into `Config::routes`) of the first matching route of `listener`.
pub fn select(config: &Config, listener: usize, input: &MatchInput<'_>) -> Option<usize> {
    config.listeners[listener].routes.iter().copied().find(|&r| matches(&config.routes[r], input))
}

fn matches(route: &Route, input: &MatchInput<'_>) -> bool {
    let m: &RouteMatch = &route.matcher;
    if let Some(host) = &m.host {
        let ok = match host {
            HostMatch::Exact(name) => input.host.eq_ignore_ascii_case(name.as_bytes()),
            HostMatch::Suffix(suffix) => {
                input.host.len() > suffix.len()
                    && input.host[input.host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        };
        if !ok {
            return false;
        }
    }
    if let Some(path) = &m.path {
        let ok = match (path, m.path_case_insensitive) {
            (PathMatch::Exact(p), false) => input.path == p.as_bytes(),
            (PathMatch::Prefix(p), false) => input.path.starts_with(p.as_bytes()),
            (PathMatch::Exact(p), true) => input.path.eq_ignore_ascii_case(p.as_bytes()),
            (PathMatch::Prefix(p), true) => {
                input.path.len() >= p.len() && input.path[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
        };
        if !ok {
            return false;
        }
    }
    if !m.methods.is_empty() && !m.methods.iter().any(|x| x.as_bytes() == input.method) {
        return false;
    }
    m.headers.iter().all(|(name, value)| {
        input.head.headers.iter().any(|h| {
            h.name.of(input.buf).eq_ignore_ascii_case(name.as_bytes()) && h.value.of(input.buf) == value.as_bytes()
        })
    })
}
