"""The soak's traffic: one row per stream, and how each stream's
shardgate-load JSON report turns into ok / injected / unexpected counts.

A stream is one shardgate-load process per minute at a fixed rate. Normal
streams go to the echo upstream and must never fail. Fault streams go to
`shardgate-faulty-upstream` through the proxy's `/fault/` route; each
expects exactly the outcome its fault causes, and anything else it sees is
unexpected too (a fault that did not happen is as wrong as an error where
none was asked for).
"""

from dataclasses import dataclass, field

# Error kinds of shardgate-load's JSON `errors` (bench/src/outcome.rs).
LOAD_ERROR_KINDS = ("connect", "tls", "timeout", "status", "protocol", "io")
# Columns of injected faults, as the proxy shows them to a client.
INJECTED_KINDS = ("502", "504", "truncated")
# Columns of unexpected errors: the load tool's kinds, plus `missed` (a fault
# stream answered normally), `reload` (a SIGHUP whose new certificate was
# not served) and `exit` (a process of the soak died).
UNEXPECTED_KINDS = LOAD_ERROR_KINDS + ("missed", "reload", "exit")

NORMAL = "normal"
FAULT_STATUS = "fault-status"  # the fault shows as one status (502/504)
FAULT_TRUNCATE = "fault-truncate"  # the fault shows as a body cut short


@dataclass(frozen=True)
class Stream:
    name: str
    scheme: str  # "http" or "https"
    path: str
    rate: float  # requests/s at SOAK_RATE_SCALE=1
    connections: int
    kind: str = NORMAL
    # Status of a FAULT_STATUS stream's fault (also --expect-status).
    status: int = 200
    flags: tuple = field(default_factory=tuple)

    def is_fault(self):
        return self.kind != NORMAL


# About 2.1k requests/s in total, 3 % of it faults; every mode the proxy
# serves: keep-alive and a connection per request, small and large
# responses, uploads, TLS kept alive, resumed and full handshakes.
STREAMS = (
    Stream("keepalive-small", "http", "/bytes/128", 1200, 16),
    Stream("newconn-small", "http", "/bytes/512", 200, 8, flags=("--new-conn",)),
    Stream("keepalive-256k", "http", "/bytes/262144", 40, 4),
    Stream("keepalive-1m", "http", "/bytes/1048576", 5, 2),
    Stream("upload-64k", "http", "/upload", 100, 8, flags=("-m", "POST", "--body-size", "65536")),
    Stream("upload-1m", "http", "/upload", 5, 2, flags=("-m", "POST", "--body-size", "1048576")),
    Stream("tls-keepalive", "https", "/bytes/1024", 400, 8, flags=("-k",)),
    Stream("tls-newconn-resumed", "https", "/bytes/256", 60, 4, flags=("-k", "--new-conn", "--resume")),
    Stream("tls-newconn-full", "https", "/bytes/256", 20, 2, flags=("-k", "--new-conn")),
    Stream("fault-reset", "http", "/fault/reset", 10, 2, FAULT_STATUS, 502),
    Stream(
        "fault-reset-post", "http", "/fault/reset", 5, 2, FAULT_STATUS, 502,
        flags=("-m", "POST", "--body-size", "4096"),
    ),
    Stream("fault-close", "http", "/fault/close", 10, 2, FAULT_STATUS, 502),
    Stream("fault-malformed", "http", "/fault/malformed", 10, 2, FAULT_STATUS, 502),
    # Waits past the faulty cluster's 500ms response timeout: 504. Each
    # request holds its connection ~0.5 s, hence the connections.
    Stream("fault-slow", "http", "/fault/slow?ms=2000", 10, 10, FAULT_STATUS, 504),
    Stream("fault-truncate", "http", "/fault/truncate", 10, 2, FAULT_TRUNCATE),
)


def load_command(binary, stream, url, seconds, rate_scale, cpu):
    """The shardgate-load command line of one stream for one minute."""
    cmd = [
        binary, "--json", "--warmup", "0s", "-d", f"{seconds}s",
        "-t", "1", "-c", str(stream.connections),
        "-R", f"{max(stream.rate * rate_scale, 0.5):g}",
        "--expect-status", str(stream.status),
    ]
    if cpu is not None:
        cmd += ["--cpus", str(cpu)]
    return cmd + list(stream.flags) + [url]


def empty_counts():
    return {
        "requests": 0,
        "ok": 0,
        "unsent": 0,
        "injected": {k: 0 for k in INJECTED_KINDS},
        "unexpected": {k: 0 for k in UNEXPECTED_KINDS},
    }


def classify(stream, report):
    """Counts of one stream's run from shardgate-load's JSON report (a
    dict). Every request lands in exactly one of ok, injected, unexpected."""
    c = empty_counts()
    errors = report.get("errors", {})
    statuses = report.get("status_codes", {})
    c["requests"] = report.get("requests", 0)
    c["unsent"] = report.get("unsent", 0)
    ok = report.get("ok", 0)
    if stream.kind == NORMAL:
        c["ok"] = ok
        for k in LOAD_ERROR_KINDS:
            c["unexpected"][k] += errors.get(k, 0)
    elif stream.kind == FAULT_STATUS:
        # --expect-status is the fault's status: "ok" means the fault
        # arrived as it should.
        c["injected"][str(stream.status)] += ok
        for k in LOAD_ERROR_KINDS:
            c["unexpected"][k] += errors.get(k, 0)
    elif stream.kind == FAULT_TRUNCATE:
        # The proxy has already sent the head when the upstream stops, so
        # the client sees the body cut short: the connection closes early
        # (protocol: truncated) or is reset (io). If the proxy saw the
        # whole short response before sending anything, 502 is right too.
        c["injected"]["truncated"] += errors.get("protocol", 0) + errors.get("io", 0)
        c["injected"]["502"] += statuses.get("502", 0)
        c["unexpected"]["status"] += errors.get("status", 0) - statuses.get("502", 0)
        c["unexpected"]["missed"] += ok
        for k in ("connect", "tls", "timeout"):
            c["unexpected"][k] += errors.get(k, 0)
    else:
        raise ValueError(f"unknown stream kind {stream.kind!r}")
    return c


def add_counts(total, c):
    for k in ("requests", "ok", "unsent"):
        total[k] += c[k]
    for group in ("injected", "unexpected"):
        for k, n in c[group].items():
            total[group][k] += n
    return total
