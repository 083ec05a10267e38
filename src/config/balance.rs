//! How a cluster spreads its requests over its endpoints, as configured:
//! the balancing algorithm (`lb`), the request key of the hashing ones
//! (`hash_key`), their table sizes, endpoint weights and `slow_start`.
//!
//! Both shapes live here: the file shape read by serde (an endpoint is a
//! plain `"host:port"` or a table `{ address, weight }`; a hash key is a
//! word or a one-key table) and the runtime shape [`Balance`] that
//! `validate/balance.rs` builds from it and `upstream/balance/` acts on.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// An endpoint's weight when none is written.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Largest weight (nginx's `weight=N` has no cap; Envoy's is 128 per
/// endpoint in a locality; 1000 keeps smooth round robin's sums small).
pub const MAX_WEIGHT: u32 = 1000;
/// Envoy's `minimum_ring_size` default.
pub const DEFAULT_MIN_RING_SIZE: usize = 1024;
/// Envoy's `maximum_ring_size` default: the ring never grows past this.
pub const MAX_RING_SIZE: usize = 8 * 1024 * 1024;
/// Envoy's maglev `table_size` default (a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: usize = 65_537;
/// Envoy's largest maglev table (a prime).
pub const MAX_MAGLEV_TABLE_SIZE: usize = 5_000_011;
/// The Maglev paper's rule: at least 100 table entries per endpoint, so
/// that each endpoint's share is within ~1 % of its weight.
pub const MAGLEV_ENTRIES_PER_ENDPOINT: usize = 100;
/// Shortest `slow_start` window.
pub const MIN_SLOW_START: Duration = Duration::from_millis(100);

/// `lb = …`: which algorithm picks the endpoint of each try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

impl LbPolicy {
    pub const ALL: [LbPolicy; 5] =
        [LbPolicy::RoundRobin, LbPolicy::LeastRequest, LbPolicy::Random, LbPolicy::RingHash, LbPolicy::Maglev];

    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::LeastRequest => "least_request",
            LbPolicy::Random => "random",
            LbPolicy::RingHash => "ring_hash",
            LbPolicy::Maglev => "maglev",
        }
    }

    pub fn parse(text: &str) -> Result<LbPolicy, String> {
        LbPolicy::ALL.into_iter().find(|p| p.name() == text).ok_or_else(|| {
            let names: Vec<&str> = LbPolicy::ALL.iter().map(|p| p.name()).collect();
            format!("unknown balancing algorithm {text:?}: expected one of {}", names.join(", "))
        })
    }

    /// Whether it picks by a hash of the request key (and so needs `hash_key`).
    pub fn hashes(self) -> bool {
        matches!(self, LbPolicy::RingHash | LbPolicy::Maglev)
    }
}

/// `hash_key = …`: what of a request the hashing algorithms hash. A
/// request without it is balanced round robin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The first header of that name (lowercase), its value as sent.
    Header(String),
    /// The value of the first cookie of that name in the Cookie headers.
    Cookie(String),
    /// The client address (after `trusted_proxies`), never absent.
    ClientAddress,
    /// The normalised path, without the query.
    Path,
    /// The raw value (not percent-decoded) of the first query parameter
    /// of that name.
    Query(String),
}

impl fmt::Display for HashKey {
    /// As the summary of `shardgate check` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashKey::Header(n) => write!(f, "header:{n}"),
            HashKey::Cookie(n) => write!(f, "cookie:{n}"),
            HashKey::ClientAddress => f.write_str("client_address"),
            HashKey::Path => f.write_str("path"),
            HashKey::Query(n) => write!(f, "query:{n}"),
        }
    }
}

/// A cluster's balancing settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub policy: LbPolicy,
    /// `Some` exactly when `policy.hashes()`.
    pub hash_key: Option<HashKey>,
    /// ring_hash: the least number of points on the ring.
    pub min_ring_size: usize,
    /// maglev: entries in the lookup table (a prime).
    pub maglev_table_size: usize,
    /// A new or recovered endpoint's weight ramps up over this window
    /// (round_robin, least_request, random).
    pub slow_start: Option<Duration>,
}

impl Default for Balance {
    fn default() -> Balance {
        Balance {
            policy: LbPolicy::RoundRobin,
            hash_key: None,
            min_ring_size: DEFAULT_MIN_RING_SIZE,
            maglev_table_size: DEFAULT_MAGLEV_TABLE_SIZE,
            slow_start: None,
        }
    }
}

impl super::Cluster {
    /// The balancing settings that differ from the defaults, as the
    /// summary of `shardgate check` shows them (` lb=maglev hash_key=…`).
    pub(super) fn balance_summary(&self) -> String {
        let b = &self.balance;
        let mut out = String::new();
        if self.weights.iter().any(|&w| w != DEFAULT_WEIGHT) {
            let weights: Vec<String> = self.weights.iter().map(u32::to_string).collect();
            out += &format!(" weights={}", weights.join(","));
        }
        if b.policy != LbPolicy::RoundRobin {
            out += &format!(" lb={}", b.policy.name());
        }
        if let Some(key) = &b.hash_key {
            out += &format!(" hash_key={key}");
        }
        if b.policy == LbPolicy::RingHash {
            out += &format!(" min_ring_size={}", b.min_ring_size);
        }
        if b.policy == LbPolicy::Maglev {
            out += &format!(" maglev_table_size={}", b.maglev_table_size);
        }
        if let Some(window) = b.slow_start {
            out += &format!(" slow_start={}", super::units::fmt_duration(window));
        }
        out
    }
}

/// The default maglev table size for `endpoints`: 65537, or the first
/// prime with 100 entries per endpoint when that is larger.
pub fn default_maglev_table_size(endpoints: usize) -> usize {
    let least = endpoints.saturating_mul(MAGLEV_ENTRIES_PER_ENDPOINT);
    if least <= DEFAULT_MAGLEV_TABLE_SIZE {
        return DEFAULT_MAGLEV_TABLE_SIZE;
    }
    (least..).find(|&n| is_prime(n)).unwrap_or(least)
}

/// Trial division: table sizes are at most a few million.
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// One element of `endpoints = [...]`: `"host:port"` or
/// `{ address = "host:port", weight = 3 }`.
#[derive(Debug, Clone)]
pub enum EndpointFile {
    Address(String),
    Table(EndpointTableFile),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTableFile {
    pub address: String,
    pub weight: Option<i64>,
}

impl EndpointFile {
    /// The address as written.
    pub fn address(&self) -> &str {
        match self {
            EndpointFile::Address(a) => a,
            EndpointFile::Table(t) => &t.address,
        }
    }

    pub fn weight(&self) -> Option<i64> {
        match self {
            EndpointFile::Address(_) => None,
            EndpointFile::Table(t) => t.weight,
        }
    }
}

impl<'de> Deserialize<'de> for EndpointFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EndpointVisitor)
    }
}

struct EndpointVisitor;

impl<'de> Visitor<'de> for EndpointVisitor {
    type Value = EndpointFile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an endpoint: \"host:port\" or a table { address = \"host:port\", weight = N }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<EndpointFile, E> {
        Ok(EndpointFile::Address(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointFile, A::Error> {
        EndpointTableFile::deserialize(de::value::MapAccessDeserializer::new(map)).map(EndpointFile::Table)
    }
}

/// `hash_key = "client_address" | "path"` or `{ header | cookie | query = "name" }`.
#[derive(Debug, Clone)]
pub enum HashKeyFile {
    Word(String),
    Table(HashKeyTableFile),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashKeyTableFile {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
}

impl<'de> Deserialize<'de> for HashKeyFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HashKeyVisitor)
    }
}

struct HashKeyVisitor;

impl<'de> Visitor<'de> for HashKeyVisitor {
    type Value = HashKeyFile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a hash key: \"client_address\", \"path\", or a table { header = \"name\" }, { cookie = \"name\" } or { query = \"name\" }",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HashKeyFile, E> {
        Ok(HashKeyFile::Word(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HashKeyFile, A::Error> {
        HashKeyTableFile::deserialize(de::value::MapAccessDeserializer::new(map)).map(HashKeyFile::Table)
    }
}

/// A header, cookie or query parameter name: non-empty token characters
/// (RFC 9110 §5.6.2), so it can only be matched, never mis-parsed.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if let Some(b) = name.bytes().find(|&b| !token(b)) {
        return Err(format!("{name:?} is not a valid name: {:?} is not allowed in it", b as char));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maglev_default_size_is_65537_or_the_next_prime_with_100_entries_per_endpoint() {
        assert_eq!(default_maglev_table_size(3), 65_537);
        assert_eq!(default_maglev_table_size(655), 65_537);
        let big = default_maglev_table_size(700);
        assert!(big >= 70_000 && is_prime(big), "{big}");
        assert!(is_prime(65_537) && is_prime(MAX_MAGLEV_TABLE_SIZE) && !is_prime(65_536));
    }

    #[test]
    fn check_summary_shows_balancing_settings() {
        let text = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
                    [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 3 }]\n\
                    lb = \"least_request\"\nslow_start = \"30s\"\n";
        let summary = crate::config::Config::parse(text, "t.toml").unwrap().summary();
        assert!(
            summary.contains("endpoints=127.0.0.1:1,127.0.0.1:2 weights=1,3 lb=least_request slow_start=30s"),
            "{summary}"
        );
    }

    #[test]
    fn policy_names_round_trip_and_unknown_names_list_the_choices() {
        for p in LbPolicy::ALL {
            assert_eq!(LbPolicy::parse(p.name()), Ok(p));
        }
        let e = LbPolicy::parse("leastconn").unwrap_err();
        assert!(e.contains("round_robin, least_request, random, ring_hash, maglev"), "{e}");
    }
}
