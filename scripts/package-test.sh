#!/usr/bin/env bash
# make package-test: the Debian package, end to end, on this machine (root, Debian 12).
#
#  1. builds it (dpkg-buildpackage -us -uc -b) in a copy of the tree under a temp directory,
#     and keeps the .deb in build/deb/;
#  2. lintian: no errors (the tags it reports are printed);
#  3. installs it (apt-get install ./apikeyd_*.deb) and checks the files, the conffile, the
#     unit (systemd-analyze verify), the man page (renders without warnings; names every
#     command and serve flag, as do the completion and /etc/default/apikeyd), the system
#     user apikeyd and /var/lib/apikeyd (apikeyd:apikeyd, 0750);
#  4. one version everywhere: apikeyd --version == CMakeLists.txt's project() VERSION ==
#     the man page's == debian/changelog's upstream version == apikeyd_build_info's;
#  5. runs the installed binary as the user apikeyd on a database in /var/lib/apikeyd:
#     account create, then serve configured by APIKEYD_* variables as the unit gets them
#     from /etc/default/apikeyd: /healthz, a verify with the printed key, /metrics, JSON
#     logs, backup and check, a clean SIGTERM;
#  6. purges it (apt-get purge) and checks that the user, /var/lib/apikeyd and every
#     apikeyd file are gone: the machine is left as it was found, also when a step fails.
#
# systemd is not PID 1 in the containers this runs in: the unit is verified, not started
# (a policy-rc.d keeps the package's postinst from starting it where systemd runs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T0=$SECONDS

step() { printf 'package-test: [%3ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() {
    echo "package-test: FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root: it installs, runs and purges the package"

# Never touch an apikeyd that was here before: this test would purge it.
if dpkg-query -W -f='${db:Status-Status}' apikeyd 2>/dev/null | grep -qv '^not-installed$'; then
    fail "the package apikeyd is installed here (dpkg -l apikeyd); purge it first"
fi
getent passwd apikeyd >/dev/null && fail "a user apikeyd exists here; this test creates and removes it"
getent group apikeyd >/dev/null && fail "a group apikeyd exists here; this test creates and removes it"
[ -e /var/lib/apikeyd ] && fail "/var/lib/apikeyd exists here; this test creates and removes it"

# The tools (also in scripts/deps.sh), and the build dependencies in debian/control.
tools=(debhelper lintian dpkg-dev fakeroot adduser man-db systemd curl python3)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

WORK=$(mktemp -d /tmp/apikeyd-package-test.XXXXXX)
chmod 755 "$WORK" # apt's _apt user reads the .deb from here
SERVER_PID='' LINTIAN_PID='' INSTALLED=0 POLICY_RC=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e # every step below runs, whatever fails
    if [ -n "$SERVER_PID" ]; then # apikeyd first (a clean stop; runuser then exits), then runuser
        local child
        child=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
        [ -n "$child" ] && kill "$child" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null && sleep 0.1; done
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    [ -n "$LINTIAN_PID" ] && kill "$LINTIAN_PID" 2>/dev/null && wait "$LINTIAN_PID" 2>/dev/null
    if [ $INSTALLED = 1 ] || dpkg-query -W -f='${db:Status-Status}' apikeyd 2>/dev/null | grep -qv '^not-installed$'; then
        echo "package-test: purging apikeyd" >&2
        apt-get purge -y -qq apikeyd >/dev/null 2>&1 || dpkg --purge apikeyd >/dev/null 2>&1 || true
    fi
    # What the package's postrm should have removed; none of it was here before (checked above).
    getent passwd apikeyd >/dev/null && userdel apikeyd 2>/dev/null
    getent group apikeyd >/dev/null && groupdel apikeyd 2>/dev/null
    rm -rf /var/lib/apikeyd
    [ $POLICY_RC = 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$WORK"
    if [ $rc = 0 ]; then
        step "passed"
    else
        echo "package-test: failed after $((SECONDS - T0)) s; the machine is left as it was" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every apikeyd file outside the trees of sources, before, to compare after the purge.
leftovers() {
    find /etc /lib/systemd /usr/bin /usr/sbin /usr/lib/systemd /usr/share/man /usr/share/doc \
        /usr/share/bash-completion /var/lib /var/log /run -name '*apikeyd*' 2>/dev/null | sort
}
leftovers >"$WORK/before.txt"

# 1. Build, from a copy of the tree (the files git knows or would add, not build/ or data/).
VERSION_CMAKE=$(sed -n 's/^project(apikeyd VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$VERSION_CMAKE" ] || fail "no project(apikeyd VERSION x.y.z) in CMakeLists.txt"
SRC=$WORK/apikeyd-$VERSION_CMAKE
mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard | tar -cf - --null --ignore-failed-read -T - 2>/dev/null |
    tar -xf - -C "$SRC"
if ! (cd "$SRC" && dpkg-checkbuilddeps >/dev/null 2>&1); then
    step "installing the build dependencies of debian/control"
    apt-get build-dep -y -qq "$SRC" >/dev/null
fi
step "building the package ($(nproc) jobs)"
if ! (cd "$SRC" && DEB_BUILD_OPTIONS="parallel=$(nproc) noddebs" dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
    tail -40 "$WORK/build.log" >&2
    fail "dpkg-buildpackage failed (log above)"
fi
DEB=$(echo "$WORK"/apikeyd_*_amd64.deb)
[ -f "$DEB" ] || fail "no apikeyd_*_amd64.deb was built"
# kept in build/deb/ (ignored by git) for `apt-get install ./build/deb/apikeyd_*.deb`
mkdir -p "$ROOT/build/deb"
rm -f "$ROOT"/build/deb/apikeyd_*.deb
cp "$DEB" "$ROOT/build/deb/"
step "built build/deb/$(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

# 2. lintian, in the background while the package is installed and tested.
lintian --fail-on error --display-info --tag-display-limit 0 "$DEB" >"$WORK/lintian.txt" 2>&1 &
LINTIAN_PID=$!

# 3. Install. Where systemd runs, a policy-rc.d keeps the postinst from starting the unit.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    POLICY_RC=1
fi
step "installing it"
INSTALLED=1
apt-get install -y -qq "$DEB" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "apt-get install $DEB"; }
dpkg-query -W -f='${Status}\n' apikeyd | grep -q "install ok installed" || fail "dpkg does not say apikeyd is installed"

step "checking files"
for f in /usr/bin/apikeyd /lib/systemd/system/apikeyd.service /etc/default/apikeyd \
    /usr/share/bash-completion/completions/apikeyd /usr/share/man/man8/apikeyd.8.gz \
    /usr/share/doc/apikeyd/examples/nginx-auth-request.conf /usr/share/doc/apikeyd/examples/apikeyd.default \
    /usr/share/doc/apikeyd/copyright; do
    [ -f "$f" ] || fail "$f is not installed"
done
[ -x /usr/bin/apikeyd ] || fail "/usr/bin/apikeyd is not executable"
dpkg-query -W -f='${Conffiles}\n' apikeyd | grep -q '^ /etc/default/apikeyd ' || fail "/etc/default/apikeyd is not a conffile"
[ "$(man -w apikeyd)" = /usr/share/man/man8/apikeyd.8.gz ] || fail "man -w apikeyd: $(man -w apikeyd 2>&1)"
[ "$(man -w 8 apikeyd)" = /usr/share/man/man8/apikeyd.8.gz ] || fail "apikeyd is not in section 8"
man_warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z /usr/share/man/man8/apikeyd.8.gz 2>&1 >/dev/null)
[ -z "$man_warn" ] || fail "the man page renders with warnings: $man_warn"
MAN=$(zcat /usr/share/man/man8/apikeyd.8.gz | sed 's/\\-/-/g; s/\\f[BIRP]//g')

# The unit: the user, the settings file, the sandbox; and systemd-analyze verify (which works
# without systemd running; the unit is not started here).
UNIT=/lib/systemd/system/apikeyd.service
for line in 'User=apikeyd' 'EnvironmentFile=-/etc/default/apikeyd' 'ExecStart=/usr/bin/apikeyd serve' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/apikeyd' 'PrivateTmp=yes' \
    'StateDirectory=apikeyd' 'StateDirectoryMode=0750'; do
    grep -qx "$line" "$UNIT" || fail "$UNIT lacks $line"
done
[ -L /etc/systemd/system/multi-user.target.wants/apikeyd.service ] || fail "the postinst did not enable apikeyd.service"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify $UNIT: $out"
    # it exits 0 on some complaints (e.g. unknown settings): they must not be about this unit
    if printf '%s\n' "$out" | grep -i 'apikeyd'; then fail "systemd-analyze verify $UNIT complains"; fi
    step "systemd-analyze verify: the unit is valid (not started: systemd is not PID 1 here)"
fi

# Every command and every serve flag is in the man page, the completion and (flags, as
# APIKEYD_* variables) the default file; every account/admin-token subcommand and flag too.
# the completion's words: split at blanks, quotes, | ( ) and ;
COMPLETION=$(tr -s " \t|'();" '\n' </usr/share/bash-completion/completions/apikeyd)
DEFAULTS=$(cat /etc/default/apikeyd)
commands=$(/usr/bin/apikeyd --help | sed -n '/^commands:/,/^$/p' | awk '/^  [a-z]/ {print $1}' | sort -u)
[ -n "$commands" ] || fail "apikeyd --help lists no commands"
for c in $commands; do
    grep -q -- "^\.B $c\( \|$\)" <<<"$MAN" || fail "the man page has no entry for the command $c"
    grep -qx -- "$c" <<<"$COMPLETION" || fail "the bash completion does not complete the command $c"
done
serve_flags=$(/usr/bin/apikeyd serve --help | grep -o -- '^  --[a-z-]*' | sed 's/^  //' | grep -vx -- --help)
[ "$(wc -l <<<"$serve_flags")" -ge 20 ] || fail "apikeyd serve --help lists too few flags"
for f in $serve_flags; do
    grep -q -- "^\.B[IR]\? $f\( \|$\)" <<<"$MAN" || fail "the man page does not describe serve $f"
    grep -qx -- "$f" <<<"$COMPLETION" || fail "the bash completion does not complete serve $f"
    var=APIKEYD_$(sed 's/^--//; s/-/_/g' <<<"$f" | tr '[:lower:]' '[:upper:]')
    grep -q "^#\?$var=" <<<"$DEFAULTS" || fail "/etc/default/apikeyd has no example of $var ($f)"
    grep -q -- "$var" <<<"$MAN" || fail "the man page does not name $var"
done
nsubs=0
for cmd in account admin-token; do
    subs=$(/usr/bin/apikeyd $cmd --help | sed -n "s/^\(usage:\)\? *apikeyd $cmd \([a-z-]*\).*/\2/p" | sort -u)
    [ -n "$subs" ] || fail "apikeyd $cmd --help lists no subcommands"
    for s in $subs; do
        grep -q -- "^\.B $cmd $s" <<<"$MAN" || fail "the man page has no entry for $cmd $s"
        grep -qx -- "$s" <<<"$COMPLETION" || fail "the bash completion does not complete $cmd $s"
        nsubs=$((nsubs + 1))
        for f in $(/usr/bin/apikeyd "$cmd" "$s" --help | grep -o -- '^  --[a-z-]*' | sed 's/^  //'); do
            grep -q -- "^\.B[IR]\? $f\( \|$\)" <<<"$MAN" || fail "the man page does not describe $cmd $s $f"
            grep -qx -- "$f" <<<"$COMPLETION" || fail "the bash completion does not complete $cmd $s $f"
        done
    done
done
step "man page, completion, default file: all $(wc -w <<<"$commands") commands, $(wc -w <<<"$serve_flags") serve flags, $nsubs subcommands"
complete_words() { # complete_words WORD...: what the completion offers for the last word
    bash -c 'source /usr/share/bash-completion/completions/apikeyd
             COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _apikeyd; echo "${COMPREPLY[*]}"' _ "$@"
}
[ "$(complete_words apikeyd se)" = serve ] || fail "completion of 'apikeyd se': $(complete_words apikeyd se)"
[ "$(complete_words apikeyd serve --metrics-l)" = --metrics-listen ] || fail "completion of 'apikeyd serve --metrics-l'"
[ "$(complete_words apikeyd serve --log-format j)" = json ] || fail "completion of 'apikeyd serve --log-format j'"
[ "$(complete_words apikeyd account issue-k)" = issue-key ] || fail "completion of 'apikeyd account issue-k'"

step "checking the user apikeyd and /var/lib/apikeyd"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd apikeyd) || fail "no user apikeyd"
[ "$uid" -lt 1000 ] || fail "apikeyd is not a system user (uid $uid)"
[ "$home" = /var/lib/apikeyd ] || fail "apikeyd's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "apikeyd's shell is $shell"
[ "$(getent group apikeyd | cut -d: -f3)" = "$gid" ] || fail "apikeyd's group is not apikeyd"
[ "$(stat -c '%U:%G %a' /var/lib/apikeyd)" = "apikeyd:apikeyd 750" ] ||
    fail "/var/lib/apikeyd is $(stat -c '%U:%G %a' /var/lib/apikeyd), not apikeyd:apikeyd 750"

# 4. One version.
VERSION_BIN=$(/usr/bin/apikeyd --version | sed -n 's/^apikeyd //p')
VERSION_MAN=$(sed -n 's/^\.TH APIKEYD 8 "[^"]*" "apikeyd \([^"]*\)".*/\1/p' <<<"$MAN")
VERSION_DEB=$(cd "$ROOT" && dpkg-parsechangelog -S Version)
VERSION_DEB_UPSTREAM=$(sed 's/^[0-9]*://; s/-[^-]*$//' <<<"$VERSION_DEB")
VERSION_PKG=$(dpkg-query -W -f='${Version}' apikeyd)
for v in "apikeyd --version:$VERSION_BIN" "man page:$VERSION_MAN" "debian/changelog:$VERSION_DEB_UPSTREAM" \
    "installed package:$(sed 's/^[0-9]*://; s/-[^-]*$//' <<<"$VERSION_PKG")"; do
    [ "${v#*:}" = "$VERSION_CMAKE" ] ||
        fail "${v%%:*} says ${v#*:}, CMakeLists.txt project() says $VERSION_CMAKE (add a debian/changelog entry for $VERSION_CMAKE: dch -v $VERSION_CMAKE, or by hand)"
done
step "version $VERSION_CMAKE: CMakeLists.txt, apikeyd --version, man page, debian/changelog ($VERSION_DEB), package"

# 5. The installed binary, as the user apikeyd, on a database in /var/lib/apikeyd.
step "running /usr/bin/apikeyd as apikeyd"
DB=/var/lib/apikeyd/package-test.db
as_apikeyd() { runuser -u apikeyd -- "$@"; }
created=$(as_apikeyd /usr/bin/apikeyd account create --db "$DB" --name package-test) ||
    fail "apikeyd account create as apikeyd"
KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$created") ||
    fail "account create printed no api_key: $created"
# (the database's mode is the umask's: 0600 under the unit's UMask=0077; the directory is 0750)
[ "$(stat -c '%U:%G' "$DB")" = apikeyd:apikeyd ] || fail "$DB belongs to $(stat -c '%U:%G' "$DB"), not apikeyd"
[ "$(stat -c '%U:%G %a' "$DB.secret")" = "apikeyd:apikeyd 600" ] || fail "$DB.secret is $(stat -c '%U:%G %a' "$DB.secret"), not apikeyd:apikeyd 600"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
MPORT=$(free_port)
# The settings as the unit gets them: /etc/default/apikeyd's own examples, uncommented,
# pointed at the test database and free ports.
sed -n 's/^#\(APIKEYD_\(DB\|LISTEN\|METRICS_LISTEN\|LOG_FORMAT\)=.*\)/\1/p' /etc/default/apikeyd |
    sed "s|^APIKEYD_DB=.*|APIKEYD_DB=$DB|; s|^APIKEYD_LISTEN=.*|APIKEYD_LISTEN=127.0.0.1:$PORT|;
         s|^APIKEYD_METRICS_LISTEN=.*|APIKEYD_METRICS_LISTEN=127.0.0.1:$MPORT|" >"$WORK/environment"
[ "$(wc -l <"$WORK/environment")" = 4 ] || fail "/etc/default/apikeyd lacks the examples of DB, LISTEN, METRICS_LISTEN, LOG_FORMAT"
grep -qx 'APIKEYD_LOG_FORMAT=json' "$WORK/environment" || fail "/etc/default/apikeyd: no #APIKEYD_LOG_FORMAT=json"
(
    set -a
    # shellcheck disable=SC1091
    . "$WORK/environment"
    exec runuser -u apikeyd -- /usr/bin/apikeyd serve
) 2>"$WORK/serve.log" &
SERVER_PID=$!
up=0
for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ $up = 1 ] || { cat "$WORK/serve.log" >&2; fail "apikeyd serve did not answer /healthz on 127.0.0.1:$PORT"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/auth/verify")
[ "$code" = 204 ] || fail "verify with the created key: $code, not 204"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${KEY%??????}AAAAAA" "http://127.0.0.1:$PORT/v1/auth/verify")
[ "$code" = 401 ] || fail "verify with a wrong key: $code, not 401"
metrics=$(curl -fsS "http://127.0.0.1:$MPORT/metrics") || fail "no /metrics on 127.0.0.1:$MPORT"
VERSION_METRICS=$(sed -n 's/^apikeyd_build_info{version="\([^"]*\)"} 1$/\1/p' <<<"$metrics")
[ "$VERSION_METRICS" = "$VERSION_CMAKE" ] || fail "apikeyd_build_info says '$VERSION_METRICS', not $VERSION_CMAKE"
step "serve as apikeyd: /healthz, verify 204 (and 401 for a wrong key), /metrics with apikeyd_build_info $VERSION_METRICS"
if /usr/bin/apikeyd --help | grep -q '^  backup '; then
    as_apikeyd /usr/bin/apikeyd backup --db "$DB" /var/lib/apikeyd/package-test-backup.db >/dev/null ||
        fail "apikeyd backup as apikeyd, while serving"
    out=$(as_apikeyd /usr/bin/apikeyd check --db /var/lib/apikeyd/package-test-backup.db) || fail "apikeyd check of the backup: $out"
    step "backup while serving, and check of the copy: $(tr -d ' \n' <<<"$out")"
fi
# SIGTERM to apikeyd itself: runuser, signalled, would kill its child after 2 s and exit 143.
child=$(ps -o pid= --ppid "$SERVER_PID" | tr -d ' ')
[ -n "$child" ] || fail "apikeyd serve (under runuser $SERVER_PID) is gone"
kill -TERM "$child"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
[ $rc = 0 ] || { cat "$WORK/serve.log" >&2; fail "apikeyd serve exited $rc on SIGTERM, not 0"; }
python3 - "$WORK/serve.log" "$KEY" <<'EOF' || fail "the serve log (APIKEYD_LOG_FORMAT=json) is not one JSON object a line, or holds the key"
import json, sys
text = open(sys.argv[1]).read()
assert sys.argv[2] not in text, "the key is in the log"
lines = [l for l in text.splitlines() if l.strip()]
assert lines, "no log lines"
for l in lines:
    json.loads(l)
assert any(json.loads(l).get("status") == 204 for l in lines), "no access line for the verify"
EOF

# lintian's verdict (it has been running since the build).
rc=0
wait "$LINTIAN_PID" || rc=$?
LINTIAN_PID=
tags=$(grep -E '^[EWIXP]: ' "$WORK/lintian.txt" || true)
[ -z "$tags" ] || printf '%s\n' "$tags" | sed 's/^/package-test: lintian: /'
if [ $rc != 0 ] || grep -q '^E: ' "$WORK/lintian.txt"; then
    cat "$WORK/lintian.txt" >&2
    fail "lintian reports errors"
fi
step "lintian: no errors ($(grep -c '^W: ' <<<"$tags" || true) warnings, $(grep -c '^I: ' <<<"$tags" || true) info)"

# 6. Purge: nothing of apikeyd is left.
step "purging it"
apt-get purge -y -qq apikeyd >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "apt-get purge apikeyd"; }
INSTALLED=0
dpkg-query -W -f='${db:Status-Status}' apikeyd 2>/dev/null | grep -qv '^not-installed$' &&
    fail "apikeyd is still known to dpkg after the purge: $(dpkg -l apikeyd | tail -1)"
getent passwd apikeyd >/dev/null && fail "the user apikeyd is left after the purge"
getent group apikeyd >/dev/null && fail "the group apikeyd is left after the purge"
[ -e /var/lib/apikeyd ] && fail "/var/lib/apikeyd is left after the purge"
leftovers >"$WORK/after.txt"
diff -u "$WORK/before.txt" "$WORK/after.txt" >&2 || fail "files of apikeyd are left after the purge (diff above)"
