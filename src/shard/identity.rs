//! Stable identities that outlive a config generation: which endpoint and
//! which listener a thing belongs to, across reloads.
//!
//! Per-endpoint state on a shard (the keep-alive pool today; health and
//! counters later) is a vector indexed by an [`EndpointId`] slot. A slot
//! belongs to one (cluster name, endpoint address as written) for the
//! life of the process, so a reload that keeps an endpoint keeps its slot,
//! and with it the shard's pooled connections. A slot is never given to
//! another endpoint: an endpoint removed and added back gets its old slot.
//!
//! A slot also carries the version of its connection settings (resolved
//! address, the cluster's TLS settings): a reload that changes them bumps
//! the version, and a pooled connection made under another version is
//! never reused (it would speak to the old address or with the old TLS
//! settings).
//!
//! Listeners are identified by (name, address as written): a reload that
//! keeps both keeps the listening sockets.
//!
//! Lives on the main thread (the supervisor), which allocates ids while it
//! builds a generation; shards only read the ids a generation carries.

use std::collections::HashMap;
use std::net::SocketAddr;

pub use crate::config::fingerprint::fingerprint;
use crate::config::Cluster;

/// An endpoint's stable slot, and the version of its connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointId {
    slot: u32,
    settings: u32,
}

impl EndpointId {
    /// Index of the endpoint's per-shard state (pool, later health).
    #[inline]
    pub fn slot(self) -> usize {
        self.slot as usize
    }

    /// Changes whenever the endpoint's connection settings change.
    #[inline]
    pub fn settings(self) -> u32 {
        self.settings
    }
}

/// A listener's stable id: its sockets are kept across reloads that keep
/// the listener's name and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u32);

/// The main thread's allocation of endpoint slots and listener ids.
/// Cloned before a reload's build and committed only when the reload
/// succeeds.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    /// (cluster name, endpoint as written) -> slot.
    endpoints: HashMap<(String, String), u32>,
    /// Per slot: (fingerprint of its connection settings, version).
    settings: Vec<(u64, u32)>,
    /// (listener name, address as written) -> id.
    listeners: HashMap<(String, SocketAddr), u32>,
}

impl Identities {
    /// The ids of `cluster`'s endpoints, in its endpoint order.
    /// `tls_fingerprint` is a hash of the cluster's TLS settings (0 for
    /// plain text).
    pub fn endpoints(&mut self, cluster: &Cluster, tls_fingerprint: u64) -> Vec<EndpointId> {
        (0..cluster.endpoints.len())
            .map(|i| {
                let written = format!("{}:{}", cluster.endpoint_hosts[i], cluster.endpoints[i].port());
                let next = self.endpoints.len() as u32;
                let slot = *self.endpoints.entry((cluster.name.clone(), written)).or_insert(next);
                let fingerprint = fingerprint(&(cluster.endpoints[i], tls_fingerprint));
                if slot as usize == self.settings.len() {
                    self.settings.push((fingerprint, 0));
                }
                let entry = &mut self.settings[slot as usize];
                if entry.0 != fingerprint {
                    *entry = (fingerprint, entry.1.wrapping_add(1));
                }
                EndpointId { slot, settings: entry.1 }
            })
            .collect()
    }

    /// The id of the listener `name` on `addr` (as written in the config).
    pub fn listener(&mut self, name: &str, addr: SocketAddr) -> ListenerId {
        let next = self.listeners.len() as u32;
        ListenerId(*self.listeners.entry((name.to_owned(), addr)).or_insert(next))
    }

    /// Endpoint slots allocated so far.
    pub fn endpoint_slots(&self) -> usize {
        self.settings.len()
    }
}

/// Ids in the given slots (settings 0), for unit tests elsewhere.
#[cfg(test)]
pub(crate) fn test_ids(slots: &[u32]) -> Vec<EndpointId> {
    slots.iter().map(|&slot| EndpointId { slot, settings: 0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cluster(text: &str) -> Config {
        let toml = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n[[clusters]]\nname = \"c\"\nendpoints = [{text}]\n"
        );
        Config::parse(&toml, "t.toml").unwrap()
    }

    #[test]
    fn an_endpoint_keeps_its_slot_whatever_its_position() {
        let mut ids = Identities::default();
        let first = ids.endpoints(&cluster("\"127.0.0.1:1\", \"127.0.0.1:2\"").clusters[0], 0);
        let second = ids.endpoints(&cluster("\"127.0.0.1:3\", \"127.0.0.1:2\"").clusters[0], 0);
        assert_eq!(first[1], second[1], "127.0.0.1:2 moved from position 1 to 1 and keeps its id");
        assert_ne!(second[0].slot(), first[0].slot(), "a new endpoint gets a new slot");
        let third = ids.endpoints(&cluster("\"127.0.0.1:2\", \"127.0.0.1:1\"").clusters[0], 0);
        assert_eq!(third[0], first[1]);
        assert_eq!(third[1], first[0], "an endpoint removed and added back gets its old slot");
        assert_eq!(ids.endpoint_slots(), 3);
    }

    #[test]
    fn changed_connection_settings_bump_the_version_not_the_slot() {
        let mut ids = Identities::default();
        let c = cluster("\"127.0.0.1:1\"");
        let plain = ids.endpoints(&c.clusters[0], 0)[0];
        let tls = ids.endpoints(&c.clusters[0], 7)[0];
        assert_eq!(plain.slot(), tls.slot());
        assert_ne!(plain.settings(), tls.settings());
        assert_eq!(ids.endpoints(&c.clusters[0], 7)[0], tls, "unchanged settings keep the version");
    }

    #[test]
    fn listeners_are_named_by_name_and_address() {
        let mut ids = Identities::default();
        let a = ids.listener("a", "127.0.0.1:80".parse().unwrap());
        assert_eq!(ids.listener("a", "127.0.0.1:80".parse().unwrap()), a);
        assert_ne!(ids.listener("a", "127.0.0.1:81".parse().unwrap()), a);
        assert_ne!(ids.listener("b", "127.0.0.1:80".parse().unwrap()), a);
    }
}
