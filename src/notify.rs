//! Service-manager notifications (systemd's `sd_notify` protocol, written
//! out here rather than linking libsystemd): `READY=1` once every shard
//! serves, `STOPPING=1` when the drain starts, `WATCHDOG=1` while the
//! shards are alive and the unit asked for a watchdog, and `MAINPID=` when
//! a binary upgrade hands the service to a new process (`crate::upgrade`):
//! the old process names the new one (accepted from the main process under
//! the default `NotifyAccess=main`), and the new process names itself
//! before its `READY=1` (accepted with `NotifyAccess=all`).
//!
//! The protocol: one datagram of `KEY=VALUE` lines to the unix socket named
//! by `NOTIFY_SOCKET` — a path, or an abstract-namespace name written with
//! a leading `@`. `WATCHDOG_USEC` asks for `WATCHDOG=1` at least that
//! often; `WATCHDOG_PID`, when set, names the process meant (a child that
//! inherited the variables stays silent). Without `NOTIFY_SOCKET` (not run
//! by systemd, or `Type=simple`) every call is a no-op.
//!
//! Only the main thread sends (the supervisor, `shard/supervisor.rs`): the
//! unit's default `NotifyAccess=main` accepts messages from the main
//! process, and the main thread is what sees shards start and exit.

use std::cell::Cell;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Where notifications go, read once from the environment at start.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half the unit's `WatchdogSec` (systemd's advice: ping at half the
    /// interval, so one late wakeup does not kill the service).
    watchdog_every: Option<Duration>,
    /// A failed send is logged once as a warning (a watchdog ping to a
    /// socket nobody reads would otherwise log at every ping).
    send_failed: Cell<bool>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. A variable
    /// that cannot be used is logged once and ignored: a wrong environment
    /// must not stop the proxy from serving.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::from_values(socket.as_ref().and_then(|s| s.to_str()), usec.as_deref(), pid.as_deref())
    }

    fn from_values(socket: Option<&str>, watchdog_usec: Option<&str>, watchdog_pid: Option<&str>) -> Notifier {
        let target = socket.filter(|s| !s.is_empty()).and_then(|name| match connect(name) {
            Ok(target) => Some(target),
            Err(e) => {
                tracing::warn!(notify_socket = name, error = %e, "NOTIFY_SOCKET unusable; no service-manager notifications");
                None
            }
        });
        let watchdog_every = target.as_ref().and_then(|_| watchdog_interval(watchdog_usec, watchdog_pid));
        Notifier { target, watchdog_every, send_failed: Cell::new(false) }
    }

    /// How often to send `WATCHDOG=1`, if the unit enabled a watchdog.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Every shard serves.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// The drain has started: the service manager shows "deactivating"
    /// instead of reading the coming exit as a crash.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// The service's main process is now `pid`.
    pub fn main_pid(&self, pid: u32) {
        self.send(&format!("MAINPID={pid}"));
    }

    fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else { return };
        // A datagram socket does not block on a full receiver queue for
        // long; a failure is logged and the proxy goes on serving.
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            if self.send_failed.replace(true) {
                tracing::debug!(error = %e, message, "service-manager notification not sent");
            } else {
                tracing::warn!(error = %e, message, "service-manager notification not sent (later failures are logged at debug)");
            }
        }
    }
}

/// An unbound datagram socket and the address `name` denotes: a filesystem
/// path, or `@name` for Linux's abstract namespace.
fn connect(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = match name.strip_prefix('@') {
        Some(abstract_name) => abstract_address(abstract_name.as_bytes())?,
        None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
        None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "neither an absolute path nor an @name")),
    };
    let socket = UnixDatagram::unbound()?;
    Ok((socket, addr))
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract unix socket names exist only on Linux"))
}

/// Half of `WATCHDOG_USEC`, when it is a positive number and `WATCHDOG_PID`
/// is unset or names this process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&n| n > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// What the supervisor has told the service manager, and when the next
/// watchdog ping is due. Fed with what the supervisor sees: shards
/// reporting that they serve, shards exiting, the drain starting.
#[derive(Debug)]
pub struct ServiceStatus {
    notifier: Notifier,
    shards: usize,
    serving: usize,
    exited: bool,
    stopping: bool,
    next_ping: Option<Instant>,
}

impl ServiceStatus {
    pub fn new(notifier: Notifier, shards: usize) -> ServiceStatus {
        ServiceStatus { notifier, shards, serving: 0, exited: false, stopping: false, next_ping: None }
    }

    /// A shard's accept loops run; `READY=1` once all of them do (and none
    /// has exited: a shard that failed at start means the process is on
    /// its way out, never ready).
    pub fn shard_serving(&mut self) {
        self.serving += 1;
        if self.serving == self.shards && !self.exited && !self.stopping {
            self.notifier.ready();
            tracing::debug!("every shard serves: READY=1 sent");
            if let Some(every) = self.notifier.watchdog_every() {
                self.notifier.watchdog();
                self.next_ping = Some(Instant::now() + every);
            }
        }
    }

    /// A shard thread ended: the watchdog stops, so a service manager
    /// that expects pings restarts a process that lost a shard.
    pub fn shard_exited(&mut self) {
        self.exited = true;
        self.next_ping = None;
    }

    /// The drain starts (`STOPPING=1`, once).
    pub fn stopping(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.notifier.stopping();
        }
    }

    /// A binary upgrade handed the service to process `pid`: it becomes the
    /// main process; this one drains without `STOPPING=1` (the service is
    /// not stopping) and stops its watchdog pings (the new process pings).
    pub fn handed_over(&mut self, pid: u32) {
        self.notifier.main_pid(pid);
        self.stopping = true;
        self.next_ping = None;
    }

    /// This process took the service over from an old one: it names itself
    /// the main process before its `READY=1`.
    pub fn took_over(&self) {
        self.notifier.main_pid(std::process::id());
    }

    /// How long the supervisor may wait for its next event before a
    /// watchdog ping is due; `None` when no ping is expected.
    pub fn wait_limit(&self, now: Instant) -> Option<Duration> {
        self.next_ping.map(|at| at.saturating_duration_since(now))
    }

    /// Sends `WATCHDOG=1` if one is due, and schedules the next.
    pub fn ping_if_due(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.next_ping, self.notifier.watchdog_every()) else { return };
        if now >= at {
            self.notifier.watchdog();
            self.next_ping = Some(now + every);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> (UnixDatagram, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("shardgate-notify-{}-{:?}", std::process::id(), Instant::now()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (socket, path)
    }

    fn next(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn watchdog_interval_is_half_and_only_for_this_process() {
        let me = std::process::id().to_string();
        assert_eq!(watchdog_interval(Some("2000000"), None), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval(Some("2000000"), Some(&me)), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("1")), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }

    #[test]
    fn unusable_socket_names_disable_notifications() {
        for name in ["relative/path", ""] {
            let n = Notifier::from_values(Some(name), Some("1000000"), None);
            assert!(n.target.is_none() && n.watchdog_every().is_none(), "{name:?}");
        }
    }

    #[test]
    fn ready_waits_for_every_shard_and_never_follows_an_exit() {
        let (socket, path) = receiver();
        let notifier = Notifier::from_values(path.to_str(), None, None);
        let mut status = ServiceStatus::new(notifier, 2);
        status.shard_serving();
        socket.set_nonblocking(true).unwrap();
        assert!(socket.recv(&mut [0u8; 64]).is_err(), "READY=1 before the second shard");
        socket.set_nonblocking(false).unwrap();
        status.shard_serving();
        assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
        status.stopping();
        status.stopping();
        assert_eq!(next(&socket), "STOPPING=1\nSTATUS=draining");
        socket.set_nonblocking(true).unwrap();
        assert!(socket.recv(&mut [0u8; 64]).is_err(), "STOPPING=1 sent twice");

        let notifier = Notifier::from_values(path.to_str(), None, None);
        let mut failed = ServiceStatus::new(notifier, 2);
        failed.shard_serving();
        failed.shard_exited();
        failed.shard_serving();
        assert!(socket.recv(&mut [0u8; 64]).is_err(), "READY=1 after a shard exited");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn watchdog_pings_when_due_and_stops_when_a_shard_exits() {
        let (socket, path) = receiver();
        let notifier = Notifier::from_values(path.to_str(), Some("200000"), None);
        let mut status = ServiceStatus::new(notifier, 1);
        assert_eq!(status.wait_limit(Instant::now()), None, "no ping before READY=1");
        status.shard_serving();
        assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
        assert_eq!(next(&socket), "WATCHDOG=1");
        let now = Instant::now();
        assert!(status.wait_limit(now).unwrap() <= Duration::from_millis(100));
        status.ping_if_due(now);
        socket.set_nonblocking(true).unwrap();
        assert!(socket.recv(&mut [0u8; 64]).is_err(), "ping before it was due");
        status.ping_if_due(now + Duration::from_millis(100));
        assert_eq!(socket.recv(&mut [0u8; 64]).map(|n| n == "WATCHDOG=1".len()).ok(), Some(true));
        status.shard_exited();
        assert_eq!(status.wait_limit(now), None);
        status.ping_if_due(now + Duration::from_secs(1));
        assert!(socket.recv(&mut [0u8; 64]).is_err(), "ping after a shard exited");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_namespace_names_are_reached() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("shardgate-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Notifier::from_values(Some(&format!("@{name}")), None, None).ready();
        assert_eq!(next(&socket), "READY=1\nSTATUS=serving");
    }
}
