//! Config generations: a validated [`Config`] plus everything built from
//! it (TLS server and client configs, the endpoint and listener id
//! tables), built once on the main thread and shared by every shard as an
//! `Arc<Generation>`.
//!
//! A shard holds its current generation in a [`ShardGeneration`] (the
//! shared part plus the shard's own per-generation state: round-robin
//! positions). A request takes the connection's generation once, when its
//! head is in, and uses only that one until its response is done; a
//! connection moves to the shard's newest generation at its next request.
//! A reload (`supervisor.rs`) builds a new generation here and sends it to
//! every shard, which swaps it in between requests (`Shard::install`).

use std::sync::Arc;

use super::identity::{fingerprint, EndpointId, Identities, ListenerId};
use crate::config::Config;
use crate::tls::sni::{SniResolver, SniTable};
use crate::upstream::balance::{Balancer, HashTable, TableInputs};
use crate::upstream::health::ActiveHealth;
use crate::upstream::stream::UpstreamTls;

/// One config and what is built from it; immutable once built.
pub struct Generation {
    /// 1 for the config the process started with, +1 per reload.
    pub number: u64,
    pub config: Arc<Config>,
    pub tls: TlsConfigs,
    /// Per cluster, per endpoint (config order): its stable id.
    pub endpoints: Vec<Vec<EndpointId>>,
    /// Per listener (config order): its stable id.
    pub listeners: Vec<ListenerId>,
    /// Per cluster: the ring or Maglev table of a hashing cluster, with
    /// what it was built from (kept from the previous generation when
    /// that is unchanged).
    pub hash_tables: Vec<Option<(TableInputs, HashTable)>>,
    /// Active health per endpoint slot, written by the prober thread
    /// (`upstream/health/prober.rs`); starts from the previous
    /// generation's, so a reload keeps what the probes found.
    pub health: ActiveHealth,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation").field("number", &self.number).finish_non_exhaustive()
    }
}

/// TLS configs, shared by every shard: one ticket key set per listener, so
/// a session resumes on whichever shard accepts the resumed connection.
#[derive(Clone, Default)]
pub struct TlsConfigs {
    /// Per listener (index as in `Config::listeners`).
    pub listeners: Vec<Option<Arc<rustls::ServerConfig>>>,
    /// The certificate resolver inside each TLS listener's config.
    pub resolvers: Vec<Option<Arc<SniResolver>>>,
    /// Per cluster.
    pub clusters: Vec<Option<Arc<UpstreamTls>>>,
}

/// Certificate tables read for listeners whose TLS config is kept from
/// the previous generation: stored into their resolvers only when the
/// whole reload succeeds.
pub type PendingCertificates = Vec<(usize, Arc<SniResolver>, SniTable)>;

impl Generation {
    /// Builds generation `number` from `config`. Listeners whose TLS
    /// settings equal those of the same listener in `previous` keep its
    /// rustls config (and so its session ticket keys: sessions resume
    /// across the reload); their certificate files are read again into
    /// `PendingCertificates`. Everything else is built fresh.
    pub fn build(
        number: u64,
        config: Arc<Config>,
        ids: &mut Identities,
        previous: Option<&Generation>,
    ) -> Result<(Generation, PendingCertificates), String> {
        let listeners: Vec<ListenerId> = config.listeners.iter().map(|l| ids.listener(&l.name, l.addr)).collect();
        let mut tls = TlsConfigs::default();
        let mut pending = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let Some(t) = &l.tls else {
                tls.listeners.push(None);
                tls.resolvers.push(None);
                continue;
            };
            let kept = previous.and_then(|p| {
                let j = p.listener_index(listeners[i])?;
                if p.config.listeners[j].tls.as_ref() != Some(t) {
                    return None;
                }
                Some((p.tls.listeners[j].clone()?, p.tls.resolvers[j].clone()?))
            });
            match kept {
                Some((server, resolver)) => {
                    let table = SniTable::load(&t.certificates, t.strict_sni)
                        .map_err(|e| format!("listeners[{i}] ({}): certificate reload failed: {e}", l.name))?;
                    pending.push((i, resolver.clone(), table));
                    tls.listeners.push(Some(server));
                    tls.resolvers.push(Some(resolver));
                }
                None => {
                    let (server, resolver) = crate::tls::server_config::build_server_config(t)
                        .map_err(|e| format!("listeners[{i}] ({}): {e}", l.name))?;
                    tls.listeners.push(Some(server));
                    tls.resolvers.push(Some(resolver));
                }
            }
        }
        let mut endpoints = Vec::with_capacity(config.clusters.len());
        for (i, c) in config.clusters.iter().enumerate() {
            let tls_fingerprint = c.tls.as_ref().map_or(0, |t| fingerprint(&format!("{t:?}")));
            endpoints.push(ids.endpoints(c, tls_fingerprint));
            let Some(t) = &c.tls else {
                tls.clusters.push(None);
                continue;
            };
            let client = crate::tls::client_config::build_client_config(t)
                .map_err(|e| format!("clusters[{i}] ({}): {e}", c.name))?;
            let server_names = c
                .endpoint_hosts
                .iter()
                .map(|host| crate::tls::client_config::server_name(t, host))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("clusters[{i}] ({}): {e}", c.name))?;
            tls.clusters.push(Some(Arc::new(UpstreamTls { config: client, server_names })));
        }
        let hash_tables = config
            .clusters
            .iter()
            .map(|c| {
                let inputs = TableInputs::of(c)?;
                let kept = previous.and_then(|p| {
                    let j = p.config.clusters.iter().position(|o| o.name == c.name)?;
                    match &p.hash_tables[j] {
                        Some((old, table)) if *old == inputs => Some(table.clone()),
                        _ => None,
                    }
                });
                let table = kept.unwrap_or_else(|| inputs.build());
                Some((inputs, table))
            })
            .collect();
        let slots = endpoints.iter().flatten().map(|id| id.slot() + 1).max().unwrap_or(0);
        let health = ActiveHealth::new(slots, previous.map(|p| &p.health));
        Ok((Generation { number, config, tls, endpoints, listeners, hash_tables, health }, pending))
    }

    /// Where the listener `id` is in this generation's config, if it is in it.
    pub fn listener_index(&self, id: ListenerId) -> Option<usize> {
        self.listeners.iter().position(|&l| l == id)
    }
}

/// A shard's view of a generation: the shared part and the shard's own
/// state that belongs to it. `!Send`; a request holds it by `Rc`.
pub struct ShardGeneration {
    pub shared: Arc<Generation>,
    /// Per cluster: its balancing algorithm's state (round-robin
    /// positions, a generator), carried over by cluster name from the
    /// previous generation.
    pub balancers: Vec<Balancer>,
}

impl ShardGeneration {
    pub fn new(shard: usize, shared: Arc<Generation>, previous: Option<&ShardGeneration>) -> ShardGeneration {
        let balancers = shared
            .config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let carried = previous.and_then(|p| {
                    let j = p.shared.config.clusters.iter().position(|o| o.name == c.name)?;
                    Some((&p.balancers[j], &p.shared.endpoints[j][..]))
                });
                let table = shared.hash_tables[i].as_ref().map(|(_, t)| t);
                Balancer::build(shard, i, c, &shared.endpoints[i], table, carried)
            })
            .collect();
        ShardGeneration { shared, balancers }
    }

    #[inline]
    pub fn config(&self) -> &Arc<Config> {
        &self.shared.config
    }
}
