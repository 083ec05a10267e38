//! Second stage of `file.rs -> validate.rs -> mod.rs`: turns the file shape
//! into the typed runtime [`Config`], applying defaults, resolving names to
//! indices and checking every value.
//!
//! Errors name the field path (`routes[3].cluster`, 0-based indices) and the
//! line in the file. Serde stops at its first error (an unknown key or a
//! value of the wrong TOML type), so such a file gets exactly one error;
//! everything after that (units, ranges, names, references) is checked here
//! and *every* problem found is reported, so one `shardgate check` run shows
//! all that needs fixing.
//!
//! Lines come from a second, span-preserving view of the same text
//! ([`toml::de::DeTable`]): an error's field path is walked down that tree and
//! the span of the deepest node found gives the line. A path to a key that is
//! absent (a missing action, say) therefore points at the enclosing table,
//! e.g. the `[[routes]]` header.
//!
//! Value syntax (also in `configs/*.toml` and the docs):
//! - sizes: an integer number of bytes, or a string of a whole number and a
//!   binary unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (`"16KiB"`, `"10 MiB"`, unit
//!   case-insensitive). `KB`/`MB`/`k`/`m`... are refused as ambiguous (nginx
//!   reads `8k` as 8192, most people read `8KB` as 8000).
//! - durations: a string of a whole number and a unit `ms`, `s`, `m`, `h`
//!   (`"250ms"`, `"10s"`). A bare number is refused: `10` could mean seconds
//!   or milliseconds.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::file::{
    ClusterFile, DirectFile, DurationText, FileConfig, IntOrText, LimitsFile, MatchFile,
    RedirectFile, RouteFile, ServerFile, SizeText,
};
use super::{
    defaults, fmt_duration, fmt_size, Admin, Cluster, Config, HostMatch, IoDriver, Limits,
    Listener, PathMatch, Route, RouteAction, RouteMatch, Server,
};

// Bounds. A value outside them is a config error: zero usually means a typo,
// and a huge value defeats the limit it sets.

/// Smallest `max_request_head_bytes`: room for a request line and a Host.
const MIN_REQUEST_HEAD_BYTES: u64 = 64;
/// Largest `max_request_head_bytes` (Envoy's cap for max_request_headers_kb).
const MAX_REQUEST_HEAD_BYTES: u64 = 8 * 1024 * 1024;
const MAX_HEADER_COUNT: i64 = 10_000;
const MIN_URI_BYTES: u64 = 16;
const MAX_URI_BYTES: u64 = 8 * 1024 * 1024;
/// Longest timeout of any kind.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_CONNECTIONS_PER_SHARD: i64 = 1 << 20;
const MAX_SHARDS: i64 = 1024;
/// CPU ids must fit a `cpu_set_t` (glibc's CPU_SETSIZE).
const CPU_SETSIZE: usize = 1024;
/// io_uring's own limit on submission queue entries.
const MAX_RING_ENTRIES: i64 = 32_768;
const MAX_IDLE_PER_ENDPOINT: i64 = 65_536;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path such as `routes[3].cluster`; empty when the problem is the
    /// whole file (unreadable, not TOML).
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in the order checked (file order
/// within each section). Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates the config file at `path`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &origin),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: None,
            message: format!("cannot read {origin}: {e}"),
        }])),
    }
}

/// Parses and validates config text; `origin` (usually the file name) names
/// it in errors about the text as a whole.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let doc = DeTable::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: e.span().map(|s| line_at(text, s.start)),
            message: format!("{origin} is not valid TOML: {}", e.message()),
        }])
    })?;
    let spans = Spans {
        text,
        root: doc.get_ref(),
    };
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
        ConfigErrors(vec![ConfigError {
            path: path.to_string(),
            line,
            message,
        }])
    })?;
    let mut check = Check {
        spans,
        errors: Vec::new(),
    };
    let config = check.config(&file);
    // Report top to bottom, as the file reads; errors without a line (a
    // missing section) first. The sort is stable, so errors on one line
    // keep the order they were found in.
    check.errors.sort_by_key(|e| e.line);
    if check.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(check.errors))
    }
}

/// The commonest TOML slip: a key written after a `[routes.match]` (or
/// `[listeners.limits]`) header lands in that table, not in the route.
fn misplaced_key_hint(path: &FieldPath, message: &str) -> Option<&'static str> {
    if !message.starts_with("unknown field") {
        return None;
    }
    let [Segment::Key(section), Segment::Index(_), Segment::Key(table), Segment::Key(key)] =
        &path.0[..]
    else {
        return None;
    };
    let route_keys = [
        "name",
        "listeners",
        "max_request_body_bytes",
        "cluster",
        "direct",
        "redirect",
    ];
    match (section.as_str(), table.as_str()) {
        ("routes", "match") if route_keys.contains(&key.as_str()) => Some(
            " (keys after a [routes.match] header belong to it: move the route's own keys above that header)",
        ),
        ("listeners", "limits") if ["name", "listen"].contains(&key.as_str()) => Some(
            " (keys after a [listeners.limits] header belong to it: move the listener's own keys above that header)",
        ),
        _ => None,
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A field path, rendered as `routes[3].match.host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldPath(Vec<Segment>);

impl FieldPath {
    fn root(key: &str) -> FieldPath {
        FieldPath(vec![Segment::Key(key.to_owned())])
    }

    fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        FieldPath(
            path.iter()
                .map(|s| match s {
                    S::Seq { index } => Segment::Index(*index),
                    S::Map { key } => Segment::Key(key.clone()),
                    S::Enum { variant } => Segment::Key(variant.clone()),
                    S::Unknown => Segment::Key("?".to_owned()),
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The span-preserving view of the text, for turning field paths into lines.
#[derive(Clone, Copy)]
struct Spans<'a> {
    text: &'a str,
    root: &'a DeTable<'a>,
}

impl Spans<'_> {
    /// Line of the deepest node of `path` present in the file; `None` when
    /// not even the first key is there.
    fn line_of(&self, path: &FieldPath) -> Option<usize> {
        let mut table = Some(self.root);
        let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
        let mut span = None;
        for seg in &path.0 {
            let next = match seg {
                Segment::Key(k) => {
                    table.and_then(|t| t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v))
                }
                Segment::Index(i) => array.and_then(|a| a.get(*i)),
            };
            let Some(next) = next else { break };
            span = Some(next.span());
            table = next.get_ref().as_table();
            array = next.get_ref().as_array().map(|a| &a[..]);
        }
        span.map(|s| line_at(self.text, s.start))
    }
}

/// Collects errors while building the runtime config. Checks that fail leave
/// a default in place so checking can go on; the result is discarded if any
/// error was recorded.
struct Check<'a> {
    spans: Spans<'a>,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: self.spans.line_of(path),
            message: message.into(),
        });
    }

    /// Records `Err` under `path`, returns `Ok` as `Some`.
    fn ok<T>(&mut self, path: &FieldPath, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.error(path, m)).ok()
    }

    fn config(&mut self, f: &FileConfig) -> Config {
        let server = self.server(f.server.as_ref().unwrap_or(&ServerFile::default()));
        let admin = f.admin.as_ref().map(|a| {
            let path = FieldPath::root("admin").key("listen");
            let listen = self.ok(&path, parse_listen_addr(&a.listen));
            Admin {
                listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            }
        });
        let base_limits = self.limits(
            &FieldPath::root("limits"),
            f.limits.as_ref(),
            &Limits::default(),
        );

        if f.listeners.is_empty() {
            self.error(
                &FieldPath::root("listeners"),
                "at least one [[listeners]] table is required",
            );
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
            let addr = self
                .ok(&listen_path, parse_listen_addr(&l.listen))
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
            if addr.port() != 0 {
                // SO_REUSEPORT would let both bind and split the traffic
                // between them at random: refuse instead.
                if let Some((_, other)) = bound.iter().find(|(a, _)| *a == addr) {
                    let msg = format!("address {addr} is already used by {other}");
                    self.error(&listen_path, msg);
                }
                bound.push((addr, listen_path.to_string()));
            }
            let limits = self.limits(&path.key("limits"), l.limits.as_ref(), &base_limits);
            listeners.push(Listener {
                name: l.name.clone(),
                addr,
                limits,
                routes: Vec::new(),
            });
        }

        let mut cluster_names = HashMap::new();
        let clusters: Vec<Cluster> = f
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| self.cluster(i, c, &mut cluster_names))
            .collect();

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
                        self.error(
                            &lpath,
                            "empty list: omit listeners to apply the route to every listener",
                        );
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

        Config {
            server,
            admin,
            listeners,
            routes,
            clusters,
        }
    }

    /// Names must be non-empty, free of whitespace and unique within `kind`.
    /// Names must be non-empty, free of whitespace and unique within their
    /// section; `seen` maps each name to the index that first used it.
    fn name(&mut self, section: &str, i: usize, name: &str, seen: &mut HashMap<String, usize>) {
        let kind = section.trim_end_matches('s');
        let path = FieldPath::root(section).index(i).key("name");
        if name.is_empty() {
            self.error(&path, format!("{kind} name must not be empty"));
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let msg =
                format!("{kind} name {name:?} must not contain whitespace or control characters");
            self.error(&path, msg);
        }
        match seen.get(name) {
            Some(&first) => {
                let msg =
                    format!("duplicate {kind} name {name:?} (first used by {section}[{first}])");
                self.error(&path, msg);
            }
            None => {
                seen.insert(name.to_owned(), i);
            }
        }
    }

    fn server(&mut self, f: &ServerFile) -> Server {
        let path = FieldPath::root("server");
        let shards = f
            .shards
            .and_then(|n| self.int(&path.key("shards"), n, 1, MAX_SHARDS));
        let cpus = f
            .cpus
            .as_deref()
            .and_then(|s| self.ok(&path.key("cpus"), parse_cpu_list(s)));
        let io_driver = match f.io_driver.as_deref() {
            None | Some("auto") => IoDriver::Auto,
            Some("uring") => IoDriver::Uring,
            Some("epoll") => IoDriver::Epoll,
            Some(other) => {
                let msg =
                    format!("unknown io_driver {other:?}: use \"auto\", \"uring\" or \"epoll\"");
                self.error(&path.key("io_driver"), msg);
                IoDriver::Auto
            }
        };
        let ring_path = path.key("ring_entries");
        let ring_entries = f
            .ring_entries
            .and_then(|n| self.int(&ring_path, n, 1, MAX_RING_ENTRIES))
            .and_then(|n| {
                if n.count_ones() == 1 {
                    Some(n as u32)
                } else {
                    self.error(&ring_path, format!("{n} is not a power of two"));
                    None
                }
            })
            .unwrap_or(defaults::RING_ENTRIES);
        let drain_timeout = f
            .drain_timeout
            .as_ref()
            .and_then(|d| self.duration(&path.key("drain_timeout"), d, Duration::ZERO))
            .unwrap_or(defaults::DRAIN_TIMEOUT);
        Server {
            shards: shards.map(|n| n as usize),
            cpus,
            pin: f.pin.unwrap_or(true),
            io_driver,
            ring_entries,
            drain_timeout,
        }
    }

    /// `f` overrides `base` field by field.
    fn limits(&mut self, path: &FieldPath, f: Option<&LimitsFile>, base: &Limits) -> Limits {
        let Some(f) = f else {
            return base.clone();
        };
        let min = Duration::from_millis(1);
        let size = |this: &mut Self, key: &str, v: &Option<SizeText>, lo: u64, hi: u64| {
            v.as_ref()
                .and_then(|v| this.size(&path.key(key), v, lo, hi))
        };
        let dur = |this: &mut Self, key: &str, v: &Option<DurationText>| {
            v.as_ref()
                .and_then(|v| this.duration(&path.key(key), v, min))
        };
        let int = |this: &mut Self, key: &str, v: Option<i64>, hi: i64| {
            v.and_then(|v| this.int(&path.key(key), v, 1, hi))
        };
        Limits {
            max_request_head_bytes: size(
                self,
                "max_request_head_bytes",
                &f.max_request_head_bytes,
                MIN_REQUEST_HEAD_BYTES,
                MAX_REQUEST_HEAD_BYTES,
            )
            .map_or(base.max_request_head_bytes, |n| n as usize),
            max_header_count: int(
                self,
                "max_header_count",
                f.max_header_count,
                MAX_HEADER_COUNT,
            )
            .map_or(base.max_header_count, |n| n as usize),
            max_uri_bytes: size(
                self,
                "max_uri_bytes",
                &f.max_uri_bytes,
                MIN_URI_BYTES,
                MAX_URI_BYTES,
            )
            .map_or(base.max_uri_bytes, |n| n as usize),
            max_request_body_bytes: size(
                self,
                "max_request_body_bytes",
                &f.max_request_body_bytes,
                0,
                u64::MAX,
            )
            .unwrap_or(base.max_request_body_bytes),
            header_timeout: dur(self, "header_timeout", &f.header_timeout)
                .unwrap_or(base.header_timeout),
            body_timeout: dur(self, "body_timeout", &f.body_timeout).unwrap_or(base.body_timeout),
            idle_timeout: dur(self, "idle_timeout", &f.idle_timeout).unwrap_or(base.idle_timeout),
            max_connections_per_shard: int(
                self,
                "max_connections_per_shard",
                f.max_connections_per_shard,
                MAX_CONNECTIONS_PER_SHARD,
            )
            .map_or(base.max_connections_per_shard, |n| n as usize),
        }
    }

    fn cluster(
        &mut self,
        i: usize,
        c: &ClusterFile,
        names: &mut HashMap<String, usize>,
    ) -> Cluster {
        let path = FieldPath::root("clusters").index(i);
        self.name("clusters", i, &c.name, names);
        let epath = path.key("endpoints");
        if c.endpoints.is_empty() {
            self.error(&epath, "a cluster needs at least one endpoint");
        }
        let mut endpoints = Vec::with_capacity(c.endpoints.len());
        for (j, text) in c.endpoints.iter().enumerate() {
            let jpath = epath.index(j);
            let Some(addr) = self.ok(&jpath, resolve_endpoint(text)) else {
                continue;
            };
            if let Some(k) = endpoints.iter().position(|&(_, a)| a == addr) {
                let (first, _) = endpoints[k];
                let msg = format!("{addr} is already endpoints[{first}] of this cluster");
                self.error(&jpath, msg);
            } else {
                endpoints.push((j, addr));
            }
        }
        let min = Duration::from_millis(1);
        let mut dur = |key: &str, v: &Option<DurationText>, default: Duration| {
            v.as_ref()
                .and_then(|v| self.duration(&path.key(key), v, min))
                .unwrap_or(default)
        };
        let connect_timeout = dur(
            "connect_timeout",
            &c.connect_timeout,
            defaults::CONNECT_TIMEOUT,
        );
        let response_timeout = dur(
            "response_timeout",
            &c.response_timeout,
            defaults::RESPONSE_TIMEOUT,
        );
        let idle_timeout = dur("idle_timeout", &c.idle_timeout, defaults::POOL_IDLE_TIMEOUT);
        let max_idle_per_endpoint = c
            .max_idle_per_endpoint
            .and_then(|n| {
                self.int(
                    &path.key("max_idle_per_endpoint"),
                    n,
                    0,
                    MAX_IDLE_PER_ENDPOINT,
                )
            })
            .map_or(defaults::MAX_IDLE_PER_ENDPOINT, |n| n as usize);
        Cluster {
            name: c.name.clone(),
            endpoints: endpoints.into_iter().map(|(_, a)| a).collect(),
            connect_timeout,
            response_timeout,
            max_idle_per_endpoint,
            idle_timeout,
        }
    }

    fn route(
        &mut self,
        i: usize,
        r: &RouteFile,
        clusters: &HashMap<String, usize>,
        names: &mut HashMap<String, usize>,
    ) -> Route {
        let path = &FieldPath::root("routes").index(i);
        let name = r.name.clone().unwrap_or_else(|| path.to_string());
        self.name("routes", i, &name, names);
        let matcher = match &r.matcher {
            Some(m) => self.matcher(&path.key("match"), m),
            None => RouteMatch::default(),
        };
        let max_request_body_bytes = r
            .max_request_body_bytes
            .as_ref()
            .and_then(|v| self.size(&path.key("max_request_body_bytes"), v, 0, u64::MAX));

        let set: Vec<&str> = [
            ("cluster", r.cluster.is_some()),
            ("direct", r.direct.is_some()),
            ("redirect", r.redirect.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match set.len() {
            0 => self.error(
                path,
                "no action: set exactly one of cluster, direct or redirect",
            ),
            1 => {}
            _ => {
                let msg = format!(
                    "several actions ({}): set exactly one of cluster, direct or redirect",
                    set.join(", ")
                );
                self.error(path, msg);
            }
        }
        // Each present action is checked even when there are several, so
        // their own errors show up in the same run.
        let mut action = None;
        if let Some(name) = &r.cluster {
            match clusters.get(name.as_str()) {
                Some(&cluster) => action = Some(RouteAction::Proxy { cluster }),
                None => self.error(&path.key("cluster"), format!("no cluster named {name:?}")),
            }
        }
        if let Some(d) = &r.direct {
            let a = self.direct(&path.key("direct"), d);
            action = action.or(a);
        }
        if let Some(d) = &r.redirect {
            let a = self.redirect(&path.key("redirect"), d);
            action = action.or(a);
        }
        Route {
            name,
            matcher,
            action: action.unwrap_or(RouteAction::Proxy { cluster: 0 }),
            max_request_body_bytes,
        }
    }

    fn matcher(&mut self, path: &FieldPath, m: &MatchFile) -> RouteMatch {
        let host = m
            .host
            .as_deref()
            .and_then(|h| self.ok(&path.key("host"), parse_host_pattern(h)));
        let exact = m
            .path
            .as_deref()
            .and_then(|p| self.ok(&path.key("path"), check_route_path(p)))
            .map(|p| PathMatch::Exact(p.to_owned()));
        let prefix = m
            .path_prefix
            .as_deref()
            .and_then(|p| self.ok(&path.key("path_prefix"), check_route_path(p)))
            .map(|p| PathMatch::Prefix(p.to_owned()));
        if m.path.is_some() && m.path_prefix.is_some() {
            self.error(path, "both path and path_prefix are set: use one");
        }
        let mut methods = Vec::new();
        if let Some(list) = &m.methods {
            let mpath = path.key("methods");
            if list.is_empty() {
                self.error(
                    &mpath,
                    "empty list matches no request: omit methods to match any method",
                );
            }
            for (i, text) in list.iter().enumerate() {
                let Some(method) = self.ok(&mpath.index(i), parse_method(text)) else {
                    continue;
                };
                if methods.contains(&method) {
                    self.error(&mpath.index(i), format!("method {method} is listed twice"));
                } else {
                    methods.push(method);
                }
            }
        }
        let headers = match &m.headers {
            Some(h) => self.header_map(&path.key("headers"), h, false),
            None => Vec::new(),
        };
        RouteMatch {
            host,
            path: exact.or(prefix),
            methods,
            headers,
        }
    }

    /// Header names are lowercased; two names equal but for case are an
    /// error. `response` also refuses the framing headers the proxy writes.
    fn header_map(
        &mut self,
        path: &FieldPath,
        map: &std::collections::BTreeMap<String, String>,
        response: bool,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(map.len());
        for (name, value) in map {
            let hpath = path.key(name);
            let Some(lower) = self.ok(&hpath, parse_header_name(name)) else {
                continue;
            };
            if response && matches!(lower.as_str(), "content-length" | "transfer-encoding") {
                self.error(&hpath, format!("{lower} is set by shardgate from the body"));
                continue;
            }
            if out.iter().any(|(n, _)| *n == lower) {
                self.error(
                    &hpath,
                    format!("header {lower} is set twice (names ignore case)"),
                );
                continue;
            }
            if self.ok(&hpath, check_header_value(value)).is_some() {
                out.push((lower, value.clone()));
            }
        }
        out
    }

    fn direct(&mut self, path: &FieldPath, d: &DirectFile) -> Option<RouteAction> {
        let spath = path.key("status");
        let status = match d.status {
            None => Some(200),
            Some(s @ 100..=199) => {
                self.error(
                    &spath,
                    format!("{s}: a 1xx status cannot be a direct response"),
                );
                None
            }
            Some(s @ 200..=599) => Some(s as u16),
            Some(s) => {
                self.error(&spath, format!("{s} is not an HTTP status code (200-599)"));
                None
            }
        };
        let body = d.body.clone().unwrap_or_default();
        if let Some(s @ (204 | 304)) = status {
            if !body.is_empty() {
                self.error(&path.key("body"), format!("a {s} response has no body"));
            }
        }
        let headers = match &d.headers {
            Some(h) => self.header_map(&path.key("headers"), h, true),
            None => Vec::new(),
        };
        Some(RouteAction::Direct {
            status: status?,
            headers,
            body: Bytes::from(body),
        })
    }

    fn redirect(&mut self, path: &FieldPath, r: &RedirectFile) -> Option<RouteAction> {
        let status = match r.status {
            None => Some(301),
            Some(s @ (301 | 302 | 303 | 307 | 308)) => Some(s as u16),
            Some(s) => {
                let msg = format!("{s} is not a redirect status: use 301, 302, 303, 307 or 308");
                self.error(&path.key("status"), msg);
                None
            }
        };
        let keep_path = r.keep_path.unwrap_or(false);
        let location = check_location(&r.location, keep_path);
        self.ok(&path.key("location"), location)?;
        Some(RouteAction::Redirect {
            status: status?,
            location: r.location.clone(),
            keep_path,
        })
    }

    fn int(&mut self, path: &FieldPath, v: i64, min: i64, max: i64) -> Option<i64> {
        if (min..=max).contains(&v) {
            Some(v)
        } else {
            self.error(path, format!("{v} is out of range: allowed {min} to {max}"));
            None
        }
    }

    fn size(&mut self, path: &FieldPath, v: &SizeText, min: u64, max: u64) -> Option<u64> {
        let n = self.ok(path, parse_size(&v.0))?;
        if n < min {
            let msg = format!("{} is too small: at least {}", fmt_size(n), fmt_size(min));
            self.error(path, msg);
            None
        } else if n > max {
            let msg = format!("{} is too large: at most {}", fmt_size(n), fmt_size(max));
            self.error(path, msg);
            None
        } else {
            Some(n)
        }
    }

    fn duration(&mut self, path: &FieldPath, v: &DurationText, min: Duration) -> Option<Duration> {
        let d = self.ok(path, parse_duration(&v.0))?;
        if d < min {
            let msg = format!(
                "{} is too short: at least {}",
                fmt_duration(d),
                fmt_duration(min)
            );
            self.error(path, msg);
            None
        } else if d > MAX_TIMEOUT {
            let msg = format!(
                "{} is too long: at most {}",
                fmt_duration(d),
                fmt_duration(MAX_TIMEOUT)
            );
            self.error(path, msg);
            None
        } else {
            Some(d)
        }
    }
}

/// Sizes: an integer number of bytes, or `"<whole number><unit>"` with a
/// binary unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (case-insensitive, space
/// allowed before the unit); no unit means bytes.
fn parse_size(v: &IntOrText) -> Result<u64, String> {
    let text = match v {
        IntOrText::Int(n) => {
            return u64::try_from(*n).map_err(|_| format!("{n}: a size cannot be negative"))
        }
        IntOrText::Text(t) => t.trim(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "{text:?}: whole numbers only (write \"1536KiB\", not \"1.5MiB\")"
        ));
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        "tib" => 40,
        "k" | "kb" | "m" | "mb" | "g" | "gb" | "t" | "tb" => {
            return Err(format!(
                "{text:?}: ambiguous unit {unit:?}; sizes use binary units B, KiB, MiB, GiB, TiB"
            ))
        }
        _ => {
            return Err(format!(
                "{text:?} is not a size: write bytes or a number with B, KiB, MiB, GiB or TiB, e.g. \"16KiB\""
            ))
        }
    };
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size: write bytes or a number with B, KiB, MiB, GiB or TiB, e.g. \"16KiB\""
        ));
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A size as written on the command line: same syntax as in the file.
pub fn parse_size_text(text: &str) -> Result<u64, String> {
    parse_size(&IntOrText::Text(text.to_owned()))
}

/// A duration as written on the command line: same syntax as in the file.
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(&IntOrText::Text(text.to_owned()))
}

/// Durations: `"<whole number><unit>"` with unit `ms`, `s`, `m` or `h`.
fn parse_duration(v: &IntOrText) -> Result<Duration, String> {
    const HINT: &str = "write a whole number with a unit ms, s, m or h, e.g. \"10s\" or \"250ms\"";
    let text = match v {
        IntOrText::Int(n) => return Err(format!("{n} has no unit: {HINT}")),
        IntOrText::Text(t) => t.as_str(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration: {HINT}"));
    }
    let millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("{text:?} has no unit: {HINT}")),
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!(
                "{text:?}: whole numbers only (write \"1500ms\", not \"1.5s\")"
            ))
        }
        _ => return Err(format!("{text:?} is not a duration: {HINT}")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// CPU lists as in `taskset -c` / `isolcpus`: `"0,2-3"`. Order is kept
/// (shard i runs on the i-th CPU listed); a CPU listed twice is an error.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let cpu = |s: &str| -> Result<usize, String> {
        let s = s.trim();
        match s.parse::<usize>() {
            Ok(n) if n < CPU_SETSIZE => Ok(n),
            Ok(n) => Err(format!(
                "CPU {n} is out of range: CPU ids are below {CPU_SETSIZE}"
            )),
            Err(_) => Err(format!(
                "{s:?} in {text:?} is not a CPU id: write a list like \"0,2-3\""
            )),
        }
    };
    if text.trim().is_empty() {
        return Err("empty CPU list: omit cpus to use every CPU".to_owned());
    }
    let mut cpus = Vec::new();
    for item in text.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (cpu(a)?, cpu(b)?),
            None => {
                let n = cpu(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range {:?} runs backwards", item.trim()));
        }
        for n in lo..=hi {
            if cpus.contains(&n) {
                return Err(format!("CPU {n} is listed twice"));
            }
            cpus.push(n);
        }
    }
    Ok(cpus)
}

/// `api.example.com` or `*.example.com` (wildcard only as the whole first
/// label), lowercased; no port, scheme or trailing dot. An IPv6 literal is
/// written in brackets as in a Host header: `[::1]`.
fn parse_host_pattern(text: &str) -> Result<HostMatch, String> {
    let host = text.to_ascii_lowercase();
    if host.is_empty() {
        return Err("empty host: omit host to match any host".to_owned());
    }
    if host.contains("://") {
        return Err(format!(
            "{text:?}: write the host name only, without a scheme"
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, "")) if ip.parse::<Ipv6Addr>().is_ok() => Ok(HostMatch::Exact(host)),
            Some((ip, rest)) if ip.parse::<Ipv6Addr>().is_ok() && rest.starts_with(':') => Err(
                format!("{text:?}: a port is not allowed, match on the host alone"),
            ),
            _ => Err(format!("{text:?} is not a bracketed IPv6 address")),
        };
    }
    if host.contains(':') {
        return Err(format!(
            "{text:?}: a port is not allowed, match on the host alone"
        ));
    }
    if host == "*" {
        return Err("\"*\" matches every host: omit host instead".to_owned());
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    if name.contains('*') {
        return Err(format!(
            "{text:?}: \"*\" is only allowed as the whole first label, as in \"*.example.com\""
        ));
    }
    if name.ends_with('.') {
        return Err(format!("{text:?}: remove the trailing dot"));
    }
    if name.len() > 253 {
        return Err(format!("{text:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{text:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{text:?} has a label longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("{text:?}: {c:?} is not allowed in a host name"));
        }
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_owned())
    })
}

/// A route path is compared with the request's normalised path
/// (`pipeline/path.rs`), so it must already be in that form, or the route
/// could never match: it starts with `/`, has no query, fragment,
/// whitespace, `//` or dot segments, and its percent escapes are
/// uppercase and not of unreserved characters (`%41` is written `A`).
fn check_route_path(p: &str) -> Result<&str, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with \"/\""));
    }
    if p.contains(['?', '#']) {
        return Err(format!(
            "{p:?}: a path cannot contain a query (?) or fragment (#)"
        ));
    }
    if p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("{p:?} contains whitespace or a control character"));
    }
    if p.contains("//") {
        return Err(format!(
            "{p:?} has \"//\", which a normalised request path never has (runs of \"/\" collapse to one)"
        ));
    }
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "{p:?} has a \".\" or \"..\" segment, which a normalised request path never has"
        ));
    }
    let bytes = p.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let Some(hex) = hex.and_then(|h| std::str::from_utf8(h).ok()) else {
            return Err(format!("{p:?}: \"%\" must be followed by two hex digits"));
        };
        let Ok(byte) = u8::from_str_radix(hex, 16) else {
            return Err(format!("{p:?}: \"%\" must be followed by two hex digits"));
        };
        if byte < b' ' || byte == 0x7f {
            return Err(format!("{p:?}: %{hex} is a control character"));
        }
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            return Err(format!(
                "{p:?}: write {:?} instead of %{hex} (normalised paths decode unreserved characters)",
                byte as char
            ));
        }
        if hex.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(format!(
                "{p:?}: write %{} (normalised paths use uppercase hex)",
                hex.to_ascii_uppercase()
            ));
        }
        i += 3;
    }
    Ok(p)
}

/// RFC 9110 `tchar`: the characters of a token (method, header name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A method is a token; stored uppercase.
fn parse_method(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!("{text:?} is not an HTTP method token"))
    }
}

/// A header name is a token; stored lowercase.
fn parse_header_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!("{text:?} is not a valid header name"))
    }
}

/// RFC 9110 field-value: visible characters, spaces and tabs inside, no
/// CR/LF/NUL (they would split or smuggle a header), nothing at either end
/// (parsers strip it, so such a value could never match).
fn check_header_value(v: &str) -> Result<(), String> {
    if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "{v:?} contains a control character (CR, LF, NUL...)"
        ));
    }
    if v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']) {
        return Err(format!("{v:?} has leading or trailing whitespace"));
    }
    Ok(())
}

/// A redirect target goes out as a `Location` header value.
fn check_location(location: &str, keep_path: bool) -> Result<(), String> {
    if location.is_empty() {
        return Err("must not be empty".to_owned());
    }
    check_header_value(location)?;
    if location.contains([' ', '\t']) {
        return Err(format!(
            "{location:?} contains a space: percent-encode it as %20"
        ));
    }
    if keep_path && location.ends_with('/') {
        return Err(format!(
            "{location:?} ends with \"/\" but keep_path appends the request path, which starts with \"/\": drop the trailing \"/\""
        ));
    }
    Ok(())
}

/// Listeners bind an IP address; host names are not resolved here.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP socket address: write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
        )
    })
}

/// `ip:port`, or `host:port` resolved now; the first address wins.
fn resolve_endpoint(text: &str) -> Result<SocketAddr, String> {
    if text.contains("://") {
        return Err(format!("{text:?}: write host:port without a scheme"));
    }
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            if text.parse::<IpAddr>().is_ok() {
                return Err(format!("{text:?} has no port"));
            }
            let Some((host, port)) = text.rsplit_once(':') else {
                return Err(format!("{text:?} has no port: write host:port"));
            };
            let Ok(port) = port.parse::<u16>() else {
                return Err(format!("{text:?}: {port:?} is not a port number"));
            };
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                return Err(format!("{text:?} is not host:port"));
            }
            let mut addrs = (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
            addrs
                .next()
                .ok_or_else(|| format!("{host:?} resolved to no address"))?
        }
    };
    if addr.port() == 0 {
        return Err(format!("{text:?}: port 0 cannot be connected to"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> IntOrText {
        IntOrText::Text(s.to_owned())
    }

    #[test]
    fn durations() {
        const OK: &[(&str, u64)] = &[
            ("250ms", 250),
            ("0s", 0),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ];
        for &(s, ms) in OK {
            assert_eq!(
                parse_duration(&text(s)),
                Ok(Duration::from_millis(ms)),
                "{s}"
            );
        }
        const BAD: &[(&str, &str)] = &[
            ("10", "has no unit"),
            ("", "is not a duration"),
            ("s", "is not a duration"),
            ("1.5s", "whole numbers only"),
            ("10 s", "is not a duration"),
            ("10sec", "is not a duration"),
            ("-1s", "is not a duration"),
            ("99999999999999999999h", "too long"),
        ];
        for &(s, want) in BAD {
            let err = parse_duration(&text(s)).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
        let err = parse_duration(&IntOrText::Int(10)).unwrap_err();
        assert!(err.contains("10 has no unit"), "{err}");
    }

    #[test]
    fn sizes() {
        const OK: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("16KiB", 16 * 1024),
            ("16 KiB", 16 * 1024),
            ("16kib", 16 * 1024),
            ("10MiB", 10 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
        ];
        for &(s, n) in OK {
            assert_eq!(parse_size(&text(s)), Ok(n), "{s}");
        }
        const BAD: &[(&str, &str)] = &[
            ("16KB", "ambiguous unit"),
            ("16k", "ambiguous unit"),
            ("1.5MiB", "whole numbers only"),
            ("KiB", "is not a size"),
            ("", "is not a size"),
            ("lots", "is not a size"),
            ("-1", "is not a size"),
            ("99999999TiB", "too large"),
        ];
        for &(s, want) in BAD {
            let err = parse_size(&text(s)).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
        assert_eq!(parse_size(&IntOrText::Int(4096)), Ok(4096));
        assert!(parse_size(&IntOrText::Int(-1)).is_err());
    }

    #[test]
    fn host_patterns() {
        use HostMatch::{Exact, Suffix};
        let ok: &[(&str, HostMatch)] = &[
            ("api.example.com", Exact("api.example.com".into())),
            ("API.Example.COM", Exact("api.example.com".into())),
            ("*.example.com", Suffix(".example.com".into())),
            ("localhost", Exact("localhost".into())),
            ("10.0.0.1", Exact("10.0.0.1".into())),
            ("[::1]", Exact("[::1]".into())),
        ];
        for (s, want) in ok {
            assert_eq!(parse_host_pattern(s).as_ref(), Ok(want), "{s}");
        }
        const BAD: &[(&str, &str)] = &[
            ("a.*.com", "whole first label"),
            ("*example.com", "whole first label"),
            ("*.*.com", "whole first label"),
            ("*", "omit host"),
            ("", "omit host"),
            ("example.com:8080", "port is not allowed"),
            ("[::1]:8080", "port is not allowed"),
            ("https://example.com", "without a scheme"),
            ("example.com.", "trailing dot"),
            ("a..b", "empty label"),
            ("ex ample.com", "not allowed in a host name"),
        ];
        for &(s, want) in BAD {
            let err = parse_host_pattern(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("0,2-3"), Ok(vec![0, 2, 3]));
        assert_eq!(parse_cpu_list(" 3, 1 - 2 "), Ok(vec![3, 1, 2]));
        const BAD: &[(&str, &str)] = &[
            ("", "empty CPU list"),
            ("0,,1", "is not a CPU id"),
            ("a", "is not a CPU id"),
            ("3-1", "runs backwards"),
            ("0-2,1", "listed twice"),
            ("1024", "out of range"),
            ("-1", "is not a CPU id"),
        ];
        for &(s, want) in BAD {
            let err = parse_cpu_list(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn paths_methods_headers() {
        assert!(check_route_path("/api/").is_ok());
        assert!(check_route_path("/a%2Fb").is_ok());
        const BAD: &[(&str, &str)] = &[
            ("api", "must start with"),
            ("/a?b", "query"),
            ("/a b", "whitespace"),
            ("/a/../b", "segment"),
            ("/a/.", "segment"),
            ("/a//b", "collapse"),
            ("/a%2fb", "write %2F"),
            ("/%7euser", "write '~' instead of %7e"),
            ("/%2E%2E/x", "write '.' instead of %2E"),
            ("/a%0Ab", "control character"),
            ("/a%zz", "two hex digits"),
            ("/a%2", "two hex digits"),
        ];
        for &(bad, want) in BAD {
            let err = check_route_path(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert_eq!(parse_method("get"), Ok("GET".to_owned()));
        assert!(parse_method("GE T").is_err());
        assert!(parse_method("").is_err());
        assert_eq!(parse_header_name("X-Env"), Ok("x-env".to_owned()));
        assert!(parse_header_name("x env").is_err());
        assert!(check_header_value("a b").is_ok());
        assert!(check_header_value("a\r\nb").is_err());
        assert!(check_header_value(" a").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            resolve_endpoint("127.0.0.1:9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert!(resolve_endpoint("localhost:9000").is_ok());
        for bad in [
            "127.0.0.1",
            "::1",
            "http://a:1",
            "a:b",
            "127.0.0.1:0",
            "a b:1",
        ] {
            assert!(resolve_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_paths_render() {
        let p = FieldPath::root("routes").index(3).key("match").key("host");
        assert_eq!(p.to_string(), "routes[3].match.host");
        let p = FieldPath::root("clusters")
            .index(1)
            .key("endpoints")
            .index(2);
        assert_eq!(p.to_string(), "clusters[1].endpoints[2]");
        let p = FieldPath::root("routes").index(0).key("headers").key("a b");
        assert_eq!(p.to_string(), "routes[0].headers.\"a b\"");
    }

    #[test]
    fn lines_from_paths() {
        let text = "[server]\nshards = 2\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\n\
                    name = \"b\"\nmatch = { host = \"x\" }\n\n[[clusters]]\nname = \"c\"\n\
                    endpoints = [\n  \"127.0.0.1:1\",\n  \"127.0.0.1:2\",\n]\n";
        let doc = DeTable::parse(text).unwrap();
        let spans = Spans {
            text,
            root: doc.get_ref(),
        };
        let line = |p: FieldPath| spans.line_of(&p);
        let routes = FieldPath::root("routes");
        assert_eq!(line(FieldPath::root("server").key("shards")), Some(2));
        assert_eq!(line(routes.index(0)), Some(4));
        assert_eq!(line(routes.index(1).key("name")), Some(8));
        assert_eq!(line(routes.index(1).key("match").key("host")), Some(9));
        // Absent key: the enclosing table's line.
        assert_eq!(line(routes.index(1).key("cluster")), Some(7));
        let eps = FieldPath::root("clusters").index(0).key("endpoints");
        assert_eq!(line(eps.index(1)), Some(15));
        assert_eq!(line(FieldPath::root("listeners")), None);
    }

    #[test]
    fn errors_collected_with_lines() {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n\
                    [[routes]]\ncluster = \"nope\"\n\n[[routes]]\n";
        let errs = load_str(text, "t.toml").unwrap_err();
        assert_eq!(
            errs.to_string(),
            "routes[0].cluster: no cluster named \"nope\" (line 6)\n\
             routes[1]: no action: set exactly one of cluster, direct or redirect (line 8)"
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
    fn listener_routes_follow_file_order() {
        let text = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n\
                    [[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:0\"\n\
                    [[routes]]\nlisteners = [\"b\"]\ndirect = {}\n\
                    [[routes]]\ndirect = { status = 404 }\n";
        let c = load_str(text, "t.toml").unwrap();
        assert_eq!(c.listeners[0].routes, vec![1]);
        assert_eq!(c.listeners[1].routes, vec![0, 1]);
        assert_eq!(c.routes[0].name, "routes[0]");
    }
}
