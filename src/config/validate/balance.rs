//! Validation of a cluster's balancing settings (`config/balance.rs`):
//! endpoint weights, `lb`, `hash_key`, `min_ring_size`,
//! `maglev_table_size`, `slow_start`. Part of `validate.rs` (the `Check`
//! pass). A key that only one algorithm reads is refused with another
//! algorithm, rather than silently ignored.

use super::super::balance::{
    check_key_name, default_maglev_table_size, is_prime, Balance, EndpointFile, HashKey, HashKeyFile, LbPolicy,
    DEFAULT_MIN_RING_SIZE, DEFAULT_WEIGHT, MAGLEV_ENTRIES_PER_ENDPOINT, MAX_MAGLEV_TABLE_SIZE, MAX_RING_SIZE,
    MAX_WEIGHT, MIN_SLOW_START,
};
use super::super::bounds::check_count;
use super::super::file::ClusterFile;
use super::super::spans::FieldPath;
use super::Check;

impl Check<'_> {
    /// `weight = N` of `endpoints[j]` (`path`), 1 when not written.
    pub(super) fn endpoint_weight(&mut self, path: &FieldPath, e: &EndpointFile) -> u32 {
        let Some(w) = e.weight() else { return DEFAULT_WEIGHT };
        let range = check_count(w, 1, MAX_WEIGHT as i64);
        self.ok(&path.key("weight"), range).map_or(DEFAULT_WEIGHT, |w| w as u32)
    }

    /// The cluster's balancing settings; `endpoints` is how many it has.
    pub(super) fn balance(&mut self, path: &FieldPath, c: &ClusterFile, endpoints: usize) -> Balance {
        let mut b = Balance::default();
        let lb_path = path.key("lb");
        if let Some(text) = &c.lb {
            b.policy = self.ok(&lb_path, LbPolicy::parse(text)).unwrap_or_default();
        }
        let policy = b.policy;
        let only_with = |key: &str, wanted: LbPolicy| {
            format!("{key} is a setting of lb = {:?}; this cluster's lb is {:?}", wanted.name(), policy.name())
        };

        let key_path = path.key("hash_key");
        match (&c.hash_key, policy.hashes()) {
            (Some(k), true) => b.hash_key = self.hash_key(&key_path, k),
            (Some(_), false) => {
                let m = format!(
                    "hash_key is read only by lb = \"ring_hash\" or \"maglev\"; this cluster's lb is {:?}",
                    policy.name()
                );
                self.error(&key_path, m);
            }
            (None, true) if c.lb.is_some() => {
                let m = format!(
                    "lb = {:?} needs a hash_key: \"client_address\", \"path\", {{ header = \"name\" }}, \
                     {{ cookie = \"name\" }} or {{ query = \"name\" }}",
                    policy.name()
                );
                self.error(&lb_path, m);
            }
            (None, _) => {}
        }

        if let Some(n) = c.min_ring_size {
            let p = path.key("min_ring_size");
            if policy != LbPolicy::RingHash {
                self.error(&p, only_with("min_ring_size", LbPolicy::RingHash));
            } else {
                b.min_ring_size = self.count(&p, n, 1, MAX_RING_SIZE).unwrap_or(DEFAULT_MIN_RING_SIZE);
            }
        }

        b.maglev_table_size = default_maglev_table_size(endpoints);
        if let Some(n) = c.maglev_table_size {
            let p = path.key("maglev_table_size");
            let least = endpoints.max(1) * MAGLEV_ENTRIES_PER_ENDPOINT;
            if policy != LbPolicy::Maglev {
                self.error(&p, only_with("maglev_table_size", LbPolicy::Maglev));
            } else if let Some(n) = self.count(&p, n, least, MAX_MAGLEV_TABLE_SIZE) {
                if is_prime(n) {
                    b.maglev_table_size = n;
                } else {
                    let next = (n..).find(|&m| is_prime(m)).unwrap_or(n);
                    self.error(&p, format!("{n} is not a prime (the Maglev table needs one): {next} is the next"));
                }
            }
        }

        if let Some(window) = &c.slow_start {
            let p = path.key("slow_start");
            if policy.hashes() {
                let m = format!(
                    "slow_start applies to round_robin, least_request and random; this cluster's lb is {:?} \
                     (a hash keeps each key on its endpoint)",
                    policy.name()
                );
                self.error(&p, m);
            } else {
                b.slow_start = self.duration(&p, window, MIN_SLOW_START);
            }
        }
        b
    }

    fn hash_key(&mut self, path: &FieldPath, k: &HashKeyFile) -> Option<HashKey> {
        match k {
            HashKeyFile::Word(w) if w == "client_address" => Some(HashKey::ClientAddress),
            HashKeyFile::Word(w) if w == "path" => Some(HashKey::Path),
            HashKeyFile::Word(w) => {
                let m = format!(
                    "unknown hash key {w:?}: expected \"client_address\", \"path\", {{ header = \"name\" }}, \
                     {{ cookie = \"name\" }} or {{ query = \"name\" }}"
                );
                self.error(path, m);
                None
            }
            HashKeyFile::Table(t) => {
                let set: Vec<(&str, &String)> = [("header", &t.header), ("cookie", &t.cookie), ("query", &t.query)]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_ref()?)))
                    .collect();
                let [(kind, name)] = set[..] else {
                    self.error(path, "set exactly one of header, cookie or query");
                    return None;
                };
                self.ok(&path.key(kind), check_key_name(name))?;
                Some(match kind {
                    "header" => HashKey::Header(name.to_ascii_lowercase()),
                    "cookie" => HashKey::Cookie(name.clone()),
                    _ => HashKey::Query(name.clone()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, HashKey, LbPolicy};

    fn cluster(extra: &str) -> String {
        format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n[[routes]]\ncluster = \"c\"\n\n\
             [[clusters]]\nname = \"c\"\n{extra}"
        )
    }

    fn error_of(extra: &str) -> String {
        Config::parse(&cluster(extra), "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn endpoint_tables_and_plain_addresses_mix_and_weights_default_to_1() {
        let text = cluster(
            "endpoints = [\"127.0.0.1:8080\", { address = \"127.0.0.1:8081\", weight = 3 }]\nlb = \"least_request\"\n\
             slow_start = \"30s\"\n",
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        let cl = &c.clusters[0];
        assert_eq!(cl.endpoints.len(), 2);
        assert_eq!(cl.weights, [1, 3]);
        assert_eq!(cl.balance.policy, LbPolicy::LeastRequest);
        assert_eq!(cl.balance.slow_start, Some(std::time::Duration::from_secs(30)));
    }

    #[test]
    fn hash_keys_of_every_kind_parse() {
        let cases: &[(&str, HashKey)] = &[
            ("{ header = \"X-User\" }", HashKey::Header("x-user".into())),
            ("{ cookie = \"sid\" }", HashKey::Cookie("sid".into())),
            ("{ query = \"user\" }", HashKey::Query("user".into())),
            ("\"client_address\"", HashKey::ClientAddress),
            ("\"path\"", HashKey::Path),
        ];
        for (written, expected) in cases {
            let text = cluster(&format!("endpoints = [\"127.0.0.1:1\"]\nlb = \"maglev\"\nhash_key = {written}\n"));
            let c = Config::parse(&text, "t.toml").unwrap();
            assert_eq!(c.clusters[0].balance.hash_key.as_ref(), Some(expected), "{written}");
        }
    }

    #[test]
    fn bad_balancing_settings_are_refused_naming_field_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "endpoints = [{ address = \"127.0.0.1:1\", weight = 0 }]\n",
                "clusters[0].endpoints[0].weight: 0 is out of range: allowed 1 to 1000 (line 10)",
            ),
            (
                "endpoints = [{ address = \"127.0.0.1:1\", weight = 1001 }]\n",
                "clusters[0].endpoints[0].weight: 1001 is out of range: allowed 1 to 1000 (line 10)",
            ),
            ("endpoints = [\"127.0.0.1:1\"]\nlb = \"leastconn\"\n", "clusters[0].lb: unknown balancing algorithm"),
            ("endpoints = [\"127.0.0.1:1\"]\nlb = \"ring_hash\"\n", "clusters[0].lb: lb = \"ring_hash\" needs a hash_key"),
            (
                "endpoints = [\"127.0.0.1:1\"]\nhash_key = \"path\"\n",
                "clusters[0].hash_key: hash_key is read only by lb = \"ring_hash\" or \"maglev\"",
            ),
            (
                "endpoints = [\"127.0.0.1:1\"]\nlb = \"maglev\"\nhash_key = { header = \"x\", cookie = \"y\" }\n",
                "clusters[0].hash_key: set exactly one of header, cookie or query (line 12)",
            ),
            (
                "endpoints = [\"127.0.0.1:1\"]\nlb = \"maglev\"\nhash_key = { header = \"x y\" }\n",
                "clusters[0].hash_key.header: \"x y\" is not a valid name",
            ),
            (
                "endpoints = [\"127.0.0.1:1\"]\nlb = \"maglev\"\nhash_key = \"path\"\nmaglev_table_size = 65536\n",
                "clusters[0].maglev_table_size: 65536 is not a prime (the Maglev table needs one): 65537 is the next (line 13)",
            ),
            (
                "endpoints = [\"127.0.0.1:1\"]\nmin_ring_size = 10\n",
                "clusters[0].min_ring_size: min_ring_size is a setting of lb = \"ring_hash\"",
            ),
            (
                "endpoints = [\"127.0.0.1:1\"]\nlb = \"ring_hash\"\nhash_key = \"path\"\nslow_start = \"10s\"\n",
                "clusters[0].slow_start: slow_start applies to round_robin, least_request and random",
            ),
        ];
        for (extra, expected) in cases {
            let e = error_of(extra);
            assert!(e.contains(expected), "{extra}\nwanted: {expected}\ngot: {e}");
        }
    }
}
