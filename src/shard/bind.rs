//! The listening sockets at start, on the main thread: bound fresh, or
//! taken over from the old process in a binary upgrade (`crate::upgrade`),
//! and dealt out to the shards.
//!
//! Every socket of a listener is served. Socket `j` goes to shard
//! `j % shards`: with fewer shards than the old process had, a shard
//! accepts on several sockets of the listener (each socket keeps its own
//! accept queue, and connections queued in any of them must be accepted);
//! with more, sockets bound here join the listener's `SO_REUSEPORT` group.
//! A duplicate of each socket goes into the inventory a later upgrade
//! hands over.

use std::net::SocketAddr;

use super::identity::ListenerId;
use crate::config::Config;
use crate::listener::{bind_reuse_port, bind_shared, SocketOptions};
use crate::upgrade::take::Inherited;
use crate::upgrade::Inventory;

/// Each shard's sockets, and the address each listener is bound to (in
/// config order) for the `listening` lines.
pub struct Bound {
    pub per_shard: Vec<Vec<(ListenerId, std::net::TcpListener)>>,
    pub addrs: Vec<SocketAddr>,
    /// How many sockets of each listener were taken over.
    pub taken: Vec<usize>,
}

/// Binds (or takes over) every listener of `config` for `shards` shards.
pub fn bind_listeners(
    config: &Config,
    ids: &[ListenerId],
    shards: usize,
    mut inherited: Option<&mut Inherited>,
    inventory: &mut Inventory,
) -> Result<Bound, String> {
    let mut per_shard: Vec<Vec<(ListenerId, std::net::TcpListener)>> = (0..shards).map(|_| Vec::new()).collect();
    let mut addrs = Vec::with_capacity(config.listeners.len());
    let mut taken_counts = Vec::with_capacity(config.listeners.len());
    for (index, l) in config.listeners.iter().enumerate() {
        let options = SocketOptions { defer_accept: l.defer_accept, send_buffer_bytes: l.send_buffer_bytes };
        let fail = |e: std::io::Error| format!("listeners[{index}] ({}): cannot listen on {}: {e}", l.name, l.addr);
        let taken = inherited.as_deref_mut().and_then(|i| i.claim_listener(&l.name, l.addr));
        let (sockets, bound, taken) = match taken {
            Some((mut sockets, bound)) => {
                let taken = sockets.len();
                for s in &sockets {
                    s.set_nonblocking(true).map_err(fail)?;
                }
                if taken < shards {
                    let (more, _) = bind_reuse_port(bound, shards - taken, options).map_err(fail)?;
                    sockets.extend(more);
                }
                (sockets, bound, taken)
            }
            None => {
                let (sockets, bound) = bind_shared(l.addr, shards, options).map_err(fail)?;
                (sockets, bound, 0)
            }
        };
        let refs: Vec<&std::net::TcpListener> = sockets.iter().collect();
        inventory
            .add_listener(ids[index], &l.name, l.addr, bound, &refs)
            .map_err(|e| format!("listeners[{index}] ({}): cannot keep its sockets for an upgrade: {e}", l.name))?;
        for (j, socket) in sockets.into_iter().enumerate() {
            per_shard[j % shards].push((ids[index], socket));
        }
        addrs.push(bound);
        taken_counts.push(taken);
    }
    Ok(Bound { per_shard, addrs, taken: taken_counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(shards: usize) -> Config {
        let mut c = Config::quick_proxy("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1:1".parse().unwrap()]);
        c.server.shards = Some(shards);
        c
    }

    #[test]
    fn fresh_sockets_one_per_shard_and_kept_for_an_upgrade() {
        let mut inventory = Inventory::default();
        let bound = bind_listeners(&config(3), &[ListenerId(7)], 3, None, &mut inventory).unwrap();
        assert_eq!(bound.per_shard.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(bound.taken, vec![0]);
        assert_eq!(inventory.entries().count(), 3);
        let addr = bound.per_shard[0][0].1.local_addr().unwrap();
        assert!(bound.per_shard.iter().all(|s| s[0].1.local_addr().unwrap() == addr && s[0].0 == ListenerId(7)));
    }
}
