//! SIGUSR2 on a process that offers its sockets: it starts the new binary
//! itself, as nginx does on USR2. The new process runs the same command
//! line plus `--upgrade-from` the offering path, from the binary at the
//! path this one was started from (a package upgrade has replaced that
//! file by then). Started by the old process, the new one is in the same
//! service (systemd's cgroup) and writes to the same log stream.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary to start: the path this process was started from. A
/// replaced file still shows as `/proc/self/exe`'s target with
/// " (deleted)" appended; the path is what matters.
fn binary_path() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// This process's arguments with `--upgrade-from` (either spelling) left
/// out, and `--upgrade-from PATH` appended.
pub fn successor_args(own: impl IntoIterator<Item = std::ffi::OsString>, from: &Path) -> Vec<std::ffi::OsString> {
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in own {
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == "--upgrade-from" {
            skip_value = true;
            continue;
        }
        if arg.to_string_lossy().starts_with("--upgrade-from=") {
            continue;
        }
        args.push(arg);
    }
    args.push("--upgrade-from".into());
    args.push(from.as_os_str().to_owned());
    args
}

/// Starts the new process; a thread reaps it and logs if it fails (this
/// process then keeps serving). Returns its pid.
pub fn start(from: &Path) -> io::Result<u32> {
    let binary = binary_path()?;
    let args = successor_args(std::env::args_os().skip(1), from);
    let mut child = Command::new(&binary).args(&args).stdin(Stdio::null()).spawn()?;
    let pid = child.id();
    std::thread::Builder::new().name("shardgate-successor".into()).spawn(move || match child.wait() {
        Ok(status) if status.success() => tracing::info!(pid, "upgrade: the process started by SIGUSR2 exited"),
        Ok(status) => tracing::warn!(pid, %status, "upgrade: the new process failed; this one keeps serving"),
        Err(e) => tracing::warn!(pid, error = %e, "upgrade: cannot wait for the new process"),
    })?;
    tracing::info!(pid, binary = %binary.display(), "upgrade: SIGUSR2 started the new process");
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_runs_the_same_command_upgrading_from_the_offer() {
        let own = ["run", "-c", "a.toml", "--upgrade-from", "/old", "--upgrade-socket", "/s", "--upgrade-from=/x"];
        let args = successor_args(own.iter().map(std::ffi::OsString::from), Path::new("/s"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["run", "-c", "a.toml", "--upgrade-socket", "/s", "--upgrade-from", "/s"]);
    }
}
