#!/usr/bin/env bash
# The project's test command (README): everything on the default io driver
# (io_uring where the kernel allows it), then the end-to-end suite again on
# the epoll driver, so both drivers are known to pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# The suite opens many sockets at once (64 MiB transfers, connection limits).
ulimit -n 65536 2>/dev/null || true

echo "== cargo test --workspace (io driver: auto)"
cargo test --workspace
echo "== end-to-end suite on the epoll driver"
SHARDGATE_TEST_IO_DRIVER=epoll cargo test --test e2e
