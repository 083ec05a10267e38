"""What the soak reads from the running proxy: resident memory and file
descriptors from /proc/PID, established TCP connections (its own sockets
matched against /proc/net/tcp), the admin `/stats` counters, and which
certificate its TLS listener serves."""

import json
import os
import ssl
import urllib.request

TCP_ESTABLISHED = "01"


def rss_kib(pid):
    """VmRSS of the process, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _socket_inodes(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed between listdir and readlink
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections(pid, listen_ports):
    """(downstream, upstream): the process's established TCP connections,
    downstream being those whose local port is one of `listen_ports`."""
    mine = _socket_inodes(pid)
    down = up = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[3] != TCP_ESTABLISHED or cols[9] not in mine:
                continue
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port in listen_ports:
                down += 1
            else:
                up += 1
    return down, up


def admin_stats(admin_addr, timeout=2.0):
    """Counters of every shard summed, from the admin `/stats`; {} if the
    admin listener does not answer."""
    try:
        with urllib.request.urlopen(f"http://{admin_addr}/stats", timeout=timeout) as r:
            doc = json.load(r)
    except (OSError, ValueError):
        return {}
    total = {}
    for shard in doc.get("shards", []):
        for k, v in shard.items():
            if k != "shard" and isinstance(v, int):
                total[k] = total.get(k, 0) + v
    return total


def served_certificate_der(port, timeout=3.0):
    """DER of the certificate the TLS listener on 127.0.0.1:`port` serves
    now (a fresh full handshake, no verification: only its identity
    matters)."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=timeout)
    return ssl.PEM_cert_to_DER_cert(pem)


def file_certificate_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())
