//! The config's names (listeners, routes, clusters) as quoted, escaped
//! JSON strings, made once per generation on each shard: every line
//! names a listener, most a route and a cluster, and copying a prepared
//! string is cheaper than escaping the name again for every line.

use std::sync::Arc;

use super::escape;
use crate::config::Config;

pub struct JsonNames {
    /// The config these are the names of (kept alive, so the pointer
    /// comparison in `is_for` cannot meet a reused address).
    config: Arc<Config>,
    pub listeners: Vec<Box<[u8]>>,
    pub routes: Vec<Box<[u8]>>,
    pub clusters: Vec<Box<[u8]>>,
}

impl JsonNames {
    pub fn of(config: &Arc<Config>) -> JsonNames {
        let quoted = |name: &str| {
            let mut out = Vec::with_capacity(name.len() + 2);
            escape::json_str(&mut out, name.as_bytes());
            out.into_boxed_slice()
        };
        JsonNames {
            config: config.clone(),
            listeners: config.listeners.iter().map(|l| quoted(&l.name)).collect(),
            routes: config.routes.iter().map(|r| quoted(&r.name)).collect(),
            clusters: config.clusters.iter().map(|c| quoted(&c.name)).collect(),
        }
    }

    /// Whether these are `config`'s names.
    pub fn is_for(&self, config: &Arc<Config>) -> bool {
        Arc::ptr_eq(&self.config, config)
    }
}
