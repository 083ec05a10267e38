"""The scenario table: what the load generator asks for, one row each.

A scenario is data. `needs` names the contender features a row requires
("tls"); a contender that lacks one is skipped for that row and the report
says so. A TLS row names its key type (`tls`: "ecdsa" / "rsa", see
certs.py): contenders are started with that certificate for it, so rows
are run grouped by listener (plain, then each key type).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    # Short key used in JSON, tables and file names.
    name: str
    # What a reader sees in the report, and its short form for charts.
    title: str
    short: str
    # Request path on the upstream (`shardgate echo`: /bytes/N returns N
    # bytes; other paths echo the request).
    path: str
    # Client connections, closed and open loop alike.
    connections: int
    method: str = "GET"
    # Request body bytes (Content-Length).
    body_size: int = 0
    # A new TCP connection for every request (`Connection: close`).
    new_conn: bool = False
    # Extra request headers, "Name: value".
    headers: tuple = ()
    # Contender features this scenario needs ("tls", "gateway", ...).
    needs: frozenset = field(default_factory=frozenset)
    # HTTPS with this key type's certificate ("ecdsa", "rsa"); "" = plain.
    tls: str = ""
    # Load runs (warmup and measured time) last this many times the
    # harness's --duration/--warmup: rows whose rate is low (a few thousand
    # handshakes/s) need longer to collect as many latency samples.
    duration_factor: float = 1.0
    # Part of `--quick`.
    quick: bool = False

    @property
    def listener(self):
        """What the contender must listen with: "plain" or the key type."""
        return self.tls or "plain"

    def url(self, port):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}{self.path}"

    def load_args(self, cert=None):
        """shardgate-load flags for this scenario (target URL excluded);
        `cert`: the certs.Cert the contender serves (TLS rows)."""
        args = ["-c", str(self.connections), "-m", self.method]
        if self.body_size:
            args += ["--body-size", str(self.body_size)]
        if self.new_conn:
            args.append("--new-conn")
        for h in self.headers:
            args += ["-H", h]
        if self.tls:
            # The client checks chain and name on every full handshake;
            # sessions are never offered (no --resume): every new
            # connection is a full handshake.
            args += ["--cacert", cert.cert]
        return args


SCENARIOS = [
    Scenario("small", "13 B response, keep-alive", "13 B", "/bytes/13", 50, quick=True),
    Scenario("16k", "16 KiB response, keep-alive", "16 KiB", "/bytes/16384", 50),
    # Fewer connections: 8 x 1 MiB in flight already saturate the relay.
    Scenario("1m", "1 MiB response, streamed", "1 MiB", "/bytes/1048576", 8),
    Scenario("post4k", "4 KiB POST body, 13 B response", "POST 4 KiB", "/bytes/13", 50, method="POST",
             body_size=4096),
    Scenario("newconn", "new connection per request, 13 B response", "new conn", "/bytes/13", 16, new_conn=True),
    # HTTPS (TLS 1.3 negotiated by every contender; docs/benchmarks.md):
    # keep-alive, so the handshake is paid once per connection in warmup
    # and the figures are the record layer's cost per request.
    Scenario("tls_small_ecdsa", "HTTPS 13 B response, keep-alive, ECDSA P-256", "TLS 13 B EC", "/bytes/13", 50,
             needs=frozenset({"tls"}), tls="ecdsa"),
    Scenario("tls_small_rsa", "HTTPS 13 B response, keep-alive, RSA 2048", "TLS 13 B RSA", "/bytes/13", 50,
             needs=frozenset({"tls"}), tls="rsa"),
    # A full TLS handshake per request (no resumption): requests/s are
    # full handshakes/s, CPU per request is CPU per full handshake (plus
    # one 13 B exchange and a TCP connection).
    Scenario("tls_newconn_ecdsa", "new TLS connection per request (full handshake), ECDSA P-256", "TLS hs EC",
             "/bytes/13", 16, new_conn=True, needs=frozenset({"tls"}), tls="ecdsa", duration_factor=2.0),
    Scenario("tls_newconn_rsa", "new TLS connection per request (full handshake), RSA 2048", "TLS hs RSA",
             "/bytes/13", 16, new_conn=True, needs=frozenset({"tls"}), tls="rsa", duration_factor=2.0),
]

BY_NAME = {s.name: s for s in SCENARIOS}
# Names that select several rows: `--scenarios tls`, `--scenarios plain`,
# `--scenarios all`.
GROUPS = {
    "tls": [s.name for s in SCENARIOS if "tls" in s.needs],
    "plain": [s.name for s in SCENARIOS if not s.needs],
    "all": [s.name for s in SCENARIOS],
}
# What a run without --scenarios measures: the five plain-HTTP rows the
# comparison was built around (~7 minutes with memory, under the 10-minute
# budget of a full run). Feature groups (TLS, ~6 minutes more) are asked
# for by name, so adding one does not lengthen everyone's default run.
DEFAULT_GROUP = "plain"


def select(names=None, quick=False):
    """The scenarios to run: by name or group (comma list), else the quick
    ones or the default group; each once, in table order."""
    if names:
        unknown = [n for n in names if n not in BY_NAME and n not in GROUPS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {list(BY_NAME)}, groups: {list(GROUPS)}")
        wanted = {m for n in names for m in GROUPS.get(n, [n])}
        return [s for s in SCENARIOS if s.name in wanted]
    if quick:
        return [s for s in SCENARIOS if s.quick]
    return [s for s in SCENARIOS if s.name in GROUPS[DEFAULT_GROUP]]


def by_listener(scenarios):
    """[(listener, [scenario, ...]), ...] in first-appearance order: the
    contender is started once per listener."""
    groups = {}
    for s in scenarios:
        groups.setdefault(s.listener, []).append(s)
    return list(groups.items())
