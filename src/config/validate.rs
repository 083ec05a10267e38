//! Second stage of `file -> validate -> Config`: turns the file shape
//! (`file.rs`) into the typed runtime [`Config`] (`mod.rs`), applying
//! defaults, resolving names to indices and checking every value.
//!
//! Serde stops at its first error (an unknown key or a value of the wrong
//! TOML type), so such a file gets exactly one error; everything after that
//! (units, ranges, names, references) is checked here and *every* problem
//! found is reported, so one `shardgate check` run shows all that needs
//! fixing. Errors name the field path and line (`spans.rs`); single values
//! are parsed by `units.rs` and `values.rs`, ranges come from `bounds.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::bounds::{self, check_count, check_duration, check_ring_entries, check_size};
use super::errors::{ConfigError, ConfigErrors, ConfigWarning};
use super::file::{ClusterFile, DurationText, EndpointFile, FileConfig, LimitsFile, ServerFile, SizeText};
use super::secret::{check_bearer_token, Inline};
use super::spans::{line_at, FieldPath, Segment, Spans};
use super::units::{parse_cpu_list, parse_duration, parse_size};
use super::values::{endpoint_host, listen_addresses_overlap, parse_listen_addr, proxy_host, resolve_endpoint};
use super::{
    defaults, Admin, AssertedHeaders, Cluster, Config, ForwardedHeaders, IoDriver, Limits, Listener, PathRules, Server,
};

mod balance;
mod listener;
mod route;
mod route_name;

/// Reads and validates the config file at `path`; relative file names in it
/// (certificates, keys, CA bundles, secrets) are relative to its directory.
/// Warnings are logged.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    logged(load_file_with_warnings(path))
}

/// A load's outcome and its warnings.
pub type Loaded = (Result<Config, ConfigErrors>, Vec<ConfigWarning>);

/// [`load_file`] that returns the warnings instead of logging them.
pub fn load_file_with_warnings(path: &Path) -> Loaded {
    let origin = path.display().to_string();
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let checked = match std::fs::read_to_string(path) {
        Ok(text) => check_text(&text, &origin, base_dir, Some(path)),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: None,
            message: format!("cannot read {origin}: {e}"),
        }])),
    };
    checked.unwrap_or_else(|errors| (Err(errors), Vec::new()))
}

/// Logs each warning of a load once, at `warn` level.
fn logged((result, warnings): Loaded) -> Result<Config, ConfigErrors> {
    warnings.iter().for_each(|w| tracing::warn!("{w}"));
    result
}

/// Parses and validates config text; `origin` (usually the file name) names
/// it in errors about the text as a whole. Relative file names in it are
/// relative to the working directory.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    load_str_in(text, origin, Path::new(""))
}

/// [`load_str`] with relative file names relative to `base_dir`.
pub fn load_str_in(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    logged(check_text(text, origin, base_dir, None).unwrap_or_else(|errors| (Err(errors), Vec::new())))
}

/// `Err` for text that is not TOML or not of the file shape, else what
/// validation made of it; `config_file` is where it was read from (its
/// mode matters when it holds a secret inline).
fn check_text(text: &str, origin: &str, base_dir: &Path, config_file: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let doc = DeTable::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: e.span().map(|s| line_at(text, s.start)),
            message: format!("{origin} is not valid TOML: {}", e.message()),
        }])
    })?;
    let spans = Spans::new(text, doc.get_ref());
    let de = toml::Deserializer::from(doc.clone());
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        let e = e.into_inner();
        let line = match e.span() {
            Some(span) => Some(line_at(text, span.start)),
            None => spans.line_of(&path),
        };
        let mut message = e.message().to_owned();
        if let Some(hint) = misplaced_key_hint(&path, &message) {
            message.push_str(hint);
        }
        ConfigErrors(vec![ConfigError { path: path.to_string(), line, message }])
    })?;
    let mut check = Check {
        spans,
        base_dir: base_dir.to_path_buf(),
        config_file: config_file.map(Path::to_path_buf),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let config = check.config(&file);
    // Report top to bottom, as the file reads; errors without a line (a
    // missing section) first. The sort is stable, so errors on one line
    // keep the order they were found in.
    check.errors.sort_by_key(|e| e.line);
    check.warnings.sort_by_key(|w| w.line);
    let result = if check.errors.is_empty() { Ok(config) } else { Err(ConfigErrors(check.errors)) };
    Ok((result, check.warnings))
}

/// A listener's own keys (for the misplaced-key hint).
const LISTENER_KEYS: &[&str] = &[
    "name",
    "listen",
    "defer_accept",
    "send_buffer_bytes",
    "trusted_proxies",
    "forwarded_headers",
    "underscores_in_headers",
    "limits",
    "tls",
    "paths",
    "ip_rules",
];

/// The commonest TOML slip: a key written after a `[routes.match]` (or
/// `[listeners.limits]`) header lands in that table, not in the route.
fn misplaced_key_hint(path: &FieldPath, message: &str) -> Option<&'static str> {
    if !message.starts_with("unknown field") {
        return None;
    }
    let [Segment::Key(section), Segment::Index(_), Segment::Key(table), Segment::Key(key)] = &path.0[..] else {
        return None;
    };
    let route_keys = [
        "name",
        "listeners",
        "max_request_body_bytes",
        "cluster",
        "direct",
        "redirect",
        "https_redirect",
        "error_format",
        "ip_rules",
        "auth",
    ];
    let cluster_keys = [
        "name",
        "endpoints",
        "connect_timeout",
        "response_timeout",
        "max_idle_per_endpoint",
        "idle_timeout",
        "lb",
        "hash_key",
        "min_ring_size",
        "maglev_table_size",
        "slow_start",
        "healthy_panic_threshold",
    ];
    match (section.as_str(), table.as_str()) {
        ("routes", "match") if route_keys.contains(&key.as_str()) => {
            Some(" (keys after a [routes.match] header belong to it: move the route's own keys above that header)")
        }
        ("routes", "auth") if route_keys.contains(&key.as_str()) => {
            Some(" (keys after a [routes.auth] header belong to it: move the route's own keys above that header)")
        }
        ("listeners", "limits") if LISTENER_KEYS.contains(&key.as_str()) => Some(
            " (keys after a [listeners.limits] header belong to it: move the listener's own keys above that header)",
        ),
        ("listeners", "tls") if LISTENER_KEYS.contains(&key.as_str()) => {
            Some(" (keys after a [listeners.tls] header belong to it: move the listener's own keys above that header)")
        }
        ("listeners", "paths") if LISTENER_KEYS.contains(&key.as_str()) => Some(
            " (keys after a [listeners.paths] header belong to it: move the listener's own keys above that header)",
        ),
        ("clusters", "tls") if cluster_keys.contains(&key.as_str()) => {
            Some(" (keys after a [clusters.tls] header belong to it: move the cluster's own keys above that header)")
        }
        ("clusters", "health_check") if cluster_keys.contains(&key.as_str()) => Some(
            " (keys after a [clusters.health_check] header belong to it: move the cluster's own keys above that header)",
        ),
        ("clusters", "outlier") if cluster_keys.contains(&key.as_str()) => Some(
            " (keys after a [clusters.outlier] header belong to it: move the cluster's own keys above that header)",
        ),
        _ => None,
    }
}

/// Collects errors while building the runtime config. Checks that fail leave
/// a default in place so checking can go on; the result is discarded if any
/// error was recorded. The TLS checks are in `tls.rs`.
pub(super) struct Check<'a> {
    spans: Spans<'a>,
    /// Relative file names in the config are relative to this.
    pub(super) base_dir: PathBuf,
    /// The file being checked, when it was read from one.
    pub(super) config_file: Option<PathBuf>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl Check<'_> {
    pub(super) fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: self.spans.line_of(path),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            path: path.to_string(),
            line: self.spans.line_of(path),
            message: message.into(),
        });
    }

    /// Records `Err` under `path`, returns `Ok` as `Some`.
    pub(super) fn ok<T>(&mut self, path: &FieldPath, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.error(path, m)).ok()
    }

    fn config(&mut self, f: &FileConfig) -> Config {
        let server = self.server(f.server.as_ref().unwrap_or(&ServerFile::default()));
        let admin = f.admin.as_ref().map(|a| {
            let path = FieldPath::root("admin").key("listen");
            let listen = self.ok(&path, parse_listen_addr(&a.listen));
            let token_path = FieldPath::root("admin").key("token");
            let token = a.token.as_deref().and_then(|t| {
                let secret = self.secret(&token_path, t, Inline::Allowed)?;
                self.ok(&token_path, check_bearer_token(&secret)).map(|()| secret)
            });
            Admin { listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))), token }
        });
        let base_limits = self.limits(&FieldPath::root("limits"), f.limits.as_ref(), &Limits::default());

        if f.listeners.is_empty() {
            self.error(&FieldPath::root("listeners"), "at least one [[listeners]] table is required");
        }
        let mut listeners = Vec::with_capacity(f.listeners.len());
        let mut listener_names = HashMap::new();
        let mut bound: Vec<(SocketAddr, String)> = Vec::new();
        if let Some(a) = &admin {
            bound.push((a.listen, "admin.listen".to_owned()));
        }
        for (i, l) in f.listeners.iter().enumerate() {
            let path = FieldPath::root("listeners").index(i);
            self.name("listeners", i, &l.name, &mut listener_names);
            let listen_path = path.key("listen");
            let addr =
                self.ok(&listen_path, parse_listen_addr(&l.listen)).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
            if addr.port() != 0 {
                // SO_REUSEPORT would let both bind and split the traffic
                // between them at random, and a wildcard address beside a
                // specific one on the same port takes part of the other's
                // connections (or the admin's): refuse instead.
                if let Some((other_addr, other)) = bound.iter().find(|(a, _)| listen_addresses_overlap(*a, addr)) {
                    let msg = if *other_addr == addr {
                        format!("address {addr} is already used by {other}")
                    } else {
                        format!("address {addr} overlaps {other_addr} used by {other}")
                    };
                    self.error(&listen_path, msg);
                }
                bound.push((addr, listen_path.to_string()));
            }
            let limits = self.limits(&path.key("limits"), l.limits.as_ref(), &base_limits);
            let tls = l.tls.as_ref().and_then(|t| self.listener_tls(&path.key("tls"), t));
            let trusted_proxies = self.cidr_list(&path.key("trusted_proxies"), l.trusted_proxies.as_deref());
            let forwarded_headers = match l.forwarded_headers.as_deref() {
                None | Some("replace") => ForwardedHeaders::Replace,
                Some("append") => ForwardedHeaders::Append,
                Some(other) => {
                    let msg = format!("unknown forwarded_headers {other:?}: use \"replace\" or \"append\"");
                    self.error(&path.key("forwarded_headers"), msg);
                    ForwardedHeaders::Replace
                }
            };
            let paths = l.paths.as_ref().map_or_else(PathRules::default, |p| self.path_rules(&path.key("paths"), p));
            let send_buffer_bytes = l.send_buffer_bytes.as_ref().and_then(|v| {
                let min_max = (bounds::MIN_SEND_BUFFER_BYTES, bounds::MAX_SEND_BUFFER_BYTES);
                self.size(&path.key("send_buffer_bytes"), v, min_max.0, min_max.1).map(|n| n as usize)
            });
            listeners.push(Listener {
                name: l.name.clone(),
                addr,
                defer_accept: l.defer_accept.unwrap_or(false),
                send_buffer_bytes,
                limits,
                paths,
                routes: Vec::new(),
                tls,
                trusted_proxies,
                forwarded_headers,
                underscores_in_headers: l.underscores_in_headers.unwrap_or(false),
                ip_rules: l.ip_rules.as_ref().map(|r| self.ip_rules(&path.key("ip_rules"), r)),
            });
        }

        let mut cluster_names = HashMap::new();
        let clusters: Vec<Cluster> =
            f.clusters.iter().enumerate().map(|(i, c)| self.cluster(i, c, &mut cluster_names)).collect();

        let mut route_names = HashMap::new();
        let mut routes = Vec::with_capacity(f.routes.len());
        for (i, r) in f.routes.iter().enumerate() {
            let path = FieldPath::root("routes").index(i);
            let route = self.route(i, r, &cluster_names, &mut route_names);
            match &r.listeners {
                None => listeners.iter_mut().for_each(|l| l.routes.push(i)),
                Some(names) => {
                    let lpath = path.key("listeners");
                    if names.is_empty() {
                        self.error(&lpath, "empty list: omit listeners to apply the route to every listener");
                    }
                    for (j, name) in names.iter().enumerate() {
                        let epath = lpath.index(j);
                        if names[..j].contains(name) {
                            self.error(&epath, format!("listener {name:?} is listed twice"));
                        } else if let Some(&li) = listener_names.get(name.as_str()) {
                            let l: &mut Listener = &mut listeners[li];
                            l.routes.push(i);
                        } else {
                            self.error(&epath, format!("no listener named {name:?}"));
                        }
                    }
                }
            }
            routes.push(route);
        }
        self.check_redirect_loops(&listeners, &routes);

        let mut asserted_headers = AssertedHeaders::of(&listeners);
        for auth in routes.iter().filter_map(|r| r.policies.auth.as_ref()) {
            asserted_headers.add(&auth.consumer_header);
        }
        let consumers = self.consumers(&f.consumers);
        let tracing = self.tracing(f.tracing.as_ref());
        let access_log = f.access_log.as_ref().map(|a| self.access_log(a));
        self.check_policies(&routes, access_log.as_ref(), &consumers);
        let metrics = super::Metrics::from_file(f.metrics.as_ref());
        Config { server, admin, listeners, routes, clusters, metrics, access_log, asserted_headers, tracing, consumers }
    }

    /// Names must be non-empty, free of whitespace and unique within their
    /// section; `seen` maps each name to the index that first used it.
    pub(super) fn name(&mut self, section: &str, i: usize, name: &str, seen: &mut HashMap<String, usize>) {
        let kind = section.trim_end_matches('s');
        let path = FieldPath::root(section).index(i).key("name");
        if name.is_empty() {
            self.error(&path, format!("{kind} name must not be empty"));
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let msg = format!("{kind} name {name:?} must not contain whitespace or control characters");
            self.error(&path, msg);
        }
        match seen.get(name) {
            Some(&first) => {
                let msg = format!("duplicate {kind} name {name:?} (first used by {section}[{first}])");
                self.error(&path, msg);
            }
            None => {
                seen.insert(name.to_owned(), i);
            }
        }
    }

    fn server(&mut self, f: &ServerFile) -> Server {
        let path = FieldPath::root("server");
        let shards = f.shards.and_then(|n| self.count(&path.key("shards"), n, bounds::MIN_SHARDS, bounds::MAX_SHARDS));
        let cpus = f.cpus.as_deref().and_then(|s| self.ok(&path.key("cpus"), parse_cpu_list(s)));
        let io_driver = match f.io_driver.as_deref() {
            None | Some("auto") => IoDriver::Auto,
            Some("uring") => IoDriver::Uring,
            Some("epoll") => IoDriver::Epoll,
            Some(other) => {
                let msg = format!("unknown io_driver {other:?}: use \"auto\", \"uring\" or \"epoll\"");
                self.error(&path.key("io_driver"), msg);
                IoDriver::Auto
            }
        };
        let ring_path = path.key("ring_entries");
        let (min, max) = (bounds::MIN_RING_ENTRIES as usize, bounds::MAX_RING_ENTRIES as usize);
        let ring_entries = f
            .ring_entries
            .and_then(|n| self.count(&ring_path, n, min, max))
            .and_then(|n| self.ok(&ring_path, check_ring_entries(n as u32)))
            .unwrap_or(defaults::RING_ENTRIES);
        let drain_timeout = f
            .drain_timeout
            .as_ref()
            .and_then(|d| self.duration(&path.key("drain_timeout"), d, bounds::MIN_DRAIN_TIMEOUT))
            .unwrap_or(defaults::DRAIN_TIMEOUT);
        Server { shards, cpus, pin: f.pin.unwrap_or(true), io_driver, ring_entries, drain_timeout }
    }

    /// `f` overrides `base` field by field.
    fn limits(&mut self, path: &FieldPath, f: Option<&LimitsFile>, base: &Limits) -> Limits {
        use bounds::{
            MAX_CONNECTIONS_PER_SHARD_CEILING, MAX_HEADER_COUNT_CEILING, MAX_REQUEST_HEAD_BYTES_CEILING,
            MAX_URI_BYTES_CEILING, MIN_CONNECTIONS_PER_SHARD, MIN_HEADER_COUNT, MIN_REQUEST_HEAD_BYTES, MIN_URI_BYTES,
        };
        let Some(f) = f else {
            return base.clone();
        };
        let size = |this: &mut Self, key: &str, v: &Option<SizeText>, min: u64, max: u64| {
            v.as_ref().and_then(|v| this.size(&path.key(key), v, min, max))
        };
        let dur = |this: &mut Self, key: &str, v: &Option<DurationText>| {
            v.as_ref().and_then(|v| this.duration(&path.key(key), v, bounds::MIN_TIMEOUT))
        };
        let count = |this: &mut Self, key: &str, v: Option<i64>, min: usize, max: usize| {
            v.and_then(|v| this.count(&path.key(key), v, min, max))
        };
        let (head, uri, body) = (&f.max_request_head_bytes, &f.max_uri_bytes, &f.max_request_body_bytes);
        let (headers, conns) = (f.max_header_count, f.max_connections_per_shard);
        Limits {
            max_request_head_bytes: size(
                self,
                "max_request_head_bytes",
                head,
                MIN_REQUEST_HEAD_BYTES,
                MAX_REQUEST_HEAD_BYTES_CEILING,
            )
            .map_or(base.max_request_head_bytes, |n| n as usize),
            max_header_count: count(self, "max_header_count", headers, MIN_HEADER_COUNT, MAX_HEADER_COUNT_CEILING)
                .unwrap_or(base.max_header_count),
            max_uri_bytes: size(self, "max_uri_bytes", uri, MIN_URI_BYTES, MAX_URI_BYTES_CEILING)
                .map_or(base.max_uri_bytes, |n| n as usize),
            max_request_body_bytes: size(self, "max_request_body_bytes", body, 0, u64::MAX)
                .unwrap_or(base.max_request_body_bytes),
            header_timeout: dur(self, "header_timeout", &f.header_timeout).unwrap_or(base.header_timeout),
            body_timeout: dur(self, "body_timeout", &f.body_timeout).unwrap_or(base.body_timeout),
            idle_timeout: dur(self, "idle_timeout", &f.idle_timeout).unwrap_or(base.idle_timeout),
            max_connections_per_shard: count(
                self,
                "max_connections_per_shard",
                conns,
                MIN_CONNECTIONS_PER_SHARD,
                MAX_CONNECTIONS_PER_SHARD_CEILING,
            )
            .unwrap_or(base.max_connections_per_shard),
        }
    }

    fn cluster(&mut self, i: usize, c: &ClusterFile, names: &mut HashMap<String, usize>) -> Cluster {
        let path = FieldPath::root("clusters").index(i);
        self.name("clusters", i, &c.name, names);
        let epath = path.key("endpoints");
        if c.endpoints.is_empty() {
            self.error(&epath, "a cluster needs at least one endpoint");
        }
        let mut endpoints = Vec::with_capacity(c.endpoints.len());
        let mut weights = Vec::with_capacity(c.endpoints.len());
        for (j, e) in c.endpoints.iter().enumerate() {
            let jpath = epath.index(j);
            let weight = self.endpoint_weight(&jpath, e);
            let text = e.address();
            let apath = if matches!(e, EndpointFile::Table(_)) { jpath.key("address") } else { jpath.clone() };
            let Some(addr) = self.ok(&apath, resolve_endpoint(text)) else {
                continue;
            };
            if let Some(k) = endpoints.iter().position(|&(_, a, _)| a == addr) {
                let (first, _, _) = endpoints[k];
                let msg = format!("{addr} is already endpoints[{first}] of this cluster");
                self.error(&apath, msg);
            } else {
                endpoints.push((j, addr, endpoint_host(text)));
                weights.push(weight);
            }
        }
        let balance = self.balance(&path, c, endpoints.len());
        let hosts: Vec<(usize, String)> = endpoints.iter().map(|(j, _, h)| (*j, h.clone())).collect();
        let tls = c.tls.as_ref().map(|t| self.cluster_tls(&path, t, &hosts));
        let mut dur = |key: &str, v: &Option<DurationText>, default: Duration| {
            v.as_ref().and_then(|v| self.duration(&path.key(key), v, bounds::MIN_TIMEOUT)).unwrap_or(default)
        };
        let connect_timeout = dur("connect_timeout", &c.connect_timeout, defaults::CONNECT_TIMEOUT);
        let response_timeout = dur("response_timeout", &c.response_timeout, defaults::RESPONSE_TIMEOUT);
        let idle_timeout = dur("idle_timeout", &c.idle_timeout, defaults::POOL_IDLE_TIMEOUT);
        let (min, max) = (bounds::MIN_IDLE_PER_ENDPOINT, bounds::MAX_IDLE_PER_ENDPOINT_CEILING);
        let max_idle_per_endpoint = c
            .max_idle_per_endpoint
            .and_then(|n| self.count(&path.key("max_idle_per_endpoint"), n, min, max))
            .unwrap_or(defaults::MAX_IDLE_PER_ENDPOINT);
        let proxy_hosts =
            endpoints.iter().map(|&(j, _, _)| proxy_host(c.endpoints[j].address(), tls.is_some())).collect();
        let health_check = c.health_check.as_ref().map(|h| self.health_check(&path, h));
        let outlier = c.outlier.as_ref().map(|o| self.outlier(&path, o));
        let healthy_panic_threshold = self.panic_threshold(&path, c.healthy_panic_threshold);
        Cluster {
            name: c.name.clone(),
            proxy_hosts,
            endpoints: endpoints.iter().map(|&(_, a, _)| a).collect(),
            endpoint_hosts: endpoints.into_iter().map(|(_, _, h)| h).collect(),
            weights,
            balance,
            tls,
            connect_timeout,
            response_timeout,
            max_idle_per_endpoint,
            idle_timeout,
            health_check,
            outlier,
            healthy_panic_threshold,
        }
    }

    /// A count written as a TOML integer (possibly negative), within `min..=max`.
    fn count(&mut self, path: &FieldPath, v: i64, min: usize, max: usize) -> Option<usize> {
        // Bounds are far below i64::MAX; compared as i64 so a negative value
        // gets the same range message as one too large.
        let n = self.ok(path, check_count(v, min as i64, max as i64))?;
        Some(n as usize)
    }

    fn size(&mut self, path: &FieldPath, v: &SizeText, min: u64, max: u64) -> Option<u64> {
        let n = self.ok(path, parse_size(&v.0))?;
        self.ok(path, check_size(n, min, max))
    }

    /// Durations are at most [`bounds::MAX_TIMEOUT`], whatever the setting.
    fn duration(&mut self, path: &FieldPath, v: &DurationText, min: Duration) -> Option<Duration> {
        let d = self.ok(path, parse_duration(&v.0))?;
        self.ok(path, check_duration(d, min, bounds::MAX_TIMEOUT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_collected_with_lines() {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n\
                    [[routes]]\ncluster = \"nope\"\n\n[[routes]]\n";
        let errs = load_str(text, "t.toml").unwrap_err();
        assert_eq!(
            errs.to_string(),
            "routes[0].cluster: no cluster named \"nope\" (line 6)\n\
             routes[1]: no action: set exactly one of cluster, direct, redirect or https_redirect (line 8)"
        );
    }

    #[test]
    fn serde_errors_name_path_and_line() {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n\
                    [[routes]]\ncluster = \"c\"\n[routes.match]\nhots = \"x\"\n";
        let errs = load_str(text, "t.toml").unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].path, "routes[0].match.hots");
        assert_eq!(errs.0[0].line, Some(8));
        let errs = load_str("[server\n", "t.toml").unwrap_err();
        assert_eq!(errs.0[0].path, "");
        assert!(errs.0[0].message.starts_with("t.toml is not valid TOML"));
    }

    #[test]
    fn send_buffer_bytes_is_a_bounded_listener_size() {
        let base = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n";
        let c = load_str(&format!("{base}[[routes]]\ndirect = {{}}\n"), "t.toml").unwrap();
        assert_eq!(c.listeners[0].send_buffer_bytes, None, "the kernel autotunes unless asked");
        let c =
            load_str(&format!("{base}send_buffer_bytes = \"16KiB\"\n[[routes]]\ndirect = {{}}\n"), "t.toml").unwrap();
        assert_eq!(c.listeners[0].send_buffer_bytes, Some(16 * 1024));
        let errs = load_str(&format!("{base}send_buffer_bytes = \"1KiB\"\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("listeners[0].send_buffer_bytes", Some(4)));
    }

    #[test]
    fn defer_accept_is_a_listener_boolean() {
        let base = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n";
        let c = load_str(&format!("{base}defer_accept = true\n[[routes]]\ndirect = {{}}\n"), "t.toml").unwrap();
        assert!(c.listeners[0].defer_accept);
        let c = load_str(&format!("{base}[[routes]]\ndirect = {{}}\n"), "t.toml").unwrap();
        assert!(!c.listeners[0].defer_accept, "off unless asked for, as nginx's `deferred`");
        let errs = load_str(&format!("{base}defer_accept = \"yes\"\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("listeners[0].defer_accept", Some(4)));
    }

    #[test]
    fn trusted_proxies_default_to_none_and_parse_both_families() {
        let base = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n";
        let c = load_str(&format!("{base}[[routes]]\ndirect = {{}}\n"), "t.toml").unwrap();
        assert!(c.listeners[0].trusted_proxies.is_empty(), "nothing trusted unless listed, as Envoy at the edge");
        assert_eq!(c.listeners[0].forwarded_headers, ForwardedHeaders::Replace);
        let text = format!(
            "{base}trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nforwarded_headers = \"append\"\n[[routes]]\ndirect = {{}}\n"
        );
        let c = load_str(&text, "t.toml").unwrap();
        let ranges: Vec<String> = c.listeners[0].trusted_proxies.iter().map(|c| c.to_string()).collect();
        assert_eq!(ranges, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(c.listeners[0].forwarded_headers, ForwardedHeaders::Append);
        let errs = load_str(&format!("{base}trusted_proxies = [\"10.0.0.0/8\", \"x\"]\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("listeners[0].trusted_proxies[1]", Some(4)));
    }

    #[test]
    fn asserted_headers_are_the_union_over_listeners() {
        let c = load_str("[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ndirect = {}\n", "t.toml")
            .unwrap();
        assert!(c.asserted_headers.is_empty());
        let mut listeners = c.listeners.clone();
        for (i, name) in ["X-Client-Cert", "x-client-cert", "x-peer-cert"].iter().enumerate() {
            let mut l = listeners[0].clone();
            l.name = format!("l{i}");
            let mut tls = crate::config::ListenerTls::single("c.pem".into(), "k.pem".into());
            tls.client_cert_header = Some(name.to_string());
            l.tls = Some(tls);
            listeners.push(l);
        }
        let asserted = AssertedHeaders::of(&listeners);
        assert_eq!(asserted, AssertedHeaders::from_names(&["x-client-cert", "x-peer-cert"]));
        assert!(asserted.contains(b"X-CLIENT-CERT"));
        assert!(!asserted.contains(b"x-client"));
    }

    #[test]
    fn path_rules_default_to_reject_and_relax_per_listener() {
        use crate::config::{Backslash, EscapedSlashes, MatrixParameters, TrailingDotsAndSpaces};
        let text = "[[listeners]]\nname = \"strict\"\nlisten = \"127.0.0.1:0\"\n\
                    [[listeners]]\nname = \"iis\"\nlisten = \"127.0.0.1:0\"\n\
                    [listeners.paths]\nescaped_slashes = \"decode\"\nbackslash = \"slash\"\n\
                    trailing_dots_and_spaces = \"strip\"\n\
                    [[routes]]\ndirect = { status = 403 }\n[routes.match]\npath_prefix = \"/admin/\"\n\
                    path_case_insensitive = true\n";
        let c = load_str(text, "t.toml").unwrap();
        assert_eq!(c.listeners[0].paths, PathRules::default());
        assert_eq!(c.listeners[0].paths.escaped_slashes, EscapedSlashes::Reject);
        assert_eq!(c.listeners[0].paths.matrix_parameters, MatrixParameters::Reject);
        let iis = c.listeners[1].paths;
        assert_eq!(iis.escaped_slashes, EscapedSlashes::Decode);
        assert_eq!(iis.backslash, Backslash::Slash);
        assert_eq!(iis.trailing_dots_and_spaces, TrailingDotsAndSpaces::Strip);
        assert_eq!(iis.matrix_parameters, MatrixParameters::Reject, "an absent key keeps its default");
        assert!(c.routes[0].matcher.path_case_insensitive);
        let summary = c.summary();
        assert!(
            summary.contains("  paths: escaped_slashes=decode backslash=slash trailing_dots_and_spaces=strip\n"),
            "{summary}"
        );
        assert!(summary.contains("path_prefix=/admin/ path_case_insensitive"), "{summary}");
    }

    #[test]
    fn listener_routes_follow_file_order() {
        let text = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n\
                    [[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:0\"\n\
                    [[routes]]\nlisteners = [\"b\"]\ndirect = {}\n\
                    [[routes]]\ndirect = { status = 404 }\n";
        let c = load_str(text, "t.toml").unwrap();
        assert_eq!(c.listeners[0].routes, vec![1]);
        assert_eq!(c.listeners[1].routes, vec![0, 1]);
        assert!(c.routes[0].name.starts_with("route-"), "{}", c.routes[0].name);
    }
}
