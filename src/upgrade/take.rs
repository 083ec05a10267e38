//! The new process's side of an upgrade (`--upgrade-from PATH`): connect
//! to the running process, receive its sockets, let the supervisor claim
//! them listener by listener, and once every shard serves, tell the old
//! process so (it then drains).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::offer::read_line;
use super::{decode, Entry, Role, MAGIC, MAX_INVENTORY_BYTES};

/// How long the new process waits on the old one at each step.
const OLD_PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// The sockets received, each until a listener of the new config claims it.
pub struct Inherited {
    sockets: Vec<(Entry, Option<OwnedFd>)>,
}

/// The open line to the old process: tell it when the new one serves.
pub struct Handover {
    stream: UnixStream,
}

/// Connects to the old process at `path` and receives its sockets.
pub fn take(path: &Path) -> Result<(Inherited, Handover), String> {
    let fail = |e: std::io::Error| format!("upgrade from {}: {e}", path.display());
    let mut stream = UnixStream::connect(path).map_err(fail)?;
    stream.set_read_timeout(Some(OLD_PROCESS_DEADLINE)).map_err(fail)?;
    let first = read_line(&mut stream).map_err(fail)?;
    let len = first
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.trim().parse::<usize>().ok())
        .filter(|&len| len <= MAX_INVENTORY_BYTES)
        .ok_or_else(|| format!("upgrade from {}: not a shardgate upgrade socket ({first:?})", path.display()))?;
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).map_err(fail)?;
    let entries =
        decode(&String::from_utf8_lossy(&text)).map_err(|e| format!("upgrade from {}: {e}", path.display()))?;
    let fds = super::fd_passing::recv_fds(&stream, entries.len()).map_err(fail)?;
    tracing::info!(sockets = fds.len(), from = %path.display(), "upgrade: received the listening sockets");
    let sockets = entries.into_iter().zip(fds).map(|(e, fd)| (e, Some(fd))).collect();
    Ok((Inherited { sockets }, Handover { stream }))
}

impl Inherited {
    /// Every socket of the old listener that `name` at `configured` takes
    /// over, and the address they are bound to. The same name at the same
    /// configured address first; else the same configured address; else
    /// (a fixed port) a listener bound where this one is configured.
    pub fn claim_listener(
        &mut self,
        name: &str,
        configured: SocketAddr,
    ) -> Option<(Vec<std::net::TcpListener>, SocketAddr)> {
        let open = |e: &Entry, fd: &Option<OwnedFd>| fd.is_some() && matches!(e.role, Role::Listener { .. });
        let rules: [&dyn Fn(&Entry) -> bool; 3] = [
            &|e| e.configured == configured && matches!(&e.role, Role::Listener { name: n, .. } if n == name),
            &|e| e.configured == configured,
            &|e| configured.port() != 0 && e.bound == configured,
        ];
        let group = rules.iter().find_map(|rule| {
            self.sockets.iter().find(|(e, fd)| open(e, fd) && rule(e)).map(|(e, _)| match &e.role {
                Role::Listener { group, .. } => *group,
                Role::Admin => unreachable!("only listener entries are open() here"),
            })
        })?;
        let mut bound = None;
        let mut taken = Vec::new();
        for (entry, fd) in &mut self.sockets {
            if matches!(entry.role, Role::Listener { group: g, .. } if g == group) {
                if let Some(fd) = fd.take() {
                    bound = Some(entry.bound);
                    taken.push(std::net::TcpListener::from(fd));
                }
            }
        }
        Some((taken, bound?))
    }

    /// The old admin listener, if it was at `configured`.
    pub fn claim_admin(&mut self, configured: SocketAddr) -> Option<std::net::TcpListener> {
        self.sockets
            .iter_mut()
            .find(|(e, fd)| {
                e.role == Role::Admin && fd.is_some() && (e.configured == configured || e.bound == configured)
            })
            .and_then(|(_, fd)| fd.take())
            .map(std::net::TcpListener::from)
    }

    /// Sockets no listener of the new config claimed (closed when this is
    /// dropped; the old process closes its own when it exits).
    pub fn unclaimed(&self) -> Vec<&Entry> {
        self.sockets.iter().filter(|(_, fd)| fd.is_some()).map(|(e, _)| e).collect()
    }
}

impl Handover {
    /// Every shard serves: the old process may drain. Returns once it
    /// acknowledged (its upgrade socket path is free then).
    pub fn serving(mut self) -> Result<(), String> {
        self.stream.write_all(b"serving\n").map_err(|e| format!("telling the old process: {e}"))?;
        match read_line(&mut self.stream) {
            Ok(line) if line == "draining" => Ok(()),
            Ok(line) => Err(format!("the old process answered {line:?}")),
            Err(e) => Err(format!("the old process did not acknowledge ({e}); it may still be serving too")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::identity::ListenerId;
    use std::sync::{Arc, Mutex};

    fn bind() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    }

    /// The whole exchange between two threads standing for the processes:
    /// sockets claimed by name and address, all of a listener's sockets to
    /// one claim, the admin socket, and the old side's drain hook called
    /// with the new side's pid.
    #[test]
    fn the_new_side_claims_what_the_old_side_offers() {
        let dir = std::env::temp_dir().join(format!(
            "shardgate-upgrade-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("upgrade.sock");
        let (main_a, main_b, other, admin) = (bind(), bind(), bind(), bind());
        let zero: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut inventory = super::super::Inventory::default();
        inventory.add_listener(ListenerId(0), "main", zero, main_a.local_addr().unwrap(), &[&main_a, &main_b]).unwrap();
        let fixed = other.local_addr().unwrap();
        inventory.add_listener(ListenerId(1), "other", fixed, fixed, &[&other]).unwrap();
        inventory.add_admin(zero, &admin).unwrap();
        let lifecycle = Arc::new(crate::admin::lifecycle::Lifecycle::new(1, None));
        let taken_by = Arc::new(Mutex::new(None));
        let record = taken_by.clone();
        super::super::offer::start(
            &path,
            Arc::new(Mutex::new(inventory)),
            lifecycle,
            Box::new(move |pid| {
                *record.lock().unwrap() = Some(pid);
                true
            }),
        )
        .unwrap();

        let (mut inherited, handover) = take(&path).unwrap();
        let (sockets, bound) = inherited.claim_listener("main", zero).unwrap();
        assert_eq!(sockets.len(), 2);
        assert_eq!(bound, main_a.local_addr().unwrap());
        assert!(inherited.claim_listener("main", zero).is_none(), "claimed once");
        let (renamed, _) = inherited.claim_listener("renamed", fixed).unwrap();
        assert_eq!(renamed[0].local_addr().unwrap(), fixed, "a fixed address is claimed under another name");
        assert!(inherited.claim_admin(zero).is_some());
        assert!(inherited.unclaimed().is_empty());
        handover.serving().unwrap();
        assert_eq!(*taken_by.lock().unwrap(), Some(std::process::id()));
        assert!(!path.exists(), "the old side gives up its path before it acknowledges");
        let _ = std::fs::remove_dir_all(dir);
    }
}
