//! The config file's shape: what users write in TOML, deserialized with serde
//! and nothing more. First stage of `file -> validate -> Config`.
//!
//! Every field is optional here unless the file format requires it, so that
//! `validate.rs` can tell "absent" (take the default) from "present" (check
//! it), and can collect every bad value instead of stopping at the first one
//! the way serde does. For the same reason values with units (sizes,
//! durations), addresses and names are kept as the raw text the user wrote;
//! turning them into typed values is `validate.rs`'s job. Serde itself only
//! rejects what cannot be held at all: unknown keys (`deny_unknown_fields`
//! everywhere, so a typo is an error and never a silently ignored setting) and
//! values of the wrong TOML type.
//!
//! Integers are read as `i64` so that a negative or zero value reaches
//! validation and gets a message naming the allowed range, not serde's
//! "expected u32".

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

pub use super::balance::{EndpointFile, HashKeyFile};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<ServerFile>,
    pub admin: Option<AdminFile>,
    /// Defaults for every listener.
    pub limits: Option<LimitsFile>,
    #[serde(default)]
    pub listeners: Vec<ListenerFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    #[serde(default)]
    pub clusters: Vec<ClusterFile>,
    pub tracing: Option<super::tracing::TracingFile>,
    pub access_log: Option<super::access_log::AccessLogFile>,
    #[serde(default)]
    pub consumers: Vec<super::consumers::ConsumerFile>,
    pub metrics: Option<super::metrics::MetricsFile>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub shards: Option<i64>,
    /// CPU list, e.g. `"0,2-3"`.
    pub cpus: Option<String>,
    pub pin: Option<bool>,
    /// `auto`, `uring` or `epoll`.
    pub io_driver: Option<String>,
    pub ring_entries: Option<i64>,
    pub drain_timeout: Option<DurationText>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: String,
    /// Bearer token: `file:PATH`, `env:NAME` or the token itself.
    pub token: Option<String>,
}

/// `[limits]` and `[listeners.limits]`; the latter overrides the former field
/// by field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_request_head_bytes: Option<SizeText>,
    pub max_header_count: Option<i64>,
    pub max_uri_bytes: Option<SizeText>,
    pub max_request_body_bytes: Option<SizeText>,
    pub header_timeout: Option<DurationText>,
    pub body_timeout: Option<DurationText>,
    pub idle_timeout: Option<DurationText>,
    pub max_connections_per_shard: Option<i64>,
}

/// `[[listeners]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: String,
    /// `ip:port`; no host names (a listener binds one address).
    pub listen: String,
    /// TCP_DEFER_ACCEPT: accept once the client has sent data.
    pub defer_accept: Option<bool>,
    /// SO_SNDBUF of accepted connections (unset: the kernel autotunes).
    pub send_buffer_bytes: Option<SizeText>,
    /// CIDR ranges (or bare addresses) of proxies whose forwarding headers
    /// name the client.
    pub trusted_proxies: Option<Vec<String>>,
    /// `"replace"` or `"append"`.
    pub forwarded_headers: Option<String>,
    /// Pass request header names containing `_` upstream (else dropped).
    pub underscores_in_headers: Option<bool>,
    pub limits: Option<LimitsFile>,
    pub tls: Option<ListenerTlsFile>,
    pub paths: Option<PathsFile>,
    /// Client address rules for every request on the listener.
    pub ip_rules: Option<super::policy::IpRulesFile>,
}

/// `[listeners.paths]`: each value is one of a few words, checked in
/// validation so that a wrong one gets the list of allowed words.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsFile {
    /// `reject`, `keep` or `decode`.
    pub escaped_slashes: Option<String>,
    /// `reject` or `slash`.
    pub backslash: Option<String>,
    /// `reject`, `strip` or `keep`.
    pub matrix_parameters: Option<String>,
    /// `reject`, `strip` or `keep`.
    pub trailing_dots_and_spaces: Option<String>,
    /// `reject` or `keep`.
    pub double_encoding: Option<String>,
}

/// `[listeners.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    /// Required in effect: validation says so when it is empty.
    #[serde(default)]
    pub certificates: Vec<CertificateFile>,
    pub strict_sni: Option<bool>,
    /// `"1.2"` or `"1.3"`.
    pub min_version: Option<VersionText>,
    pub client_ca: Option<String>,
    pub client_cert_header: Option<String>,
    pub ticket_lifetime: Option<DurationText>,
    pub hsts: Option<String>,
}

/// `{ cert = "a.pem", key = "a.key", server_names = ["a.example.com"] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    pub cert: String,
    pub key: String,
    pub server_names: Option<Vec<String>>,
}

/// `client_cert = { cert = "c.pem", key = "c.key" }` (no server names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertFile {
    pub cert: String,
    pub key: String,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<String>,
    /// Listener names; absent = every listener.
    pub listeners: Option<Vec<String>>,
    pub max_request_body_bytes: Option<SizeText>,
    #[serde(rename = "match")]
    pub matcher: Option<MatchFile>,
    // Exactly one of the three actions; checked in validation so that a
    // route with none or several gets a message saying so.
    pub cluster: Option<String>,
    pub direct: Option<DirectFile>,
    pub redirect: Option<RedirectFile>,
    pub https_redirect: Option<HttpsRedirectFile>,
    // Policies (`policy.rs`).
    /// `"text"` or `"problem+json"`.
    pub error_format: Option<String>,
    pub ip_rules: Option<super::policy::IpRulesFile>,
    pub auth: Option<super::policy::AuthFile>,
}

/// `[routes.match]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    pub host: Option<String>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub path_case_insensitive: Option<bool>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// `direct = { status, body, headers }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectFile {
    pub status: Option<i64>,
    pub body: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// `redirect = { location, status, keep_path }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    pub location: String,
    pub status: Option<i64>,
    pub keep_path: Option<bool>,
}

/// `https_redirect = { status, port }`, both optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsRedirectFile {
    pub status: Option<i64>,
    pub port: Option<i64>,
}

/// `[[clusters]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: String,
    /// `ip:port` or `host:port` (resolved once, at load), or a table
    /// `{ address, weight }`.
    #[serde(default)]
    pub endpoints: Vec<EndpointFile>,
    pub connect_timeout: Option<DurationText>,
    pub response_timeout: Option<DurationText>,
    pub max_idle_per_endpoint: Option<i64>,
    pub idle_timeout: Option<DurationText>,
    /// Balancing (`config/balance.rs`).
    pub lb: Option<String>,
    pub hash_key: Option<HashKeyFile>,
    pub min_ring_size: Option<i64>,
    pub maglev_table_size: Option<i64>,
    pub slow_start: Option<DurationText>,
    /// Percent of healthy endpoints below which selection ignores health.
    pub healthy_panic_threshold: Option<i64>,
    pub tls: Option<ClusterTlsFile>,
    pub health_check: Option<super::health_check::HealthCheckFile>,
    pub outlier: Option<super::outlier::OutlierFile>,
}

/// `[clusters.tls]`; an empty table is TLS with every default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsFile {
    pub server_name: Option<String>,
    pub ca: Option<String>,
    pub verify: Option<bool>,
    pub client_cert: Option<ClientCertFile>,
}

/// A value written either as a bare TOML integer or as a string; which one
/// is allowed, and what the string may say, is decided in validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrText {
    Int(i64),
    Text(String),
}

/// A size: an integer number of bytes, or a string such as `"16KiB"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeText(pub IntOrText);

/// A duration: a string such as `"250ms"` or `"10s"`. A bare integer is
/// accepted by serde only so that validation can say "add a unit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub IntOrText);

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrTextVisitor("a size: a number of bytes or a string like \"16KiB\"")).map(SizeText)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrTextVisitor("a duration: a string like \"10s\" or \"250ms\"")).map(DurationText)
    }
}

/// A TLS version: the string `"1.2"`, or the TOML float `1.2` people write
/// by habit, kept as text for validation to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionText(pub String);

impl<'de> Deserialize<'de> for VersionText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(VersionVisitor).map(VersionText)
    }
}

struct VersionVisitor;

impl<'de> Visitor<'de> for VersionVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TLS version: \"1.2\" or \"1.3\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

struct IntOrTextVisitor(&'static str);

impl<'de> Visitor<'de> for IntOrTextVisitor {
    type Value = IntOrText;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrText, E> {
        Ok(IntOrText::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrText, E> {
        i64::try_from(v).map(IntOrText::Int).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrText, E> {
        Ok(IntOrText::Text(v.to_owned()))
    }
}
