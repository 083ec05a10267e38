"""The scenario table: what the load generator asks for, one row each.

A scenario is data. Later scenarios (TLS, gateway auth + rate limit) are
new rows: `needs` names the contender features a row requires (e.g.
"tls"); a contender that lacks one is skipped for that row and the report
says so.
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
    # Part of `--quick`.
    quick: bool = False

    def load_args(self):
        """shardgate-load flags for this scenario (target URL excluded)."""
        args = ["-c", str(self.connections), "-m", self.method]
        if self.body_size:
            args += ["--body-size", str(self.body_size)]
        if self.new_conn:
            args.append("--new-conn")
        for h in self.headers:
            args += ["-H", h]
        return args


SCENARIOS = [
    Scenario("small", "13 B response, keep-alive", "13 B", "/bytes/13", 50, quick=True),
    Scenario("16k", "16 KiB response, keep-alive", "16 KiB", "/bytes/16384", 50),
    # Fewer connections: 8 x 1 MiB in flight already saturate the relay.
    Scenario("1m", "1 MiB response, streamed", "1 MiB", "/bytes/1048576", 8),
    Scenario("post4k", "4 KiB POST body, 13 B response", "POST 4 KiB", "/bytes/13", 50, method="POST",
             body_size=4096),
    Scenario("newconn", "new connection per request, 13 B response", "new conn", "/bytes/13", 16, new_conn=True),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def select(names=None, quick=False):
    """The scenarios to run: by name (comma list), else the quick ones or all."""
    if names:
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {list(BY_NAME)}")
        return [BY_NAME[n] for n in names]
    return [s for s in SCENARIOS if s.quick or not quick]
