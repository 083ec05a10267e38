#!/usr/bin/env bash
# Builds the Debian package with `cargo deb`, installs it with `dpkg -i`
# and checks the installed result: the `shardgate` system user, the
# default config (a conffile that `shardgate check` accepts, read as the
# service user), man pages, completions, logrotate, and the unit
# (`systemd-analyze verify`, where systemd-analyze exists). Then installs
# it a second time (maintainer scripts are idempotent) and purges it.
#
# Needs root (dpkg), cargo-deb (`cargo install cargo-deb --locked`), and
# reuses target/release/shardgate when it is up to date (cargo decides).
# Usage: packaging/test-deb.sh   (called by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
step() { echo "== test-deb: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i)"
command -v cargo-deb >/dev/null || fail "cargo-deb missing: cargo install cargo-deb --locked"
if dpkg-query -W -f='${Status}' shardgate 2>/dev/null | grep -q 'ok installed'; then
    fail "a shardgate package is already installed; this test installs and purges its own"
fi

target_dir="${CARGO_TARGET_DIR:-target}"
step "release build"
cargo build --release --locked --bin shardgate
bin="$target_dir/release/shardgate"

step "man pages and completions from the binary"
out="$target_dir/release/packaging"
rm -rf "$out"
"$bin" man --out-dir "$out/man"
gzip -9n "$out"/man/*.1
mkdir -p "$out/completions"
"$bin" completions bash >"$out/completions/shardgate.bash"
"$bin" completions zsh >"$out/completions/_shardgate"
"$bin" completions fish >"$out/completions/shardgate.fish"

step "cargo deb"
# cargo deb prints the package's path on stdout (its progress on stderr).
deb=$(cargo deb --no-build | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not print a package path (got: $deb)"
dpkg-deb --info "$deb" >/dev/null

purge() { dpkg --purge shardgate >/dev/null 2>&1 || true; }
trap purge EXIT

step "dpkg -i $deb"
dpkg -i "$deb"

step "installed files"
getent passwd shardgate >/dev/null || fail "no shardgate user after install"
getent group shardgate >/dev/null || fail "no shardgate group after install"
for f in /usr/bin/shardgate /etc/shardgate/shardgate.toml /etc/logrotate.d/shardgate \
    /usr/lib/systemd/system/shardgate.service /usr/share/bash-completion/completions/shardgate \
    /usr/share/zsh/vendor-completions/_shardgate /usr/share/fish/vendor_completions.d/shardgate.fish; do
    [ -f "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' shardgate | grep -q '/etc/shardgate/shardgate.toml' \
    || fail "/etc/shardgate/shardgate.toml is not a conffile"
[ "$(stat -c '%U:%G %a' /etc/shardgate/shardgate.toml)" = "root:shardgate 640" ] \
    || fail "config owner/mode: $(stat -c '%U:%G %a' /etc/shardgate/shardgate.toml)"
for page in shardgate shardgate-run; do
    [ -f "/usr/share/man/man1/$page.1.gz" ] || fail "no $page.1.gz man page"
    roff=$(zcat "/usr/share/man/man1/$page.1.gz")
    grep -q '^\.SH NAME' <<<"$roff" || fail "$page.1.gz is not a roff page with NAME"
done
[ "$(stat -c %s /usr/bin/shardgate)" -lt 20000000 ] || fail "/usr/bin/shardgate is not stripped"
version=$(/usr/bin/shardgate version)
grep -q '^commit: ' <<<"$version" || fail "installed binary: version lacks build details: $version"

step "shardgate check on the installed config, as the service user"
runuser -u shardgate -- /usr/bin/shardgate check -c /etc/shardgate/shardgate.toml

if command -v logrotate >/dev/null; then
    step "logrotate -d"
    # (Output captured first: `grep -q` closing the pipe early would fail
    # the pipeline under pipefail.)
    rotate=$(logrotate -d /etc/logrotate.d/shardgate 2>&1) || fail "logrotate -d failed: $rotate"
    grep -q 'rotating pattern: /var/log/shardgate/\*\.log' <<<"$rotate" \
        || fail "logrotate did not read /etc/logrotate.d/shardgate: $rotate"
else
    echo "test-deb: logrotate not installed; skipping the logrotate syntax check"
fi

if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify"
    man_check=no
    command -v man >/dev/null && man_check=yes
    systemd-analyze verify --man="$man_check" /usr/lib/systemd/system/shardgate.service
else
    echo "test-deb: systemd-analyze not installed; skipping the unit verification"
fi

step "reinstall (maintainer scripts run again)"
dpkg -i "$deb" >/dev/null
[ "$(getent passwd shardgate | wc -l)" = 1 ] || fail "shardgate user duplicated"

step "purge"
dpkg --purge shardgate >/dev/null
trap - EXIT
! getent passwd shardgate >/dev/null || fail "shardgate user left after purge"
[ ! -e /etc/shardgate/shardgate.toml ] || fail "config left after purge"
echo "test-deb: OK ($deb)"
