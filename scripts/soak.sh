#!/usr/bin/env bash
# Soak: scripts/soak.sh MINUTES
#
# Runs shardgate (1 shard) for MINUTES minutes under mixed traffic at a
# fixed rate (~2.1k requests/s): keep-alive and a new connection per
# request, small and large responses, 64 KiB and 1 MiB uploads, TLS kept
# alive, resumed and with full handshakes, through shardgate-load (one
# process per stream per minute). About 3 % of the requests go through a
# `/fault/` route to shardgate-faulty-upstream, which resets, closes,
# truncates, stalls past the response timeout or answers garbage on
# command; those come back as the 502s, 504s and cut-short bodies they
# must, and are counted apart from everything else ("injected"). Every
# SOAK_SIGHUP_SECONDS a fresh self-signed certificate is written over the
# TLS listener's files and the proxy gets SIGHUP; the soak then checks that
# new handshakes get the new certificate.
#
# SIGHUP reloads the whole config (a new generation, certificates read
# again). The soak's config file is never changed, so each reload builds a
# generation from the same file with a new certificate behind the same file
# names: unchanged clusters keep their pooled connections, and the load
# runs through every swap.
#
# A minute is MINUTE-7 s of load, then 7 quiet seconds: the load processes
# drain and exit, the upstream pools empty (2 s idle timeout), and the
# minute's idle reading is taken. Every minute it prints (and appends to
# soak.csv) the proxy's RSS idle at the end of the minute (what the
# minute's work left behind: the number the verdict judges), RSS under
# load (median and peak of once-a-second readings; shown, not judged: it
# swings by +-15 % with the relay buffers in flight and the allocator's
# trims), open file descriptors under load and idle, established
# connections under load (downstream/upstream), the requests, and errors
# by kind: injected (502, 504, truncated) and
# unexpected (shardgate-load's kinds connect, tls, timeout, status,
# protocol, io; `missed`: a fault stream answered normally; `reload`: a
# SIGHUP whose certificate was not served; `exit`: a process died).
# After the load it waits for the descriptors to settle, then the verdict:
#   PASS  RSS at the last minute <= RSS at minute 5 + 5 % (idle readings; in
#         a soak of 10 minutes or more each side is the median of three:
#         minutes 4-6 and the last three, as one reading can sit ~10 % off)
#   PASS  descriptors back to their baseline (measured before the load)
#   PASS  no error besides the injected ones
#   PASS  every fault was injected
# Exit status 0 if all pass, 1 otherwise. Output directory (table, per-
# second samples, RSS plot rss.svg, summary.md, logs, every load report):
# target/soak/<timestamp>/ unless SOAK_OUT is set.
#
# Environment (all optional):
#   SOAK_MINUTE_SECONDS  length of a "minute" (default 60, at least 15), for
#                        short development runs: SOAK_MINUTE_SECONDS=20
#                        scripts/soak.sh 2. With fewer than 10 minutes the
#                        RSS reference is the middle minute (rounded up)
#                        instead of minute 5: a 2-minute run compares
#                        minute 2 with minute 1.
#   SOAK_QUIET_SECONDS   quiet end of each minute (default 7, the least that
#                        lets pools empty and RSS settle)
#   SOAK_SIGHUP_SECONDS  seconds between reloads (default 30)
#   SOAK_RATE_SCALE      multiply every stream's rate (default 1)
#   SOAK_SETTLE_SECONDS  longest wait for descriptors after the load (default 30)
#   SOAK_IO_DRIVER       auto | uring | epoll for proxy and echo (default auto)
#   SOAK_PROXY_CPU / SOAK_LOAD_CPU   CPUs (default: the first two allowed;
#                        the proxy alone on one, load + upstreams on the other)
#   SOAK_NO_BUILD=1      use the binaries in SOAK_BIN_DIR (default target/release) as they are
#
# Needs: cargo (unless SOAK_NO_BUILD), python3 (standard library), openssl.
# Traffic goes to 127.0.0.1 only; every load process stops by itself; the
# processes started here are stopped by their PIDs at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/soak.sh MINUTES   (details: the header of scripts/soak.sh)" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "soak: openssl is needed (apt-get install openssl)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak: python3 is needed" >&2; exit 2; }

if [ "${SOAK_NO_BUILD:-}" != "1" ]; then
    cargo build --release -p shardgate -p shardgate-bench --bins
fi
# Thousands of connections per minute, some held by the faulty upstream.
ulimit -n 65536 2>/dev/null || true
exec python3 -B scripts/soak/soak.py "$1"
