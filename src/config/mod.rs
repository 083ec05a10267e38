//! Configuration, in three stages `file -> validate -> Config`: `file.rs`
//! (the serde shape users write in TOML) -> `validate.rs` (checks, defaults,
//! name resolution, errors with field path and line) -> this module's typed
//! runtime [`Config`].
//!
//! Beside the stages: `units.rs` (size, duration and CPU list syntax, shared
//! with command-line flags), `bounds.rs` (allowed ranges, also shared with
//! flags), `values.rs` (hosts, paths, headers, addresses), `spans.rs` (field
//! path -> line), `errors.rs`, `fingerprint.rs` (a stable hash for names
//! derived from content), and `summary.rs` (`shardgate check`'s output).
//!
//! The runtime shape holds only resolved, typed values (durations, socket
//! addresses, indices instead of names) so the request path never parses a
//! string from the config. Shards receive it inside an `Arc<Generation>`
//! (`shard/generation.rs`), with what is built from it.

pub mod access_log;
pub mod balance;
pub mod bounds;
pub mod cidr;
pub mod consumers;
mod errors;
mod file;
pub mod fingerprint;
pub mod health_check;
pub mod metrics;
pub mod outlier;
pub mod policy;
pub mod secret;
mod spans;
mod summary;
mod tls;
pub mod tracing;
pub mod units;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

pub use self::tracing::{OtlpExport, Tracing, TrustIncoming};
pub use balance::{Balance, HashKey, LbPolicy};
pub use cidr::Cidr;
pub use consumers::{Consumer, Consumers};
pub use errors::{ConfigError, ConfigErrors, ConfigWarning};
pub use metrics::Metrics;
pub use policy::{ApiKeyAuth, IpRules, KeyLocation, RoutePolicies};
pub use secret::Secret;

/// Default limits. Each is overridable in `[limits]`, per listener in
/// `[listeners.limits]`, and on the command line, within [`bounds`].
pub mod defaults {
    use std::time::Duration;
    /// Whole request head (request line + headers); larger gets 431.
    /// nginx: large_client_header_buffers 4 8k; Envoy: max_request_headers_kb 60.
    pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
    /// Header fields in one request head; more gets 431 (Envoy: 100).
    pub const MAX_HEADER_COUNT: usize = 100;
    /// Request target length; longer gets 414.
    pub const MAX_URI_BYTES: usize = 8 * 1024;
    /// Request body; larger gets 413 (checked against Content-Length up front,
    /// and while streaming for chunked bodies).
    pub const MAX_REQUEST_BODY_BYTES: u64 = 1024 * 1024 * 1024;
    /// Whole request head must arrive within this (slowloris): 408 and close.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Longest wait for the next body bytes, either direction.
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Idle keep-alive downstream connection lifetime between requests.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Open downstream connections per shard; above it new ones get 503 and close.
    pub const MAX_CONNECTIONS_PER_SHARD: usize = 16 * 1024;
    /// In-flight requests get this long to finish after SIGTERM/SIGINT.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// io_uring submission queue entries per shard.
    pub const RING_ENTRIES: u32 = 1024;
    /// Upstream TCP connect (Envoy's default connect_timeout).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Per try: request sent -> response head complete (Envoy's route timeout).
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
    /// Idle upstream connections kept per endpoint per shard.
    pub const MAX_IDLE_PER_ENDPOINT: usize = 64;
    /// An idle pooled upstream connection older than this is closed.
    pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Session ticket key rotation period (`[listeners.tls] ticket_lifetime`):
    /// rustls' own default; a ticket is accepted for up to twice this.
    pub const TICKET_LIFETIME: Duration = Duration::from_secs(6 * 60 * 60);
    /// Status of an `https_redirect` route (permanent, method kept).
    pub const HTTPS_REDIRECT_STATUS: u16 = 308;
    /// The https port a redirect omits from `Location`.
    pub const HTTPS_PORT: u16 = 443;
}

/// The validated, typed configuration every shard runs from.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub admin: Option<Admin>,
    pub listeners: Vec<Listener>,
    /// All routes in file order; listeners refer to them by index.
    pub routes: Vec<Route>,
    pub clusters: Vec<Cluster>,
    /// `[metrics]`: per-label counters and latency histograms on or off.
    pub metrics: Metrics,
    /// `[access_log]`; `None`: no access log.
    pub access_log: Option<access_log::AccessLog>,
    /// Header names the proxy asserts, over all listeners: removed from
    /// every request on every listener (see [`AssertedHeaders`]).
    pub asserted_headers: AssertedHeaders,
    /// `[tracing]` (off when absent).
    pub tracing: Tracing,
    /// `[[consumers]]` and their API key digests.
    pub consumers: Consumers,
}

/// Header names whose value only the proxy may set, because it vouches
/// for them (every listener's `client_cert_header`, every route's
/// `consumer_header`; later claims headers). One listener asserting a name is enough for it to
/// be removed from requests on EVERY listener: a route often serves an
/// mTLS listener and one without client certificates, and the upstream
/// cannot tell which one a request came through. Computed once when the
/// config is built; the upstream head encoder reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssertedHeaders(Vec<Box<[u8]>>);

impl AssertedHeaders {
    /// The union of what `listeners` assert, lowercase, without repeats.
    pub fn of(listeners: &[Listener]) -> AssertedHeaders {
        let mut names: Vec<Box<[u8]>> = Vec::new();
        let asserted = listeners.iter().filter_map(|l| l.tls.as_ref()?.client_cert_header.as_deref());
        for name in asserted {
            let name: Box<[u8]> = name.to_ascii_lowercase().into_bytes().into();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        AssertedHeaders(names)
    }

    /// Adds `name` (lowercase): a route's `consumer_header`.
    pub fn add(&mut self, name: &str) {
        let name: Box<[u8]> = name.to_ascii_lowercase().into_bytes().into();
        if !self.0.contains(&name) {
            self.0.push(name);
        }
    }

    /// From names directly (the tests of the encoder).
    pub fn from_names(names: &[&str]) -> AssertedHeaders {
        AssertedHeaders(names.iter().map(|n| n.to_ascii_lowercase().into_bytes().into()).collect())
    }

    /// Whether `name` (any case) is asserted by the proxy.
    #[inline]
    pub fn contains(&self, name: &[u8]) -> bool {
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Process-wide settings (`[server]`).
#[derive(Debug, Clone)]
pub struct Server {
    /// Number of shards; `None` = one per CPU in `cpus` (or per available core).
    pub shards: Option<usize>,
    /// CPUs shards are pinned to, in order (shard i -> cpus[i % len]); `None` = all.
    pub cpus: Option<Vec<usize>>,
    pub pin: bool,
    pub io_driver: IoDriver,
    pub ring_entries: u32,
    pub drain_timeout: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            shards: None,
            cpus: None,
            pin: true,
            io_driver: IoDriver::Auto,
            ring_entries: defaults::RING_ENTRIES,
            drain_timeout: defaults::DRAIN_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring, falling back to epoll (with one log line) if it cannot be set up.
    Auto,
    Uring,
    Epoll,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Every admin request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    /// TCP_DEFER_ACCEPT on the listening sockets (nginx `listen ...
    /// deferred`): the kernel completes the accept only when the client's
    /// first bytes are there, so the first read never waits.
    pub defer_accept: bool,
    /// SO_SNDBUF on the listening sockets, inherited by every accepted
    /// connection (nginx `listen ... sndbuf=`): bounds the kernel memory a
    /// client that reads slowly or not at all can hold. `None`: the kernel
    /// autotunes (on loopback up to 4 MiB per connection).
    pub send_buffer_bytes: Option<usize>,
    pub limits: Limits,
    /// `[listeners.paths]`: how ambiguous path spellings are treated.
    pub paths: PathRules,
    /// Indices into `Config::routes`, in match order.
    pub routes: Vec<usize>,
    /// `Some` = HTTPS: TLS is terminated on this listener.
    pub tls: Option<ListenerTls>,
    /// Peers whose forwarding headers are believed (nginx:
    /// set_real_ip_from; Envoy: xff_num_trusted_hops). Empty = none, as
    /// Envoy at the edge.
    pub trusted_proxies: Vec<Cidr>,
    /// What happens to forwarding headers from an untrusted peer.
    pub forwarded_headers: ForwardedHeaders,
    /// Request header names with `_` are passed upstream (nginx
    /// `underscores_in_headers on`). Off by default: CGI-style servers read
    /// `X_Real_IP` as `X-Real-IP`, so such names could carry identity
    /// headers past the proxy's rules; they are dropped.
    pub underscores_in_headers: bool,
    /// Client address rules for every request on the listener (before a
    /// route's own).
    pub ip_rules: Option<IpRules>,
}

/// `forwarded_headers`: X-Forwarded-For and Forwarded from a peer that is
/// not a trusted proxy. (From a trusted one the chain is always kept and
/// the peer appended.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeaders {
    /// Dropped; the proxy's own describe the peer (Envoy at the edge).
    #[default]
    Replace,
    /// Kept, the peer appended (nginx's `$proxy_add_x_forwarded_for`):
    /// for upstreams that log the whole chain. The effective client
    /// address, X-Real-IP, is still the peer.
    Append,
}

/// `[listeners.paths]`: what path normalisation (`pipeline/path.rs`) does
/// with spellings that backends read differently. Every default refuses
/// the spelling (400): a deny route cannot be escaped by it, whatever the
/// backend. An operator who knows the backend relaxes a rule per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathRules {
    pub escaped_slashes: EscapedSlashes,
    pub backslash: Backslash,
    pub matrix_parameters: MatrixParameters,
    pub trailing_dots_and_spaces: TrailingDotsAndSpaces,
    pub double_encoding: DoubleEncoding,
}

impl PathRules {
    /// `key=word` for each rule that differs from its default, in file order
    /// (for `shardgate check`).
    pub fn non_defaults(&self) -> Vec<String> {
        fn word<T: PartialEq>(words: &[(&'static str, T)], v: &T) -> &'static str {
            words.iter().find(|(_, w)| w == v).map_or("?", |(word, _)| word)
        }
        let d = PathRules::default();
        let mut out = Vec::new();
        let mut add = |key: &str, differs: bool, w: &str| {
            if differs {
                out.push(format!("{key}={w}"));
            }
        };
        add(
            "escaped_slashes",
            self.escaped_slashes != d.escaped_slashes,
            word(EscapedSlashes::WORDS, &self.escaped_slashes),
        );
        add("backslash", self.backslash != d.backslash, word(Backslash::WORDS, &self.backslash));
        let m = self.matrix_parameters;
        add("matrix_parameters", m != d.matrix_parameters, word(MatrixParameters::WORDS, &m));
        let t = self.trailing_dots_and_spaces;
        add("trailing_dots_and_spaces", t != d.trailing_dots_and_spaces, word(TrailingDotsAndSpaces::WORDS, &t));
        add(
            "double_encoding",
            self.double_encoding != d.double_encoding,
            word(DoubleEncoding::WORDS, &self.double_encoding),
        );
        out
    }
}

/// `%2F` and `%5C` in a path (Envoy `path_with_escaped_slashes_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// 400: some backends decode them into separators, some do not.
    #[default]
    Reject,
    /// Data, not separators: matched and forwarded as `%2F` / `%5C`.
    Keep,
    /// `%2F` becomes `/` (a separator, for matching and upstream); `%5C`
    /// becomes `\`, which the [`Backslash`] rule then judges.
    Decode,
}

impl EscapedSlashes {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] =
        &[("reject", Self::Reject), ("keep", Self::Keep), ("decode", Self::Decode)];
}

/// A raw `\` in a path (IIS and Windows read it as `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backslash {
    #[default]
    Reject,
    /// A separator, forwarded as `/`.
    Slash,
}

impl Backslash {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] = &[("reject", Self::Reject), ("slash", Self::Slash)];
}

/// `;` in a path segment (Tomcat/Jetty path parameters: `/a;x/b` is `/a/b`
/// to them, and `..;` is `..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatrixParameters {
    #[default]
    Reject,
    /// Routes match the path with each segment's `;…` removed (then dot
    /// segments resolved again); the upstream receives them unchanged.
    Strip,
    /// `;` is an ordinary character of the segment.
    Keep,
}

impl MatrixParameters {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] =
        &[("reject", Self::Reject), ("strip", Self::Strip), ("keep", Self::Keep)];
}

/// A segment ending in `.` or a space (`%20`), other than `.` and `..`
/// (Windows and IIS drop both from file names: `/admin./x` is `/admin/x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailingDotsAndSpaces {
    #[default]
    Reject,
    /// Removed from the segment, for matching and upstream alike.
    Strip,
    Keep,
}

impl TrailingDotsAndSpaces {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] =
        &[("reject", Self::Reject), ("strip", Self::Strip), ("keep", Self::Keep)];
}

/// `%25` followed by two hex digits: an escape escaped once more
/// (`%252F` is `%2F` after one decoding, `/` after two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DoubleEncoding {
    #[default]
    Reject,
    /// Forwarded as sent: for backends that decode exactly once.
    Keep,
}

impl DoubleEncoding {
    /// The words a config file writes, first the default.
    pub const WORDS: &'static [(&'static str, Self)] = &[("reject", Self::Reject), ("keep", Self::Keep)];
}

/// `[listeners.tls]`: TLS termination. Every file was loaded and checked at
/// validation (readable, key matches, valid now); `crate::tls` loads them
/// again when it builds the rustls config, and on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// At least one. Chosen by SNI; the first is the default for clients
    /// that send no SNI or an unknown name, unless `strict_sni`.
    pub certificates: Vec<CertificateFiles>,
    /// No SNI, or a name no certificate serves: handshake failure instead of
    /// the default certificate.
    pub strict_sni: bool,
    pub min_version: TlsVersion,
    /// mTLS: clients must present a certificate chaining to this CA bundle.
    pub client_ca: Option<PathBuf>,
    /// Lowercase header name carrying the verified client certificate's
    /// subject and SANs upstream (`crate::tls::certs::client_identity`);
    /// only with `client_ca`. The proxy replaces any value the client sent.
    pub client_cert_header: Option<String>,
    /// Session ticket keys rotate this often (shared by every shard).
    pub ticket_lifetime: Duration,
    /// `Strict-Transport-Security` value added to every response on this listener.
    pub hsts: Option<String>,
}

impl ListenerTls {
    /// One certificate, every default: what `shardgate proxy --tls-cert
    /// --tls-key` serves. The files are checked when the rustls config is
    /// built, with errors naming them.
    pub fn single(cert: PathBuf, key: PathBuf) -> ListenerTls {
        ListenerTls {
            certificates: vec![CertificateFiles { cert, key, server_names: Vec::new() }],
            strict_sni: false,
            min_version: TlsVersion::Tls12,
            client_ca: None,
            client_cert_header: None,
            ticket_lifetime: defaults::TICKET_LIFETIME,
            hsts: None,
        }
    }
}

/// A PEM certificate chain (leaf first) and its private key. Paths are
/// absolute or relative to the working directory: relative paths in the
/// file were resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names this certificate is chosen for: exact (`a.example.com`) or
    /// one-label wildcards (`*.example.com`), lowercase. Empty = the DNS
    /// names of the certificate's subjectAltName, read again on each
    /// (re)load. Unused for a cluster's client certificate.
    pub server_names: Vec<String>,
}

/// Lowest TLS version offered; the highest is always 1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `[clusters.tls]`: TLS to every endpoint of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// SNI sent and name verified; `None` = each endpoint's host as written
    /// in the config (`Cluster::endpoint_hosts`), an IP address included.
    pub server_name: Option<String>,
    /// CA bundle; `None` = the system roots (checked present at validation).
    pub ca: Option<PathBuf>,
    /// `false` accepts any upstream certificate (logged as insecure).
    pub verify: bool,
    /// Client certificate for upstream mTLS (`server_names` unused).
    pub client_cert: Option<CertificateFiles>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_request_head_bytes: usize,
    pub max_header_count: usize,
    pub max_uri_bytes: usize,
    pub max_request_body_bytes: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections_per_shard: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_head_bytes: defaults::MAX_REQUEST_HEAD_BYTES,
            max_header_count: defaults::MAX_HEADER_COUNT,
            max_uri_bytes: defaults::MAX_URI_BYTES,
            max_request_body_bytes: defaults::MAX_REQUEST_BODY_BYTES,
            header_timeout: defaults::HEADER_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_connections_per_shard: defaults::MAX_CONNECTIONS_PER_SHARD,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Overrides the listener's `max_request_body_bytes` for this route.
    pub max_request_body_bytes: Option<u64>,
    /// What the policy stages do for this route (`policy.rs`).
    pub policies: RoutePolicies,
}

/// All present conditions must hold. Names and hosts are stored lowercase.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: Option<PathMatch>,
    /// `path` / `path_prefix` compare ASCII letters case-insensitively.
    pub path_case_insensitive: bool,
    /// Empty = any method. Uppercase tokens, e.g. "GET".
    pub methods: Vec<String>,
    /// (lowercase name, exact value) pairs that must all be present.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com` (lowercase, no port).
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches `a.example.com`,
    /// `a.b.example.com`, not `example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Index into `Config::clusters`.
    Proxy {
        cluster: usize,
    },
    Direct {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// `Location: location` (+ request path and query when `keep_path`).
    Redirect {
        status: u16,
        location: String,
        keep_path: bool,
    },
    /// `Location: https://{host}{:port}{path}{?query}`: the request's host
    /// (without its port), normalised path and query kept. `port: None` is
    /// 443, written without a port. See [`RouteAction::https_location`].
    HttpsRedirect {
        status: u16,
        port: Option<u16>,
    },
}

impl RouteAction {
    /// The `Location` of an [`RouteAction::HttpsRedirect`]: `host` is the
    /// request's Host (any `:port` is dropped; an IPv6 literal keeps its
    /// brackets), `path` the normalised path, `query` without its `?`.
    pub fn https_location(host: &[u8], port: Option<u16>, path: &[u8], query: Option<&[u8]>) -> Vec<u8> {
        let host = match host.iter().rposition(|&b| b == b':') {
            // `[::1]:8080` or `a.example:8080`; a bare `[::1]` has its last
            // colon inside the brackets.
            Some(i) if !host[i..].contains(&b']') => &host[..i],
            _ => host,
        };
        let mut out = Vec::with_capacity(8 + host.len() + 6 + path.len() + query.map_or(0, |q| q.len() + 1));
        out.extend_from_slice(b"https://");
        out.extend_from_slice(host);
        if let Some(port) = port {
            out.extend_from_slice(format!(":{port}").as_bytes());
        }
        out.extend_from_slice(path);
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q);
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    /// The host of each endpoint as written (`backend.internal`, `10.0.0.1`,
    /// `::1` without brackets), parallel to `endpoints`: the default TLS
    /// server name (`crate::tls::client_config::server_name`).
    pub endpoint_hosts: Vec<String>,
    /// Each endpoint as written, `host[:port]` without the scheme's
    /// default port (nginx's `$proxy_host`), parallel to `endpoints`: the
    /// Host sent upstream for a request that had none (HTTP/1.0).
    pub proxy_hosts: Vec<String>,
    /// Each endpoint's weight (1..=1000), parallel to `endpoints`.
    pub weights: Vec<u32>,
    /// The balancing algorithm and its settings.
    pub balance: Balance,
    /// `Some` = TLS to the endpoints.
    pub tls: Option<ClusterTls>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: Duration,
    /// `[clusters.health_check]`: active probes (`upstream/health/`).
    pub health_check: Option<health_check::HealthCheck>,
    /// `[clusters.outlier]`: passive ejection per shard.
    pub outlier: Option<outlier::Outlier>,
    /// Percent (0..=100): with fewer healthy endpoints than this share,
    /// selection spreads over all of them (Envoy's panic mode); 0 = never.
    pub healthy_panic_threshold: u32,
}

impl Config {
    /// Reads, parses and validates a config file. Every error found is
    /// returned, each naming its field path and line.
    /// Secrets in it are read now, so each load (a reload too) reads them
    /// afresh; warnings (a secret file others can read) are logged.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        validate::load_file(path)
    }

    /// [`Config::load`] returning its warnings instead of logging them
    /// (for a caller that reports them itself, such as `POST /reload`).
    pub fn load_with_warnings(path: &Path) -> (Result<Config, ConfigErrors>, Vec<ConfigWarning>) {
        validate::load_file_with_warnings(path)
    }

    /// Same as [`Config::load`] on text already in memory; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        validate::load_str(text, origin)
    }

    /// A plain proxy with every default: listener "proxy" on `listen`, one
    /// catch-all route "default" to cluster "upstream" with `upstreams` as
    /// its endpoints. For `shardgate run --listen .. --upstream ..` and tests.
    /// `upstreams` should not be empty (a cluster without endpoints answers
    /// every request with 503); the caller checks that.
    pub fn quick_proxy(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> Config {
        Config {
            server: Server::default(),
            admin: None,
            metrics: Metrics::default(),
            listeners: vec![Listener {
                name: "proxy".to_owned(),
                addr: listen,
                defer_accept: false,
                send_buffer_bytes: None,
                limits: Limits::default(),
                paths: PathRules::default(),
                routes: vec![0],
                tls: None,
                trusted_proxies: Vec::new(),
                forwarded_headers: ForwardedHeaders::Replace,
                underscores_in_headers: false,
                ip_rules: None,
            }],
            routes: vec![Route {
                name: "default".to_owned(),
                matcher: RouteMatch::default(),
                action: RouteAction::Proxy { cluster: 0 },
                max_request_body_bytes: None,
                policies: RoutePolicies::default(),
            }],
            clusters: vec![Cluster {
                name: "upstream".to_owned(),
                endpoint_hosts: upstreams.iter().map(|a| a.ip().to_string()).collect(),
                proxy_hosts: upstreams.iter().map(|a| values::proxy_host(&a.to_string(), false)).collect(),
                weights: vec![balance::DEFAULT_WEIGHT; upstreams.len()],
                endpoints: upstreams,
                balance: Balance::default(),
                tls: None,
                connect_timeout: defaults::CONNECT_TIMEOUT,
                response_timeout: defaults::RESPONSE_TIMEOUT,
                max_idle_per_endpoint: defaults::MAX_IDLE_PER_ENDPOINT,
                idle_timeout: defaults::POOL_IDLE_TIMEOUT,
                health_check: None,
                outlier: None,
                healthy_panic_threshold: outlier::DEFAULT_HEALTHY_PANIC_THRESHOLD,
            }],
            // No listener asserts anything (no client certificates).
            access_log: None,
            asserted_headers: AssertedHeaders::default(),
            tracing: Tracing::default(),
            consumers: Consumers::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_proxy_is_one_catch_all_route() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let up: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let c = Config::quick_proxy(listen, vec![up]);
        assert_eq!(c.listeners[0].routes, vec![0]);
        assert!(matches!(c.routes[0].action, RouteAction::Proxy { cluster: 0 }));
        assert_eq!(c.clusters[0].endpoints, vec![up]);
        let summary = c.summary();
        assert!(summary.contains("listener \"proxy\" 127.0.0.1:8080"), "{summary}");
        assert!(summary.contains("route \"default\" (any request) -> cluster \"upstream\""));
        assert!(summary.contains("cluster \"upstream\" endpoints=127.0.0.1:9000\n"));
        assert_eq!(c.clusters[0].endpoint_hosts, ["127.0.0.1"]);
    }

    #[test]
    fn https_location_keeps_host_path_and_query() {
        /// (Host, port, path, query, Location)
        type Case = (&'static str, Option<u16>, &'static str, Option<&'static str>, &'static str);
        const CASES: &[Case] = &[
            ("a.example", None, "/x", None, "https://a.example/x"),
            ("a.example:8080", None, "/x", Some("q=1"), "https://a.example/x?q=1"),
            ("a.example:80", Some(8443), "/", None, "https://a.example:8443/"),
            ("[::1]:8080", None, "/p", None, "https://[::1]/p"),
            ("[::1]", Some(8443), "/p", None, "https://[::1]:8443/p"),
            ("10.0.0.1", None, "/p", Some(""), "https://10.0.0.1/p?"),
        ];
        for &(host, port, path, query, want) in CASES {
            let got = RouteAction::https_location(host.as_bytes(), port, path.as_bytes(), query.map(str::as_bytes));
            assert_eq!(String::from_utf8(got).unwrap(), want, "{host} {port:?}");
        }
    }
}
