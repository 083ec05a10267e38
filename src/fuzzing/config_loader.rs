//! Fuzz target: the config loader (`Config::parse`: TOML text -> file
//! shape -> validated `Config`).
//!
//! Properties, for any UTF-8 text:
//! 1. No panic: the answer is a config or a list of errors.
//! 2. Every error has a message and names a field path or a line, and a
//!    line it names exists in the text.
//! 3. A config that loads is whole: at least one listener, every route
//!    index and cluster index in range, every cluster with endpoints, and
//!    its summary (`shardgate check`) can be written.
//! 4. Loading is deterministic: the same text gives the same answer.
//!
//! The loader resolves endpoint host names and reads certificate files.
//! So that fuzzing sends nothing to a name server and opens no device or
//! system file, inputs whose strings could do either are skipped: any
//! `name:port` whose name is not an IP address or `localhost`, and any
//! absolute path or path with `..`.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, ConfigErrors, RouteAction};

pub fn config_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if !stays_local(text) {
        return;
    }
    let first = Config::parse(text, "fuzz.toml");
    let lines = text.lines().count() + 1;
    match &first {
        Err(errors) => check_errors(errors, lines, text),
        Ok(config) => check_config(config, text),
    }
    let second = Config::parse(text, "fuzz.toml");
    match (&first, &second) {
        (Err(a), Err(b)) => assert_eq!(a, b, "two loads of {text:?}"),
        (Ok(a), Ok(b)) => assert_eq!(a.summary(), b.summary(), "two loads of {text:?}"),
        _ => panic!("one load failed, the other did not: {text:?}"),
    }
}

fn check_errors(errors: &ConfigErrors, lines: usize, text: &str) {
    assert!(!errors.0.is_empty(), "an empty error list for {text:?}");
    for e in &errors.0 {
        assert!(!e.message.trim().is_empty(), "an error without a message: {e:?} for {text:?}");
        assert!(!e.path.is_empty() || e.line.is_some(), "an error naming neither field nor line: {e:?} for {text:?}");
        if let Some(line) = e.line {
            assert!((1..=lines).contains(&line), "line {line} of a {lines}-line text: {e:?} for {text:?}");
        }
        assert!(!e.to_string().is_empty());
    }
}

fn check_config(config: &Config, text: &str) {
    assert!(!config.listeners.is_empty(), "a config without listeners from {text:?}");
    for l in &config.listeners {
        assert!(l.routes.iter().all(|&r| r < config.routes.len()), "listener {} route index", l.name);
    }
    for r in &config.routes {
        if let RouteAction::Proxy { cluster } = r.action {
            assert!(cluster < config.clusters.len(), "route {} cluster index", r.name);
        }
    }
    for c in &config.clusters {
        assert!(!c.endpoints.is_empty(), "cluster {} without endpoints from {text:?}", c.name);
        assert!(c.endpoints.iter().all(|e| e.port() != 0), "cluster {} endpoint port 0", c.name);
    }
    assert!(!config.summary().is_empty());
}

/// Whether loading `text` stays on this machine and off device and
/// system files (see the module notes).
fn stays_local(text: &str) -> bool {
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        // Not TOML: the loader stops before resolving or reading anything,
        // provided its own parser refuses it too.
        Err(_) => return toml::de::DeTable::parse(text).is_err(),
    };
    table.values().all(value_stays_local)
}

fn value_stays_local(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => string_stays_local(s),
        toml::Value::Array(items) => items.iter().all(value_stays_local),
        toml::Value::Table(t) => t.values().all(value_stays_local),
        _ => true,
    }
}

fn string_stays_local(s: &str) -> bool {
    if s.starts_with('/') || s.contains("..") || s.contains('\\') {
        return false;
    }
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    // The loader resolves only `host:port` with a numeric port.
    match s.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            host.is_empty() || host == "localhost" || host.parse::<IpAddr>().is_ok()
        }
        _ => true,
    }
}
