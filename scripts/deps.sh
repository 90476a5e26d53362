#!/usr/bin/env bash
# Installs the Debian packages apikeyd needs to build, run and test, when they
# are missing. Every Makefile target calls it; it is a no-op once all are there.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libh2o-evloop-dev libjansson-dev libsqlite3-dev libssl-dev zlib1g-dev
      libpq-dev libcmocka-dev python3-pytest python3-pytest-xdist python3-requests python3-jsonschema python3-yaml
      python3-cryptography chromium chromium-driver python3-selenium
      clang-14 libclang-rt-14-dev clang-format sqlite3 curl nginx-light wrk valgrind postgresql
      systemd e2fsprogs gnuplot-nox gdb prometheus jq
      debhelper lintian dpkg-dev fakeroot adduser man-db)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (for the browser tests' axe-core): any npm will do; Debian's when there is none.
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "deps.sh: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing servers (nginx, postgresql) must not start them: the tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
