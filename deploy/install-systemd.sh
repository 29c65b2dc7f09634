#!/bin/sh
# Installs atis-scheduler as a systemd service: the binary, the unit, an
# /etc/default file (kept if present) and the operations guide.
#   deploy/install-systemd.sh [BINARY]          (default bin/atis-scheduler)
# DESTDIR=/some/root stages the install there instead (packaging, tests).
set -eu
cd "$(dirname "$0")/.."
bin=${1:-bin/atis-scheduler}
root=${DESTDIR:-}
[ -x "$bin" ] || { echo "install-systemd: $bin is not an executable (run make build)" >&2; exit 1; }
install -D -m 0755 "$bin" "$root/usr/local/bin/atis-scheduler"
install -D -m 0644 deploy/atis-scheduler.service "$root/etc/systemd/system/atis-scheduler.service"
[ -e "$root/etc/default/atis-scheduler" ] || install -D -m 0600 deploy/atis-scheduler.default "$root/etc/default/atis-scheduler"
install -D -m 0644 docs/operations.md "$root/usr/share/doc/atis-scheduler/operations.md"
if [ -z "$root" ]; then
	systemctl daemon-reload
fi
echo "installed atis-scheduler into ${root:-/}"
