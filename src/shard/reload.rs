//! Hot reload, on the main thread (SIGHUP or the admin `POST /reload`):
//! read and validate the config again, build the next generation, bind the
//! listeners it adds, and only when all of that succeeded hand it to every
//! shard. A file that fails any step changes nothing: the running
//! generation keeps serving and every error is returned (and logged).
//!
//! What cannot change while running (the shards' threads and runtimes,
//! the admin listener) refuses the reload with an error naming the field;
//! a kept listener's socket options (set when its sockets were bound) are
//! kept, with a warning.

use std::collections::HashMap;
use std::sync::Arc;

use super::generation::Generation;
use super::identity::{Identities, ListenerId};
use super::Control;
use crate::config::{Config, ConfigErrors};
use crate::listener::{bind_shared, SocketOptions};

/// How long a reload waits for every shard to install the new generation
/// before it answers (a shard installs it between two turns of its loop).
const INSTALL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the config again: the file with the command line's overrides, or
/// the command line's config for `shardgate proxy`.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, ConfigErrors> + Send>;

/// What the main thread keeps about the running generation.
pub struct Running {
    pub generation: Arc<Generation>,
    pub ids: Identities,
    pub controls: Vec<async_channel::Sender<Control>>,
    /// The active health checks' thread (`upstream/health/prober.rs`).
    pub prober: crate::upstream::health::prober::Prober,
    /// Duplicates of the listening sockets, for a binary upgrade: a reload
    /// adds the listeners it binds and drops the ones it removes.
    pub inventory: Arc<std::sync::Mutex<crate::upgrade::Inventory>>,
}

/// A reload that took effect.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub generation: u64,
    /// Changes that were ignored (see the module header).
    pub warnings: Vec<String>,
}

/// Builds the next generation from `config` and installs it on every
/// shard, or returns every reason it cannot.
pub fn reload(running: &mut Running, config: Result<Config, ConfigErrors>) -> Result<Reloaded, Vec<String>> {
    let config = config.map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let old = running.generation.clone();
    let fixed = fixed_field_changes(&old.config, &config);
    if !fixed.is_empty() {
        return Err(fixed);
    }
    let mut ids = running.ids.clone();
    let (generation, pending) =
        Generation::build(old.number + 1, Arc::new(config), &mut ids, Some(&old)).map_err(|e| vec![e])?;

    // Bind what is new before anything is installed: a busy address
    // refuses the reload.
    let shards = running.controls.len();
    let mut added: Vec<Vec<(ListenerId, std::net::TcpListener)>> = (0..shards).map(|_| Vec::new()).collect();
    let mut for_upgrade = crate::upgrade::Inventory::default();
    let mut announced = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let old_index: HashMap<ListenerId, usize> = old.listeners.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (i, (l, id)) in generation.config.listeners.iter().zip(&generation.listeners).enumerate() {
        if let Some(&j) = old_index.get(id) {
            let was = &old.config.listeners[j];
            if was.defer_accept != l.defer_accept || was.send_buffer_bytes != l.send_buffer_bytes {
                warnings.push(format!(
                    "listeners[{i}] ({}): defer_accept and send_buffer_bytes are set when a listener's sockets are \
                     bound; the running sockets keep theirs (rename the listener or restart to apply)",
                    l.name
                ));
            }
            continue;
        }
        let options = SocketOptions { defer_accept: l.defer_accept, send_buffer_bytes: l.send_buffer_bytes };
        match bind_shared(l.addr, shards, options) {
            Ok((sockets, bound)) => {
                let refs: Vec<&std::net::TcpListener> = sockets.iter().collect();
                if let Err(e) = for_upgrade.add_listener(*id, &l.name, l.addr, bound, &refs) {
                    errors.push(format!("listeners[{i}] ({}): cannot keep its sockets for an upgrade: {e}", l.name));
                }
                for (shard, socket) in sockets.into_iter().enumerate() {
                    added[shard].push((*id, socket));
                }
                announced.push((l.name.clone(), bound));
            }
            Err(e) => errors.push(format!("listeners[{i}] ({}): cannot listen on {}: {e}", l.name, l.addr)),
        }
    }
    if !errors.is_empty() {
        // The sockets bound so far close here.
        return Err(errors);
    }

    // Commit: nothing below can fail.
    for (i, resolver, table) in pending {
        resolver.store(table);
        tracing::info!(listener = %generation.config.listeners[i].name, "certificates reloaded");
    }
    let generation = Arc::new(generation);
    let (installed, acks) = std::sync::mpsc::channel();
    let mut sent = 0;
    for (control, added) in running.controls.iter().zip(added) {
        // A shard takes control messages between requests; the queue is
        // short and only drained by it, so this waits at most for one
        // shard's current turn of its event loop.
        let message = Control::Reload { generation: generation.clone(), added, installed: installed.clone() };
        if control.send_blocking(message).is_ok() {
            sent += 1;
        }
    }
    // The reload is answered once every shard runs the new generation: a
    // request sent after the answer is served by it.
    let deadline = std::time::Instant::now() + INSTALL_WAIT;
    for _ in 0..sent {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if acks.recv_timeout(left).is_err() {
            warnings
                .push(format!("not every shard installed generation {} within {INSTALL_WAIT:?}", generation.number));
            break;
        }
    }
    for (name, addr) in announced {
        tracing::info!(listener = %name, addr = %addr, "listening");
    }
    {
        let mut inventory = running.inventory.lock().unwrap_or_else(|p| p.into_inner());
        inventory.absorb(for_upgrade);
        for id in &old.listeners {
            if generation.listener_index(*id).is_none() {
                inventory.remove_listener(*id);
            }
        }
    }
    for (j, id) in old.listeners.iter().enumerate() {
        if generation.listener_index(*id).is_none() {
            let l = &old.config.listeners[j];
            tracing::info!(listener = %l.name, addr = %l.addr, "stopped listening; its connections end after their request in progress");
        }
    }
    for w in &warnings {
        tracing::warn!("reload: {w}");
    }
    running.prober.install(&generation);
    running.ids = ids;
    running.generation = generation;
    Ok(Reloaded { generation: old.number + 1, warnings })
}

/// Fields that need a restart: each one that differs is an error.
fn fixed_field_changes(running: &Config, next: &Config) -> Vec<String> {
    let (a, b) = (&running.server, &next.server);
    let mut out = Vec::new();
    let mut check = |field: &str, same: bool, was: String, now: String| {
        if !same {
            out.push(format!("{field}: cannot change while running ({was} -> {now}); restart to apply"));
        }
    };
    check("server.shards", a.shards == b.shards, format!("{:?}", a.shards), format!("{:?}", b.shards));
    check("server.cpus", a.cpus == b.cpus, format!("{:?}", a.cpus), format!("{:?}", b.cpus));
    check("server.pin", a.pin == b.pin, a.pin.to_string(), b.pin.to_string());
    check("server.io_driver", a.io_driver == b.io_driver, format!("{:?}", a.io_driver), format!("{:?}", b.io_driver));
    check(
        "server.ring_entries",
        a.ring_entries == b.ring_entries,
        a.ring_entries.to_string(),
        b.ring_entries.to_string(),
    );
    let admin = |c: &Config| c.admin.as_ref().map(|a| a.listen);
    check("admin.listen", admin(running) == admin(next), format!("{:?}", admin(running)), format!("{:?}", admin(next)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!("{extra}\n[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ndirect = {{}}\n"),
            "t.toml",
        )
        .unwrap()
    }

    #[test]
    fn fields_that_need_a_restart_are_named() {
        let running = config("[server]\nshards = 2\n");
        assert!(fixed_field_changes(&running, &config("[server]\nshards = 2\ndrain_timeout = \"1s\"\n")).is_empty());
        let errors = fixed_field_changes(&running, &config("[server]\nshards = 3\nio_driver = \"epoll\"\n"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("server.shards: cannot change while running (Some(2) -> Some(3))"), "{errors:?}");
        assert!(errors[1].starts_with("server.io_driver"), "{errors:?}");
        let errors =
            fixed_field_changes(&running, &config("[server]\nshards = 2\n[admin]\nlisten = \"127.0.0.1:9\"\n"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("admin.listen"), "{errors:?}");
    }
}
