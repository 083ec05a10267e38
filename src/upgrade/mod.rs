//! Zero-downtime binary upgrade: a new shardgate process takes the
//! listening sockets of the running one over a Unix socket, serves, and
//! only then does the old one drain and exit. HAProxy's `-x` and Envoy's hot
//! restart work the same way.
//!
//! The old process offers its sockets when run with `--upgrade-socket
//! PATH` (`offer.rs`: a thread waits on that Unix socket). SIGUSR2 makes
//! it start the new process itself (`successor.rs`). A new process
//! started with `--upgrade-from PATH` (`take.rs`) connects, reads the
//! inventory (every proxy listener's sockets, one per old shard, and the
//! admin listener) and receives the descriptors themselves (`SCM_RIGHTS`,
//! `fd_passing.rs`). It serves every socket it takes, each with its accept
//! queue, whatever its own shard count: with fewer shards a shard accepts
//! on several sockets of a listener; with more, the extra shards add
//! sockets to the listener's `SO_REUSEPORT` group. Once every shard of the
//! new process serves it says so; the old process stops accepting, gives
//! up the upgrade socket's path (the new one may offer there next) and
//! drains (`shard::registry` for what a drain does to a connection).
//!
//! A new process that fails before it serves (bad config, a busy address,
//! a shard that cannot start) closes the Unix socket: the old process logs
//! the abort and keeps serving, ready for the next try.
//!
//! The wire: the old process writes `shardgate-upgrade 1 LEN\n`, then LEN
//! bytes of inventory, one line per socket, tab-separated:
//! `listener GROUP CONFIGURED BOUND NAME` or `admin 0 CONFIGURED BOUND -`,
//! then the descriptors in the same order (batches on one byte each). The
//! new process answers `serving\n`; the old one answers `draining\n` once
//! it has started its drain, or closes the socket if it will not.

pub mod fd_passing;
pub mod offer;
pub mod successor;
pub mod take;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use crate::shard::identity::ListenerId;

/// The first line's word and protocol version.
pub const MAGIC: &str = "shardgate-upgrade 1";
/// Largest inventory accepted (a line per socket; far more than any
/// machine's shards times listeners).
pub const MAX_INVENTORY_BYTES: usize = 1 << 20;

/// What a socket in the inventory is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// One of a proxy listener's sockets; `group` numbers the listener
    /// within the inventory.
    Listener {
        group: usize,
        name: String,
    },
    Admin,
}

/// One socket's entry: what it is, the address its config asked for, the
/// address it is bound to (port 0 resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub role: Role,
    pub configured: SocketAddr,
    pub bound: SocketAddr,
}

impl Entry {
    fn line(&self) -> String {
        let (kind, group, name) = match &self.role {
            Role::Listener { group, name } => ("listener", *group, name.replace(['\t', '\n', '\r'], " ")),
            Role::Admin => ("admin", 0, "-".to_string()),
        };
        format!("{kind}\t{group}\t{}\t{}\t{name}\n", self.configured, self.bound)
    }

    fn parse(line: &str) -> Result<Entry, String> {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        let [kind, group, configured, bound, name] = fields[..] else {
            return Err(format!("inventory line without five fields: {line:?}"));
        };
        let addr = |s: &str| s.parse::<SocketAddr>().map_err(|e| format!("inventory address {s:?}: {e}"));
        let role = match kind {
            "listener" => Role::Listener {
                group: group.parse().map_err(|_| format!("inventory group {group:?}"))?,
                name: name.to_string(),
            },
            "admin" => Role::Admin,
            other => return Err(format!("inventory socket of unknown kind {other:?}")),
        };
        Ok(Entry { role, configured: addr(configured)?, bound: addr(bound)? })
    }
}

/// The inventory as text (the body after the first line).
pub fn encode(entries: &[Entry]) -> String {
    entries.iter().map(Entry::line).collect()
}

pub fn decode(text: &str) -> Result<Vec<Entry>, String> {
    text.lines().filter(|l| !l.is_empty()).map(Entry::parse).collect()
}

/// The sockets a running process can hand over, kept by its main thread:
/// a duplicate descriptor of each (the shards own the originals). A reload
/// adds the sockets of listeners it binds and drops those of listeners it
/// removes, so a removed listener's socket really closes.
#[derive(Debug, Default)]
pub struct Inventory {
    held: Vec<(Option<ListenerId>, Entry, OwnedFd)>,
    groups: usize,
}

impl Inventory {
    /// A listener's sockets (one per shard).
    pub fn add_listener(
        &mut self,
        id: ListenerId,
        name: &str,
        configured: SocketAddr,
        bound: SocketAddr,
        sockets: &[&std::net::TcpListener],
    ) -> std::io::Result<()> {
        let group = self.groups;
        self.groups += 1;
        for socket in sockets {
            let fd = socket.as_fd().try_clone_to_owned()?;
            let role = Role::Listener { group, name: name.to_string() };
            self.held.push((Some(id), Entry { role, configured, bound }, fd));
        }
        Ok(())
    }

    pub fn add_admin(&mut self, configured: SocketAddr, socket: &std::net::TcpListener) -> std::io::Result<()> {
        let bound = socket.local_addr()?;
        let fd = socket.as_fd().try_clone_to_owned()?;
        self.held.push((None, Entry { role: Role::Admin, configured, bound }, fd));
        Ok(())
    }

    /// Takes in the sockets of `other` (a reload's new listeners).
    pub fn absorb(&mut self, other: Inventory) {
        for (id, mut entry, fd) in other.held {
            if let Role::Listener { group, .. } = &mut entry.role {
                *group += self.groups;
            }
            self.held.push((id, entry, fd));
        }
        self.groups += other.groups;
    }

    /// The process drains: every duplicate closes, so that a listening
    /// socket closes (connections are refused) as soon as its shard lets
    /// go of it, unless a new process holds it.
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// A reload removed the listener: its duplicates close here.
    pub fn remove_listener(&mut self, id: ListenerId) {
        self.held.retain(|(held, _, _)| *held != Some(id));
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Entry, &OwnedFd)> {
        self.held.iter().map(|(_, entry, fd)| (entry, fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_lines_round_trip() {
        let entries = vec![
            Entry {
                role: Role::Listener { group: 0, name: "main web".into() },
                configured: "127.0.0.1:0".parse().unwrap(),
                bound: "127.0.0.1:8080".parse().unwrap(),
            },
            Entry {
                role: Role::Admin,
                configured: "[::1]:9901".parse().unwrap(),
                bound: "[::1]:9901".parse().unwrap(),
            },
        ];
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        let odd = Entry { role: Role::Listener { group: 3, name: "a\tb\nc".into() }, ..entries[0].clone() };
        assert_eq!(decode(&encode(&[odd])).unwrap()[0].role, Role::Listener { group: 3, name: "a b c".into() });
    }

    #[test]
    fn a_bad_inventory_is_an_error() {
        for text in [
            "listener\t0\t127.0.0.1:0\n",
            "socket\t0\t127.0.0.1:1\t127.0.0.1:1\tx\n",
            "admin\t0\tnope\t127.0.0.1:1\t-\n",
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn removing_a_listener_drops_only_its_sockets() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut inventory = Inventory::default();
        let addr = a.local_addr().unwrap();
        inventory.add_listener(ListenerId(1), "a", addr, addr, &[&a, &a]).unwrap();
        inventory.add_listener(ListenerId(2), "b", b.local_addr().unwrap(), b.local_addr().unwrap(), &[&b]).unwrap();
        inventory.add_admin(b.local_addr().unwrap(), &b).unwrap();
        assert_eq!(inventory.entries().count(), 4);
        inventory.remove_listener(ListenerId(1));
        let left: Vec<Role> = inventory.entries().map(|(e, _)| e.role.clone()).collect();
        assert_eq!(left, vec![Role::Listener { group: 1, name: "b".into() }, Role::Admin]);
    }
}
