//! Build details for `shardgate version`: the git commit (when the source
//! is a git checkout and git is installed), the rustc version and the
//! target. Any of them missing is fine: the field then reads "unknown".
//! A build from a source tarball can name its commit with
//! `SHARDGATE_GIT_COMMIT=...`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SHARDGATE_GIT_COMMIT");
    let commit = std::env::var("SHARDGATE_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(git_commit);
    println!("cargo:rustc-env=SHARDGATE_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(Command::new(rustc).arg("--version")).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SHARDGATE_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=SHARDGATE_TARGET={}", std::env::var("TARGET").unwrap_or_else(|_| "unknown".into()));
    println!("cargo:rustc-env=SHARDGATE_PROFILE={}", std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into()));
}

/// The short commit of HEAD, and the files whose change means a new one
/// (so the build script reruns on a commit or checkout, not on every edit).
fn git_commit() -> Option<String> {
    let commit = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))?;
    for name in ["HEAD", "packed-refs"] {
        rerun_if_changed(output(Command::new("git").args(["rev-parse", "--git-path", name])));
    }
    if let Some(branch) = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"])) {
        rerun_if_changed(output(Command::new("git").args(["rev-parse", "--git-path", &branch])));
    }
    Some(commit)
}

fn rerun_if_changed(path: Option<String>) {
    if let Some(path) = path.filter(|p| Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// The trimmed stdout of a command that ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
