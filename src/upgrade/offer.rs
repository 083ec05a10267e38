//! The running (old) process's side of an upgrade: a thread waits on the
//! Unix socket at `--upgrade-socket PATH`, hands a connecting new process
//! every socket in the inventory, and once the new process serves, has the
//! main thread start the drain.
//!
//! One upgrade at a time: the thread serves one connection to its end
//! before it accepts the next. The socket file is created mode 0600 (only
//! the service's user, or root, can take its listeners).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{encode, Inventory, MAGIC};
use crate::admin::lifecycle::Lifecycle;

/// How long a new process may take, from receiving the sockets, to say it
/// serves (config already loaded; certificates, shards, runtimes). A new
/// process slower than this is taken for failed; the old keeps serving.
pub const TAKEOVER_DEADLINE: Duration = Duration::from_secs(60);

/// Called on the offering thread when the new process serves, with its
/// pid: the main thread starts the drain. False: the process is already
/// draining (or stopping) and does not hand over.
pub type TakeoverHook = Box<dyn Fn(u32) -> bool + Send>;

/// Binds the upgrade socket at `path` and starts the offering thread.
/// A leftover socket file nobody listens on is replaced; one a running
/// process listens on is an error.
pub fn start(
    path: &Path,
    inventory: Arc<Mutex<Inventory>>,
    lifecycle: Arc<Lifecycle>,
    takeover: TakeoverHook,
) -> io::Result<()> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "another process offers its sockets there"));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let path = path.to_path_buf();
    std::thread::Builder::new().name("shardgate-upgrade".into()).spawn(move || {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "upgrade socket: accept failed");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            match hand_over(stream, &inventory, &lifecycle, &takeover, &path) {
                Ok(pid) => {
                    tracing::info!(new_pid = pid, "upgrade: the new process serves; draining");
                    // The listener closes here; its path is gone already.
                    return;
                }
                Err(e) => tracing::warn!("upgrade aborted, this process keeps serving: {e}"),
            }
        }
    })?;
    Ok(())
}

/// One upgrade attempt; the new process's pid once it took over.
fn hand_over(
    mut stream: UnixStream,
    inventory: &Mutex<Inventory>,
    lifecycle: &Lifecycle,
    takeover: &TakeoverHook,
    path: &PathBuf,
) -> Result<u32, String> {
    let pid = peer_pid(&stream).map_err(|e| format!("cannot identify the new process: {e}"))?;
    if lifecycle.draining() {
        return Err(format!("process {pid} asked for the sockets while this one drains"));
    }
    // Duplicates, so the inventory is not locked while the new process reads.
    let (text, fds) = {
        let inventory = inventory.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = Vec::new();
        let mut fds: Vec<OwnedFd> = Vec::new();
        for (entry, fd) in inventory.entries() {
            entries.push(entry.clone());
            fds.push(fd.as_fd().try_clone_to_owned().map_err(|e| format!("cannot duplicate a socket: {e}"))?);
        }
        (encode(&entries), fds)
    };
    tracing::info!(new_pid = pid, sockets = fds.len(), "upgrade: handing the listening sockets over");
    let send = |stream: &mut UnixStream| -> io::Result<()> {
        stream.write_all(format!("{MAGIC} {}\n", text.len()).as_bytes())?;
        stream.write_all(text.as_bytes())?;
        let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        super::fd_passing::send_fds(stream, &raw)
    };
    send(&mut stream).map_err(|e| format!("sending the sockets to process {pid}: {e}"))?;
    drop(fds);
    let _ = stream.set_read_timeout(Some(TAKEOVER_DEADLINE));
    match read_line(&mut stream) {
        Ok(line) if line == "serving" => {}
        Ok(line) => return Err(format!("process {pid} said {line:?} instead of serving")),
        Err(e) => return Err(format!("process {pid} ended or went silent before serving ({e})")),
    }
    if !takeover(pid) {
        return Err(format!("process {pid} serves, but this one is already stopping"));
    }
    // The path is free for the new process's own offer before it hears back.
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(error = %e, path = %path.display(), "cannot remove the upgrade socket file");
    }
    let _ = stream.write_all(b"draining\n");
    Ok(pid)
}

/// The connecting process's pid (SO_PEERCRED).
fn peer_pid(stream: &UnixStream) -> io::Result<u32> {
    // SAFETY: an all-zero ucred is valid; getsockopt writes at most `len`
    // bytes into it; the fd is the live stream's.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.pid as u32)
    }
}

/// One short line (no descriptors travel this way).
pub(super) fn read_line(stream: &mut UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match stream.read(&mut byte)? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
            _ if byte[0] == b'\n' => break,
            _ if line.len() >= 128 => return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long")),
            _ => line.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}
