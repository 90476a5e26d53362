#!/usr/bin/env bash
# bench/run.sh: `make bench`. A benchmark with fixed options that prints
# figures (like sqlite's speedtest1); it asserts nothing and never fails on a
# slow result. It measures, on loopback only, with wrk:
#
#   [a] compare.sh (../shared/bench) on GET /v1/account/api-keys/ and on
#       GET /v1/auth/verify, for an account with two keys; the list again with
#       the access log on (stderr to a file);
#   [b] p50 / p99 latency at 64 connections (wrk --latency -t2 -c64) for list,
#       verify, and the nginx and limit references; for context, the same with
#       one core each (taskset: wrk -t1 on CPU 0, one server thread on CPU 1);
#   [c] 1,000,000 keys in 10,000 accounts (bench/bulkload): apikeyd start-up
#       time (exec to /healthz 200), VmRSS after start-up and after the run,
#       and verify throughput with keys drawn at random (bench/random_keys.lua)
#       against limit.c in the same rounds;
#   [d] list and verify throughput while one connection creates keys as fast
#       as it can (bench/create_keys.lua), against the same without it;
#   [e] throughput against connections (1..256) for apikeyd verify and list,
#       nginx and limit, plotted to docs/benchmarks.png with gnuplot;
#   [f] issue 9, only with APIKEYD_BEFORE_BIN=<apikeyd built from an older commit>: list
#       and verify of that binary and of build/apikeyd against limit, interleaved in the
#       same rounds (wrk -t2 -c64), the two ratios and their quotient;
#   [h] issue 10, likewise with APIKEYD_BEFORE_BIN: as [f], with an expires_at on every key
#       of the after binary's account (but the primary, which cannot have one);
#   [i] issue 12: verify of a key with 20 scopes and 32 CIDRs asked for 3 scopes against the
#       plain verify, interleaved; 1,000,000 keys of which 10 % are so restricted: start-up,
#       VmRSS, random verify against limit;
#   [g] issue 9 at scale, on SQLite and on PostgreSQL (a throwaway cluster): 100,000
#       accounts and 1,000,000 audit events seeded with SQL (bench/seed.sql) into a
#       database made by build/apikeyd; start-up time with one key and with two keys per
#       account, and p50 / p99 of the operator and audit listings with one keep-alive
#       client (bench/listing_latency.py); query plans to build/bench/plans-*.txt.
#   [j] issue 13: verify of a key with a rate limit it never reaches and a quota it never
#       spends against the plain verify, interleaved as [i].
#   [k] issue 13 across instances: the same on each of 2 instances on one PostgreSQL database
#       (the rate exchange and the quota leases running).
#   [l] issue 15, gateway mode: GET /api/hello with a valid key through apikeyd --route, nginx as a
#       plain reverse proxy (no auth), nginx + auth_request to apikeyd (docs/nginx-auth-request.conf)
#       and nginx + auth_request to nginx `return 204` (the auth_request ceiling), all to one nginx
#       `return 200` upstream (bench/gateway/), interleaved (wrk -t2 -c64); then throughput against
#       connections for the four, drawn under [e]'s in docs/benchmarks.png when [e] ran too.
#   [m] issue 15: p50 / p99 at 64 connections of the same four with one core each (wrk on CPU 0;
#       the proxy, its auth responder and the upstream on CPU 1).
#   [n] issue 15: throughput of a route while 64 requests hang on another route's upstream
#       (bench/gateway/hang.py), against the same without.
#
# Then a summary table against the targets of issues 3 and 9. Results also go to
# build/bench/results.txt (key=value), build/bench/summary.md,
# build/bench/sweep.dat and every wrk output to build/bench/wrk/.
# Anything that looked wrong (non-2xx answers, socket errors, a server that
# died or logged errors) is listed at the end and in build/bench/issues.txt.
#
# Takes about 6 to 7 minutes on a 2-core machine for [a]-[e], about 2 more for [f],
# 5 more for [g] and 6 more for [l]-[n]; wrk and the server share the cores (as in compare.sh). Installs wrk,
# nginx-light, gnuplot-nox, libh2o-evloop-dev and sqlite3 when missing and run as root. Debugging aid only:
# BENCH_SECTIONS="a b" runs a subset (the summary then has gaps);
# BENCH_KEEP=1 keeps the temporary directory.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${APIKEYD_SHARED_BENCH:-$ROOT/../shared/bench}
OUT=$ROOT/build/bench
APIKEYD=$ROOT/build/apikeyd
BULKLOAD=$ROOT/build/bulkload
SECTIONS=${BENCH_SECTIONS:-a b c d e f g h i j k l m n}

# Fixed options.
CMP_SECS=4 CMP_ROUNDS=3 # compare.sh's own defaults
LAT_SECS=5
BIG_ACCOUNTS=10000 BIG_KEYS_PER_ACCOUNT=100 STARTS=3
RAND_SECS=6 RAND_ROUNDS=3
RESTR_SECS=4 RESTR_ROUNDS=5
WR_SECS=4 WR_ROUNDS=3 WR_MAX_KEYS=1000000
SWEEP_SECS=3 SWEEP_CONNS="1 2 4 8 16 32 64 128 256"

T_BEGIN=$EPOCHREALTIME
say() { printf '%s\n' "$*"; }
hdr() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

# --- tools -------------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] || return 1
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "$@" >/dev/null 2>&1
}
need() { # need COMMAND PACKAGE... (the first package that installs wins)
    local cmd=$1 p
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    for p in "$@"; do apt_install "$p" && command -v "$cmd" >/dev/null 2>&1 && return 0; done
    return 1
}
need wrk wrk || die "needs wrk (apt-get install wrk)"
need nginx nginx-light || die "needs nginx (apt-get install nginx-light)"
need curl curl || die "needs curl"
need python3 python3 || die "needs python3"
[ -f /usr/include/h2o.h ] || apt_install libh2o-evloop-dev || die "needs libh2o-evloop-dev"
HAVE_GNUPLOT=1
need gnuplot gnuplot-nox gnuplot || { HAVE_GNUPLOT=0; say "bench: gnuplot missing (apt-get install gnuplot-nox): no plot"; }
{ [ -f "$SHARED/compare.sh" ] && [ -f "$SHARED/limit.c" ]; } || die "no compare.sh / limit.c in $SHARED (set APIKEYD_SHARED_BENCH)"
PY=$(python3 -c 'import sys; print(sys.executable)') # not the pyenv shim: start-up polling must be quick

# --- build: the project's default (release) build in build/ -------------------
make --no-print-directory all >/dev/null || die "build failed (make)"
[ -x "$BULKLOAD" ] || cmake --build build --target bulkload >/dev/null || die "cannot build bulkload"
grep -q '^APIKEYD_SANITIZE:BOOL=ON' build/CMakeCache.txt && die "build/ is a sanitizer build; benchmark a release build"
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' build/CMakeCache.txt)
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}

# --- workspace and cleanup ---------------------------------------------------
WORK=$(mktemp -d /tmp/apikeyd-bench.XXXXXX)
chmod 755 "$WORK"
rm -rf "$OUT"
mkdir -p "$OUT/wrk"
: >"$OUT/results.txt"
: >"$OUT/issues.txt"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
    if declare -F pg_stop >/dev/null; then pg_stop || true; fi
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
issue() { printf '%s\n' "$*" | tee -a "$OUT/issues.txt" >&2; }
declare -A R=()
res() { R[$1]=$2; printf '%s=%s\n' "$1" "$2" >>"$OUT/results.txt"; }
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{if (NR) print a[int((NR+1)/2)]}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a/b }'; }
json_get() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# wrkrun LABEL WRK-ARGS...: runs wrk (behind $WRK_WRAP if set), keeps its output in build/bench/wrk/LABEL.txt,
# prints Requests/sec. Non-2xx answers and socket errors are reported as issues.
wrkrun() {
    local label=$1 f
    shift
    f="$OUT/wrk/$label.txt"
    # shellcheck disable=SC2086 # WRK_WRAP: an optional prefix such as "taskset -c 0"
    if ! ${WRK_WRAP:-} wrk "$@" >"$f" 2>&1; then issue "wrk failed ($label): $(tail -1 "$f")"; fi
    if grep -qE 'Non-2xx|Socket errors' "$f"; then
        issue "$label: $(grep -E 'Non-2xx|Socket errors' "$f" | tr -s ' ' | paste -sd ';') of $(awk '/requests in/{print $1}' "$f") requests"
    fi
    awk '/Requests\/sec/{printf "%.0f\n", $2}' "$f"
}
# lat_ms FILE PCT: a percentile of wrk --latency output, in milliseconds.
lat_ms() {
    awk -v p="$2%" '$1 == p { v = $2
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
        else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.3f", v }' "$1"
}

# --- servers -----------------------------------------------------------------
cat >"$WORK/ready.py" <<'PY'
# ready.py PORT PID TIMEOUT: polls GET /healthz every 2 ms until 200; prints the
# wall-clock time it answered (epoch seconds). Exits 1 if the server dies first.
import os, socket, sys, time
port, pid, deadline = int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if s.recv(32).startswith(b"HTTP/1.1 200"):
                print("%.6f" % time.time())
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.002)
sys.exit(1)
PY

# start_apikeyd DB LOG ARGS...: serves DB on a fresh port; sets SRV_PID, SRV_PORT,
# SRV_LOG and SRV_STARTUP (seconds from exec to the first /healthz 200).
start_apikeyd() {
    local db=$1 log=$2 t0 t1
    shift 2
    SRV_PORT=$(port)
    SRV_LOG=$log
    t0=$EPOCHREALTIME
    # shellcheck disable=SC2086 # SRV_WRAP: an optional prefix such as "taskset -c 1" (it execs, same pid)
    ${SRV_WRAP:-} "$APIKEYD" serve --db "$db" --listen "127.0.0.1:$SRV_PORT" "$@" 2>>"$log" &
    SRV_PID=$!
    SRV_DEAD=0
    PIDS+=("$SRV_PID")
    t1=$("$PY" "$WORK/ready.py" "$SRV_PORT" "$SRV_PID" 120) || die "apikeyd did not start: $(tail -3 "$log")"
    SRV_STARTUP=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
}
# new_key LABEL PRIMARY BODY: creates a key on the running server with PRIMARY's authority and
# prints it; dies unless the answer is 201 (the answer stays in $WORK/LABEL.json).
new_key() {
    local code
    code=$(curl -s -o "$WORK/$1.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$SRV_PORT/v1/account/api-keys/")
    [ "$code" = 201 ] || die "creating a key ($1) answered $code: $(cat "$WORK/$1.json")"
    json_get api_key <"$WORK/$1.json"
}

# alive LABEL: 0 while the server runs; reports its death once as an issue (the
# run goes on: each section starts its own server).
alive() {
    kill -0 "$SRV_PID" 2>/dev/null && return 0
    [ "$SRV_DEAD" = 1 ] && return 1
    local rc=0 why=""
    SRV_DEAD=1
    wait "$SRV_PID" || rc=$?
    grep -qE 'SIG(TERM|INT) received' "$SRV_LOG" && why=" -- a signal from outside this script (another process on the machine?)"
    [ "$rc" -gt 128 ] && why=" -- killed by signal $((rc - 128))$(kill -l $((rc - 128)) 2>/dev/null | sed 's/^/ SIG/')"
    issue "apikeyd died during $1 (exit status $rc$why): $(grep -vE '^[0-9]{4}-' "$SRV_LOG" | tail -3 | paste -sd '|')"
    return 1
}
# What a server says on stderr when all is well (without its access log).
EXPECTED_LOG='^apikeyd: (listening on |SIGTERM received, shutting down$)'
# stop_apikeyd LABEL: SIGTERM, wait; sets SRV_STOP (seconds). Unexpected log lines become issues.
stop_apikeyd() {
    local rc=0 t0=$EPOCHREALTIME
    SRV_STOP=-
    alive "$1" || return 0
    kill -TERM "$SRV_PID"
    wait "$SRV_PID" || rc=$?
    SRV_STOP=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b - a}')
    [ "$rc" = 0 ] || issue "apikeyd ($1) exited with status $rc on SIGTERM: $(tail -3 "$SRV_LOG" | paste -sd '|')"
    if [ "${2:-}" != access-log ] && grep -qvE "$EXPECTED_LOG" "$SRV_LOG"; then
        issue "apikeyd ($1) logged: $(grep -vE "$EXPECTED_LOG" "$SRV_LOG" | sort | uniq -c | sort -rn | head -5 | paste -sd '|')"
    fi
}
rss_mb() { awk '/^VmRSS:/{printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo -; }

# References for [b], [c] and [e]: limit.c and nginx, configured as compare.sh does.
REFS_UP=0
start_refs() {
    [ "$REFS_UP" = 1 ] && return 0
    cc -O2 -o "$WORK/limit" "$SHARED/limit.c" -lh2o-evloop -lpthread -lssl -lcrypto
    LP=$(port)
    "$WORK/limit" "$LP" 2 "$KEY" &
    PIDS+=($!)
    NP=$(port)
    mkdir -p "$WORK/html/list"
    sed -n '/^static const char BODY/,/;$/p' "$SHARED/limit.c" | grep -o '"[^;]*"' |
        "$PY" -c 'import sys,ast; print("".join(ast.literal_eval(l) for l in sys.stdin.read().split("\n") if l.strip()),end="")' \
            >"$WORK/html/list/index.json"
    cat >"$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  map_hash_bucket_size 256;
  map \$http_authorization \$authok { "Bearer $KEY" 1; default 0; }
  server {
    listen 127.0.0.1:$NP reuseport;
    root $WORK/html;
    default_type application/json;
    location /list/ { if (\$authok = 0) { return 401; } index index.json; }
  }
}
NGX
    nginx -c "$WORK/nginx.conf"
    LIMIT_URL="http://127.0.0.1:$LP/"
    NGINX_URL="http://127.0.0.1:$NP/list/"
    sleep 0.3
    local u
    for u in "$LIMIT_URL" "$NGINX_URL"; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$u")" = 200 ] || die "reference $u not answering"
    done
    REFS_UP=1
}

# --- machine -----------------------------------------------------------------
hdr "machine"
CPU=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
MEM=$(free -h | awk '/^Mem:/{print $2}')
say "cpu: $CPU; nproc: $(nproc); memory: $MEM; kernel: $(uname -r)"
say "apikeyd: $("$APIKEYD" --version) build/ ($BUILD_TYPE); wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}'); $(nginx -v 2>&1 | sed 's/.*: //')"
# busy_pct: how busy the CPUs are (percent, all cores) over one second.
busy_pct() {
    local u1 n1 s1 i1 w1 q1 o1 u2 n2 s2 i2 w2 q2 o2
    read -r _ u1 n1 s1 i1 w1 q1 o1 _ </proc/stat
    sleep 1
    read -r _ u2 n2 s2 i2 w2 q2 o2 _ </proc/stat
    echo $(((u2 + n2 + s2 + q2 + o2 - u1 - n1 - s1 - q1 - o1) * 100 / (u2 + n2 + s2 + i2 + w2 + q2 + o2 - u1 - n1 - s1 - i1 - w1 - q1 - o1 + 1)))
}
BUSY=$(busy_pct)
say "CPU busy with other work before the run: $BUSY%$([ "$BUSY" -gt 10 ] && echo " -- expect noisy figures")"
res machine_cpu "\"$CPU\""
res machine_nproc "$(nproc)"
res machine_mem "$MEM"
res build_type "$BUILD_TYPE"
res cpu_busy_before_pct "$BUSY"
res git_commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- src 2>/dev/null || echo +dirty-src)"

# --- the small database: an account with two keys, and a writer account -------
SMALL=$WORK/small.db
KEY=$("$APIKEYD" account create --db "$SMALL" --name bench | json_get api_key)
WRITER_KEY=$("$APIKEYD" account create --db "$SMALL" --name writer | json_get api_key)
start_apikeyd "$SMALL" "$WORK/setup.log" --no-access-log
code=$(curl -s -o "$WORK/second.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -d '{"name":"Development Key","key_type":"sandbox"}' \
    "http://127.0.0.1:$SRV_PORT/v1/account/api-keys/")
[ "$code" = 201 ] || die "creating the second key answered $code: $(cat "$WORK/second.json")"
stop_apikeyd setup
LIST_PATH=/v1/account/api-keys/
VERIFY_PATH=/v1/auth/verify

# --- [a] compare.sh ----------------------------------------------------------
ratio_of() { sed -n 's/.*ratio_vs_nginx=\([0-9.]*\) ratio_vs_limit=\([0-9.]*\).*/\1 \2/p' "$1" | tail -1; }
compare() { # compare LABEL URL: runs compare.sh, prints its table, records ratios
    local label=$1 url=$2 f="$OUT/compare-$1.txt" r
    if ! bash "$SHARED/compare.sh" "$url" "$KEY" "$CMP_SECS" "$CMP_ROUNDS" >"$f" 2>&1; then issue "compare.sh $label failed: $(tail -2 "$f" | paste -sd '|')"; fi
    sed 's/^/  /' "$f"
    if grep -qE 'unable to connect|errors from|non-2xx' "$f"; then
        issue "compare.sh $label: $(grep -E 'unable to connect|errors from|non-2xx' "$f" | sort | uniq -c | paste -sd '|') (its medians may rest on fewer rounds)"
    fi
    r=$(ratio_of "$f")
    res "${label}_vs_nginx" "${r% *}"
    res "${label}_vs_limit" "${r#* }"
}
if want a; then
    hdr "[a] compare.sh (${CMP_ROUNDS} rounds of ${CMP_SECS} s, wrk -t2 -c64), account with two keys, --no-access-log"
    start_apikeyd "$SMALL" "$WORK/a.log" --no-access-log
    say "GET $LIST_PATH"
    compare list "http://127.0.0.1:$SRV_PORT$LIST_PATH"
    say "GET $VERIFY_PATH"
    compare verify "http://127.0.0.1:$SRV_PORT$VERIFY_PATH"
    stop_apikeyd a
    say "GET $LIST_PATH with the access log on (stderr to a file)"
    start_apikeyd "$SMALL" "$WORK/access.log"
    compare list_log "http://127.0.0.1:$SRV_PORT$LIST_PATH"
    stop_apikeyd a-access-log access-log
    res access_log_lines "$(wc -l <"$WORK/access.log")"
    res access_log_mb "$(du -m "$WORK/access.log" | cut -f1)"
    say "  access log: ${R[access_log_lines]} lines, ${R[access_log_mb]} MB; sample: $(sed -n 5p "$WORK/access.log")"
    # Every line is the start-up/shutdown message, ready.py's /healthz, or a 200 for the list.
    bad=$(grep -vE "$EXPECTED_LOG" "$WORK/access.log" | grep -v ' GET /healthz 200 ' | grep -cv "^[0-9TZ:-]* GET $LIST_PATH 200 ml_prod_" || true)
    [ "$bad" = 0 ] || issue "access log: $bad unexpected lines: $(grep -vE "$EXPECTED_LOG" "$WORK/access.log" | grep -v ' GET /healthz 200 ' | grep -v " GET $LIST_PATH 200 " | sort | uniq -c | sort -rn | head -3 | paste -sd '|')"
    say "a: list ratio_vs_nginx=${R[list_vs_nginx]} ratio_vs_limit=${R[list_vs_limit]}"
    say "a: verify ratio_vs_nginx=${R[verify_vs_nginx]} ratio_vs_limit=${R[verify_vs_limit]}"
    say "a: list+access-log ratio_vs_nginx=${R[list_log_vs_nginx]} ratio_vs_limit=${R[list_log_vs_limit]}"
fi

# --- [b] latency at 64 connections -------------------------------------------
if want b; then
    hdr "[b] latency: wrk --latency -t2 -c64 -d${LAT_SECS}s"
    start_refs
    start_apikeyd "$SMALL" "$WORK/b.log" --no-access-log
    printf '%-10s %12s %10s %10s\n' who req/s p50_ms p99_ms
    for who in list verify nginx limit; do
        case $who in
        list) url="http://127.0.0.1:$SRV_PORT$LIST_PATH" ;;
        verify) url="http://127.0.0.1:$SRV_PORT$VERIFY_PATH" ;;
        nginx) url=$NGINX_URL ;;
        limit) url=$LIMIT_URL ;;
        esac
        rps=$(wrkrun "b-latency-$who" --latency -t2 -c64 -d"${LAT_SECS}s" -H "Authorization: Bearer $KEY" "$url")
        f="$OUT/wrk/b-latency-$who.txt"
        res "lat_${who}_rps" "$rps"
        res "lat_${who}_p50_ms" "$(lat_ms "$f" 50)"
        res "lat_${who}_p99_ms" "$(lat_ms "$f" 99)"
        printf '%-10s %12s %10s %10s\n' "$who" "$rps" "${R[lat_${who}_p50_ms]}" "${R[lat_${who}_p99_ms]}"
    done
    stop_apikeyd b
    # Context: the same with one core each, so that wrk does not preempt the
    # server (on 2 cores with wrk -t2 and 2 server threads, the tail is mostly
    # time-slicing). Not a target, a way to read the one above.
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        say "context, one core each: server (--threads 1, limit with 1 thread) on CPU 1, wrk -t1 -c64 on CPU 0"
        SRV_WRAP="taskset -c 1" start_apikeyd "$SMALL" "$WORK/b1.log" --no-access-log --threads 1
        L1P=$(port)
        taskset -c 1 "$WORK/limit" "$L1P" 1 "$KEY" &
        L1PID=$!
        PIDS+=("$L1PID")
        sleep 0.3
        for who in list verify limit; do
            case $who in
            list) url="http://127.0.0.1:$SRV_PORT$LIST_PATH" ;;
            verify) url="http://127.0.0.1:$SRV_PORT$VERIFY_PATH" ;;
            limit) url="http://127.0.0.1:$L1P/" ;;
            esac
            rps=$(WRK_WRAP="taskset -c 0" wrkrun "b-latency-1core-$who" --latency -t1 -c64 -d"${LAT_SECS}s" -H "Authorization: Bearer $KEY" "$url")
            f="$OUT/wrk/b-latency-1core-$who.txt"
            res "lat1_${who}_rps" "$rps"
            res "lat1_${who}_p50_ms" "$(lat_ms "$f" 50)"
            res "lat1_${who}_p99_ms" "$(lat_ms "$f" 99)"
            printf '%-10s %12s %10s %10s\n' "$who" "$rps" "${R[lat1_${who}_p50_ms]}" "${R[lat1_${who}_p99_ms]}"
        done
        kill "$L1PID" 2>/dev/null || true
        wait "$L1PID" 2>/dev/null || true
        stop_apikeyd b-1core
    fi
    say "b: p99_ms list=${R[lat_list_p99_ms]} verify=${R[lat_verify_p99_ms]} nginx=${R[lat_nginx_p99_ms]} limit=${R[lat_limit_p99_ms]}"
fi

# --- [c] a million keys --------------------------------------------------------
if want c; then
    NKEYS=$((BIG_ACCOUNTS * BIG_KEYS_PER_ACCOUNT))
    hdr "[c] $NKEYS keys in $BIG_ACCOUNTS accounts"
    start_refs
    BIG=$WORK/big.db
    t0=$EPOCHREALTIME
    "$BULKLOAD" --db "$BIG" --accounts "$BIG_ACCOUNTS" --keys-per-account "$BIG_KEYS_PER_ACCOUNT" --out "$WORK/keys.txt" | sed 's/^/  /'
    res bulkload_s "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b - a}')"
    res bulkload_db_mb "$(du -m "$BIG" | cut -f1)"
    sync # start-up is timed without the load's write-back competing for the machine
    starts=""
    for i in $(seq "$STARTS"); do
        start_apikeyd "$BIG" "$WORK/c.log" --no-access-log
        starts+="$SRV_STARTUP "
        [ "$i" = "$STARTS" ] || stop_apikeyd c-start
    done
    res startup_s "$(echo "$starts" | med)"
    res startup_runs "\"${starts% }\""
    res rss_start_mb "$(rss_mb "$SRV_PID")"
    say "start-up (exec to /healthz 200): ${R[startup_s]} s median of: ${starts% }; VmRSS after start-up: ${R[rss_start_mb]} MB"
    # Sanity: the first, a middle and the last key verify.
    for n in 1 $((NKEYS / 2)) "$NKEYS"; do
        k=$(sed -n "${n}p" "$WORK/keys.txt")
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $k" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH")
        [ "$code" = 204 ] || issue "key $n of the bulk load answered $code on verify"
    done
    echo "$KEY" >"$WORK/limit-key.txt"
    rr="" rf="" rl=""
    for r in $(seq "$RAND_ROUNDS"); do
        rr+="$(KEYS_FILE="$WORK/keys.txt" KEYS_SHARDS=2 wrkrun "c-random-$r" -t2 -c64 -d"${RAND_SECS}s" -s "$ROOT/bench/random_keys.lua" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        k=$(sed -n 1p "$WORK/keys.txt")
        rf+="$(wrkrun "c-onekey-$r" -t2 -c64 -d"${RAND_SECS}s" -H "Authorization: Bearer $k" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        rl+="$(KEYS_FILE="$WORK/limit-key.txt" KEYS_SHARDS=1 wrkrun "c-limit-$r" -t2 -c64 -d"${RAND_SECS}s" -s "$ROOT/bench/random_keys.lua" "$LIMIT_URL") "
        alive c || break
    done
    res rss_after_mb "$(rss_mb "$SRV_PID")"
    res random_verify_rps "$(echo "$rr" | med)"
    res onekey_verify_rps "$(echo "$rf" | med)"
    res random_limit_rps "$(echo "$rl" | med)"
    res random_vs_limit "$(div "${R[random_verify_rps]}" "${R[random_limit_rps]}")"
    stop_apikeyd c
    res shutdown_s "$SRV_STOP"
    printf '%-28s %12s   runs\n' who 'req/s(med)'
    printf '%-28s %12s   %s\n' "verify, random of $NKEYS" "${R[random_verify_rps]}" "$rr" \
        "verify, one key (context)" "${R[onekey_verify_rps]}" "$rf" "limit (same Lua script)" "${R[random_limit_rps]}" "$rl"
    say "VmRSS after the random-key runs: ${R[rss_after_mb]} MB; SIGTERM to exit: ${R[shutdown_s]} s"
    say "c: startup_s=${R[startup_s]} rss_start_mb=${R[rss_start_mb]} rss_after_mb=${R[rss_after_mb]} random_vs_limit=${R[random_vs_limit]}"
fi

# --- [d] reads while a writer creates keys -------------------------------------
if want d; then
    hdr "[d] reads (wrk -t2 -c64) with and without a writer (wrk -t1 -c1 POST, another account), ${WR_ROUNDS} rounds of ${WR_SECS} s"
    start_apikeyd "$SMALL" "$WORK/d.log" --no-access-log --max-keys "$WR_MAX_KEYS"
    declare -A W=([list_without]="" [list_with]="" [verify_without]="" [verify_with]="")
    wrates=""
    created=0
    for r in $(seq "$WR_ROUNDS"); do
        for ep in list verify; do
            [ $ep = list ] && url="http://127.0.0.1:$SRV_PORT$LIST_PATH" || url="http://127.0.0.1:$SRV_PORT$VERIFY_PATH"
            W[${ep}_without]+="$(wrkrun "d-$ep-without-$r" -t2 -c64 -d"${WR_SECS}s" -H "Authorization: Bearer $KEY" "$url") "
            wrkrun "d-$ep-writer-$r" -t1 -c1 -d"$((WR_SECS + 1))s" -s "$ROOT/bench/create_keys.lua" \
                -H "Authorization: Bearer $WRITER_KEY" "http://127.0.0.1:$SRV_PORT$LIST_PATH" >"$WORK/writer.rps" &
            wpid=$!
            sleep 0.5
            W[${ep}_with]+="$(wrkrun "d-$ep-with-$r" -t2 -c64 -d"${WR_SECS}s" -H "Authorization: Bearer $KEY" "$url") "
            wait "$wpid" || true
            wrates+="$(cat "$WORK/writer.rps") "
            f="$OUT/wrk/d-$ep-writer-$r.txt"
            n=$(awk '/requests in/{print $1}' "$f")
            bad=$(awk '/Non-2xx/{print $NF}' "$f")
            created=$((created + ${n:-0} - ${bad:-0}))
            alive d || break 2
        done
    done
    # The writer account must now hold its primary key and every key created.
    have=$(curl -s -H "Authorization: Bearer $WRITER_KEY" "http://127.0.0.1:$SRV_PORT$LIST_PATH" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["api_keys"]))' 2>/dev/null || echo 0)
    drift=$((have - 1 - created))
    [ "${drift#-}" -le $((2 * WR_ROUNDS)) ] || issue "writer: wrk counted $created keys created (2xx), the list shows $((have - 1))"
    stop_apikeyd d
    for k in list_without list_with verify_without verify_with; do res "wr_${k}_rps" "$(echo "${W[$k]}" | med)"; done
    res wr_writer_rps "$(echo "$wrates" | med)"
    res wr_keys_created "$created"
    res writer_list_ratio "$(div "${R[wr_list_with_rps]}" "${R[wr_list_without_rps]}")"
    res writer_verify_ratio "$(div "${R[wr_verify_with_rps]}" "${R[wr_verify_without_rps]}")"
    printf '%-22s %12s   runs\n' who 'req/s(med)'
    for k in list_without list_with verify_without verify_with; do printf '%-22s %12s   %s\n' "$k" "${R[wr_${k}_rps]}" "${W[$k]}"; done
    say "writer: ${R[wr_writer_rps]} keys/s (median), $created keys created in all; the list shows $((have - 1))"
    say "d: writer_list_ratio=${R[writer_list_ratio]} writer_verify_ratio=${R[writer_verify_ratio]}"
fi

# --- [e] throughput against connections ----------------------------------------
if want e; then
    hdr "[e] throughput against connections (wrk -d${SWEEP_SECS}s, -t2, -t1 at 1 connection)"
    start_refs
    start_apikeyd "$SMALL" "$WORK/e.log" --no-access-log
    DAT=$OUT/sweep.dat
    printf '# connections apikeyd_verify apikeyd_list nginx limit (requests/s; wrk -d%ss on loopback)\n' "$SWEEP_SECS" >"$DAT"
    printf '%6s %14s %14s %10s %10s\n' conns apikeyd_verify apikeyd_list nginx limit
    for c in $SWEEP_CONNS; do
        t=2
        [ "$c" -lt 2 ] && t=1
        row="$c"
        for who in verify list nginx limit; do
            case $who in
            verify) url="http://127.0.0.1:$SRV_PORT$VERIFY_PATH" ;;
            list) url="http://127.0.0.1:$SRV_PORT$LIST_PATH" ;;
            nginx) url=$NGINX_URL ;;
            limit) url=$LIMIT_URL ;;
            esac
            row+=" $(wrkrun "e-c$c-$who" -t$t -c"$c" -d"${SWEEP_SECS}s" -H "Authorization: Bearer $KEY" "$url")"
        done
        echo "$row" >>"$DAT"
        # shellcheck disable=SC2086
        printf '%6s %14s %14s %10s %10s\n' $row
        alive e || break
    done
    stop_apikeyd e
    if [ "$HAVE_GNUPLOT" = 1 ]; then
        term="png size 960,600"
        gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && term="pngcairo size 960,600 font 'sans,11'"
        if ! gnuplot <<GP; then issue "gnuplot failed"; fi
set terminal $term
set output '$ROOT/docs/benchmarks.png'
set title "Throughput against connections: wrk on loopback, ${SWEEP_SECS} s per point, 2-core machine ($(date -u +%F))"
set xlabel 'keep-alive connections (wrk -t2; -t1 at 1)'
set ylabel 'requests/s'
set logscale x 2
set xrange [0.8:320]
set yrange [0:*]
set format y '%.0s%c'
set grid
set key below
plot '$DAT' using 1:5 with linespoints lw 2 pt 7 title 'limit.c (bare libh2o, fixed key)', \
     '' using 1:2 with linespoints lw 2 pt 5 title 'apikeyd GET /v1/auth/verify', \
     '' using 1:3 with linespoints lw 2 pt 9 title 'apikeyd GET /v1/account/api-keys/', \
     '' using 1:4 with linespoints lw 2 pt 13 title 'nginx (static list behind a map)'
GP
        say "plot: docs/benchmarks.png ($term), data: $DAT"
    fi
fi

# --- [f] issue 9: the key hot path before and after --------------------------------
# With APIKEYD_BEFORE_BIN=<an apikeyd built from an older commit>, list and verify of both
# binaries against limit, interleaved in the same rounds: each binary serves its own database
# (made by itself: the old one cannot open a newer schema) holding the same shape of account
# (a primary key and a sandbox key made through the API); limit runs with this run's key.
BEFORE_BIN=${APIKEYD_BEFORE_BIN:-}
F_SECS=4 F_ROUNDS=5
second_key() { # second_key PORT KEY: the sandbox key, through the API
    local code
    code=$(curl -s -o "$WORK/second-$1.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' -d '{"name":"Development Key","key_type":"sandbox"}' \
        "http://127.0.0.1:$1/v1/account/api-keys/")
    [ "$code" = 201 ] || die "creating the second key answered $code: $(cat "$WORK/second-$1.json")"
}
# before_after SECTION AFTER_DB AFTER_KEY: the rounds of [f] (and [h]) for build/apikeyd serving
# AFTER_DB (AFTER_KEY is its key for list and verify) against $BEFORE_BIN; results SECTION_*.
before_after() {
    local sec=$1 adb=$2 akey=$3 r ep p order who url k
    say "before: $BEFORE_BIN ($("$BEFORE_BIN" --version)); after: $APIKEYD ($("$APIKEYD" --version))"
    start_refs
    BSMALL=$WORK/$sec-before.db
    rm -f "$BSMALL"
    BKEY=$("$BEFORE_BIN" account create --db "$BSMALL" --name bench | json_get api_key)
    APIKEYD=$BEFORE_BIN start_apikeyd "$BSMALL" "$WORK/$sec-before.log" --no-access-log
    B_PID=$SRV_PID B_PORT=$SRV_PORT B_LOG=$SRV_LOG
    second_key "$B_PORT" "$BKEY"
    start_apikeyd "$adb" "$WORK/$sec-after.log" --no-access-log
    A_PID=$SRV_PID A_PORT=$SRV_PORT A_LOG=$SRV_LOG
    declare -A F=()
    for r in $(seq "$F_ROUNDS"); do
        for ep in list verify; do
            [ $ep = list ] && p=$LIST_PATH || p=$VERIFY_PATH
            # the order turns each round, so that drift within a round hits all three alike
            order="after before limit"
            [ $((r % 3)) = 2 ] && order="before limit after"
            [ $((r % 3)) = 0 ] && order="limit after before"
            for who in $order; do
                case $who in
                after) url="http://127.0.0.1:$A_PORT$p" k=$akey ;;
                before) url="http://127.0.0.1:$B_PORT$p" k=$BKEY ;;
                limit) url=$LIMIT_URL k=$KEY ;;
                esac
                F[${ep}_$who]+="$(wrkrun "$sec-$ep-$who-$r" -t2 -c64 -d"${F_SECS}s" -H "Authorization: Bearer $k" "$url") "
            done
        done
    done
    SRV_PID=$A_PID SRV_LOG=$A_LOG SRV_DEAD=0 stop_apikeyd "$sec-after"
    SRV_PID=$B_PID SRV_LOG=$B_LOG SRV_DEAD=0 stop_apikeyd "$sec-before"
    printf '%-16s %12s   runs\n' who 'req/s(med)'
    for ep in list verify; do
        for who in after before limit; do
            res "${sec}_${ep}_${who}_rps" "$(echo "${F[${ep}_$who]}" | med)"
            printf '%-16s %12s   %s\n' "$ep $who" "${R[${sec}_${ep}_${who}_rps]}" "${F[${ep}_$who]}"
        done
        res "${sec}_${ep}_after_vs_limit" "$(div "${R[${sec}_${ep}_after_rps]}" "${R[${sec}_${ep}_limit_rps]}")"
        res "${sec}_${ep}_before_vs_limit" "$(div "${R[${sec}_${ep}_before_rps]}" "${R[${sec}_${ep}_limit_rps]}")"
        # the quotient from the medians themselves (the two ratios above are rounded)
        res "${sec}_${ep}_after_over_before" "$(awk -v a="${R[${sec}_${ep}_after_rps]}" -v b="${R[${sec}_${ep}_before_rps]}" 'BEGIN{ if (b > 0) printf "%.3f", a / b; else print "-" }')"
        say "$sec: $ep after/limit=${R[${sec}_${ep}_after_vs_limit]} before/limit=${R[${sec}_${ep}_before_vs_limit]} quotient=${R[${sec}_${ep}_after_over_before]}"
    done
}
if want f && [ -z "$BEFORE_BIN" ]; then
    hdr "[f] hot path before/after: skipped (set APIKEYD_BEFORE_BIN=path/to/older/apikeyd; see docs/benchmarks.md)"
elif want f; then
    [ -x "$BEFORE_BIN" ] || die "APIKEYD_BEFORE_BIN=$BEFORE_BIN is not an executable"
    hdr "[f] hot path before/after: ${F_ROUNDS} interleaved rounds of ${F_SECS} s (wrk -t2 -c64), account with two keys, --no-access-log"
    before_after f "$SMALL" "$KEY"
fi

# --- [h] issue 10: the hot path before and after, with an expiry on every key -----------
# As [f], but the after binary serves an account whose keys all carry an expires_at (30 days
# ahead, so that verify answers without X-Key-Expires-At), but the primary, which cannot
# have one: the keys listed and verified are a production and a sandbox key made through
# the API with expires_at. The before binary's account is [f]'s (no expiry: it has none).
if want h && [ -z "$BEFORE_BIN" ]; then
    hdr "[h] hot path before/after with expiry: skipped (set APIKEYD_BEFORE_BIN=path/to/older/apikeyd)"
elif want h; then
    [ -x "$BEFORE_BIN" ] || die "APIKEYD_BEFORE_BIN=$BEFORE_BIN is not an executable"
    hdr "[h] hot path before/after, every key of the after account with an expiry: ${F_ROUNDS} interleaved rounds of ${F_SECS} s"
    HDB=$WORK/h-after.db
    HPRIMARY=$("$APIKEYD" account create --db "$HDB" --name bench | json_get api_key)
    start_apikeyd "$HDB" "$WORK/h-setup.log" --no-access-log
    HEXP=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
    for kt in production sandbox; do
        code=$(curl -s -o "$WORK/h-$kt.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $HPRIMARY" \
            -H 'Content-Type: application/json' -d "{\"name\":\"Expiring $kt\",\"key_type\":\"$kt\",\"expires_at\":\"$HEXP\"}" \
            "http://127.0.0.1:$SRV_PORT/v1/account/api-keys/")
        [ "$code" = 201 ] || die "creating an expiring key answered $code: $(cat "$WORK/h-$kt.json")"
    done
    HKEY=$(json_get api_key <"$WORK/h-production.json")
    SRV_DEAD=0 stop_apikeyd h-setup
    before_after h "$HDB" "$HKEY"
fi

# --- [i] issue 12: restricted keys ---------------------------------------------------
# Verify of a key with 20 scopes and 32 CIDRs (loopback last, so every block is tried), asked
# for 3 scopes (X-Required-Scopes; one through a wildcard), against the plain verify of the
# primary key of the same server, interleaved in the same rounds; then 1,000,000 keys of which
# 10 % carry the same restrictions: start-up and VmRSS, and random verify against limit.
if want i; then
    hdr "[i] restricted keys: ${RESTR_ROUNDS} interleaved rounds of ${RESTR_SECS} s (wrk -t2 -c64)"
    start_refs
    IDB=$WORK/i.db
    IKEY=$("$APIKEYD" account create --db "$IDB" --name bench | json_get api_key)
    start_apikeyd "$IDB" "$WORK/i.log" --no-access-log
    ISCOPES='["api:a","api:b","api:c","api:d","api:e","audit:read","billing:read","billing:write","keys:read","posts:read","posts:write","s0:read","s1:read","s2:read","s3:read","s4:read","s5:read","s6:read","s7:read","users:*"]'
    IIPS='["10.0.0.0/8","172.16.0.0/12","192.168.0.0/16","198.51.100.0/24","203.0.113.0/24","100.64.0.0/10","192.0.2.0/24","198.18.0.0/15","2001:db8::/32","2001:db8:1::/48","fd00::/8","fe80::/10","11.0.0.0/8","12.0.0.0/8","13.0.0.0/8","14.0.0.0/8","15.0.0.0/8","16.0.0.0/8","17.0.0.0/8","18.0.0.0/8","19.0.0.0/8","20.0.0.0/8","21.0.0.0/8","22.0.0.0/8","23.0.0.0/8","24.0.0.0/8","25.0.0.0/8","26.0.0.0/8","27.0.0.0/8","28.0.0.0/8","29.0.0.0/8","127.0.0.0/8"]'
    RKEY=$(new_key i-key "$IKEY" "{\"name\":\"Restricted\",\"key_type\":\"production\",\"scopes\":$ISCOPES,\"allowed_ips\":$IIPS}")
    IWANT="posts:write billing:read users:admin"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $RKEY" -H "X-Required-Scopes: $IWANT" \
        "http://127.0.0.1:$SRV_PORT$VERIFY_PATH")
    [ "$code" = 204 ] || issue "[i] the restricted key answered $code on verify with X-Required-Scopes: $IWANT"
    ip="" ir=""
    for r in $(seq "$RESTR_ROUNDS"); do
        ip+="$(wrkrun "i-plain-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $IKEY" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        ir+="$(wrkrun "i-restricted-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $RKEY" -H "X-Required-Scopes: $IWANT" \
            "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        alive i || break
    done
    stop_apikeyd i
    res i_plain_rps "$(echo "$ip" | med)"
    res i_restricted_rps "$(echo "$ir" | med)"
    res i_restricted_vs_plain "$(div "${R[i_restricted_rps]}" "${R[i_plain_rps]}")"
    printf '%-36s %12s   runs\n' who 'req/s(med)'
    printf '%-36s %12s   %s\n' "verify, plain key" "${R[i_plain_rps]}" "$ip" \
        "verify, 20 scopes + 32 CIDRs, 3 asked" "${R[i_restricted_rps]}" "$ir"
    NKEYS=$((BIG_ACCOUNTS * BIG_KEYS_PER_ACCOUNT))
    say "$NKEYS keys in $BIG_ACCOUNTS accounts, 10 % of the non-primary keys with 20 scopes and 32 CIDRs"
    IBIG=$WORK/i-big.db
    "$BULKLOAD" --db "$IBIG" --accounts "$BIG_ACCOUNTS" --keys-per-account "$BIG_KEYS_PER_ACCOUNT" --restricted-percent 10 \
        --out "$WORK/i-keys.txt" | sed 's/^/  /'
    res i_restricted_keys "$(sqlite3 "$IBIG" 'SELECT count(*) FROM api_keys WHERE scopes IS NOT NULL')"
    sync
    # With [c]'s database at hand, its plain start-up is timed in turn with this one, for context.
    starts="" pstarts=""
    for n in $(seq "$STARTS"); do
        if [ -f "${BIG:-}" ]; then
            start_apikeyd "$BIG" "$WORK/i-plain.log" --no-access-log
            pstarts+="$SRV_STARTUP "
            stop_apikeyd i-plain
        fi
        start_apikeyd "$IBIG" "$WORK/i-big.log" --no-access-log
        starts+="$SRV_STARTUP "
        [ "$n" = "$STARTS" ] || stop_apikeyd i-start
    done
    res i_startup_s "$(echo "$starts" | med)"
    [ -z "$pstarts" ] || res i_plain_startup_s "$(echo "$pstarts" | med)"
    res i_rss_start_mb "$(rss_mb "$SRV_PID")"
    # Sanity: a restricted key of the load verifies from loopback (its last block) and asked for its scopes.
    k=$(sed -n 2p "$WORK/i-keys.txt")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $k" -H "X-Required-Scopes: $IWANT" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH")
    [ "$code" = 204 ] || issue "[i] restricted key 2 of the bulk load answered $code on verify"
    echo "$KEY" >"$WORK/limit-key.txt"
    rr="" rl=""
    for r in $(seq "$RAND_ROUNDS"); do
        rr+="$(KEYS_FILE="$WORK/i-keys.txt" KEYS_SHARDS=2 wrkrun "i-random-$r" -t2 -c64 -d"${RAND_SECS}s" -s "$ROOT/bench/random_keys.lua" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        rl+="$(KEYS_FILE="$WORK/limit-key.txt" KEYS_SHARDS=1 wrkrun "i-limit-$r" -t2 -c64 -d"${RAND_SECS}s" -s "$ROOT/bench/random_keys.lua" "$LIMIT_URL") "
        alive i-big || break
    done
    res i_rss_after_mb "$(rss_mb "$SRV_PID")"
    res i_random_vs_limit "$(div "$(echo "$rr" | med)" "$(echo "$rl" | med)")"
    stop_apikeyd i-big
    [ -z "$pstarts" ] || say "start-up of [c]'s plain 1M keys in the same turns: ${R[i_plain_startup_s]} s median of: ${pstarts% }"
    say "start-up: ${R[i_startup_s]} s median of: ${starts% }; VmRSS after start-up ${R[i_rss_start_mb]} MB, after the random run ${R[i_rss_after_mb]} MB; ${R[i_restricted_keys]} restricted keys"
    say "i: restricted_vs_plain=${R[i_restricted_vs_plain]} startup_s=${R[i_startup_s]} rss_start_mb=${R[i_rss_start_mb]} rss_after_mb=${R[i_rss_after_mb]} random_vs_limit=${R[i_random_vs_limit]}"
fi

# --- [j] issue 13: verify of a rate-limited key against the plain verify ----------------------
# One key with a rate limit it never reaches (10^9 a day: every request is counted, none is
# refused) and a quota it never spends (2^53-1 credits: every request spends one, leased in
# blocks) against the account's plain primary, interleaved like [i].
LIMITED_BODY='{"name":"Limited","key_type":"production","rate_limit":{"limit":1000000000,"window_seconds":86400},"remaining":9007199254740991}'
if want j; then
    hdr "[j] limited key (rate limit and quota): ${RESTR_ROUNDS} interleaved rounds of ${RESTR_SECS} s (wrk -t2 -c64)"
    start_refs
    JDB=$WORK/j.db
    JKEY=$("$APIKEYD" account create --db "$JDB" --name bench | json_get api_key)
    start_apikeyd "$JDB" "$WORK/j.log" --no-access-log
    LKEY=$(new_key j-key "$JKEY" "$LIMITED_BODY")
    curl -s -D "$WORK/j-head.txt" -o /dev/null -H "Authorization: Bearer $LKEY" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH"
    grep -qi '^ratelimit: "rate";r=.*"quota";r=' "$WORK/j-head.txt" || issue "[j] the limited key's verify carried no RateLimit fields"
    jp="" jl=""
    for r in $(seq "$RESTR_ROUNDS"); do
        jp+="$(wrkrun "j-plain-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $JKEY" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        jl+="$(wrkrun "j-limited-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $LKEY" "http://127.0.0.1:$SRV_PORT$VERIFY_PATH") "
        alive j || break
    done
    stop_apikeyd j
    res j_plain_rps "$(echo "$jp" | med)"
    res j_limited_rps "$(echo "$jl" | med)"
    res j_limited_vs_plain "$(div "${R[j_limited_rps]}" "${R[j_plain_rps]}")"
    printf '%-36s %12s   runs\n' who 'req/s(med)'
    printf '%-36s %12s   %s\n' "verify, plain key" "${R[j_plain_rps]}" "$jp" \
        "verify, rate limit + quota" "${R[j_limited_rps]}" "$jl"
    say "j: limited_vs_plain=${R[j_limited_vs_plain]}"
fi

# --- [g] issue 9 at scale: 100,000 accounts, 1,000,000 audit events ------------------
# Per backend: a database made by this apikeyd (account 1 with a real key, admin token 1),
# then bench/seed.sql straight into it (SQLite: the sqlite3 CLI; PostgreSQL: psql), then:
# start-up (exec to /healthz 200) x STARTS with 100,000 accounts of one key each; the
# listings' latency with one client (bench/listing_latency.py); bench/seed_second_key.sql
# and start-up again with 2 keys each. PostgreSQL is a throwaway cluster in $WORK (as the
# tests run it: unix socket, fsync=off), stopped and removed at the end.
G_ROUNDS=3 G_REQUESTS=500
PG_BINDIR=${APIKEYD_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGDIR=""
pg_stop() {
    [ -n "${PGDIR:-}" ] && [ -f "$PGDIR/data/postmaster.pid" ] &&
        runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1
    PGDIR=""
}
pg_start() { # a throwaway cluster in $WORK/pg; sets PGDIR, PGPORT
    [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && [ -x "$PG_BINDIR/initdb" ] || return 1
    PGDIR=$WORK/pg
    mkdir -p "$PGDIR"
    chown postgres "$PGDIR"
    PGPORT=$(port)
    runuser -u postgres -- "$PG_BINDIR/initdb" -D "$PGDIR/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$PGDIR/initdb.log" 2>&1 &&
        runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -o \
            "-c listen_addresses='' -k $PGDIR -p $PGPORT -c fsync=off -c full_page_writes=off" start >/dev/null &&
        psql -X -q -h "$PGDIR" -p "$PGPORT" -U postgres -d postgres -c 'CREATE DATABASE bench' >/dev/null
}
pg_sql() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGDIR" -p "$PGPORT" -U postgres -d bench "$@"; }
# dialect BACKEND FILE: the seed SQL in that backend's spelling (see bench/seed.sql)
dialect() {
    if [ "$1" = sqlite ]; then
        sed -e "s/@T0@/$G_T0/g; s/@TRUE@/1/g; s/@FALSE@/0/g" -e "s/@PAD8(\([^@]*\))@/printf('%08d', \1)/g" \
            -e "s/@DIGEST(\([^@]*\))@/sha3(\1, 256)/g" -e "s/@HEX(\([^@]*\))@/lower(hex(substr(sha3(\1, 256), 1, 8)))/g" "$2"
    else
        sed -e "s/@T0@/$G_T0/g; s/@TRUE@/true/g; s/@FALSE@/false/g" -e "s/@PAD8(\([^@]*\))@/lpad((\1)::text, 8, '0')/g" \
            -e "s/@DIGEST(\([^@]*\))@/sha256(convert_to(\1, 'UTF8'))/g" -e "s/@HEX(\([^@]*\))@/substr(md5(\1), 1, 16)/g" "$2"
    fi
}
# The listings' statements as the stores run them (first pages; the deep page as a cursor below the middle).
PLAN_QUERIES=(
    "SELECT * FROM accounts WHERE id > 0 ORDER BY id LIMIT 101"
    "SELECT * FROM accounts WHERE id > 50000 ORDER BY id LIMIT 101"
    "SELECT * FROM accounts WHERE id > 0 AND external_id = 'cus_00050001' LIMIT 101"
    "SELECT * FROM audit_events WHERE id < 9223372036854775807 ORDER BY id DESC LIMIT 101"
    "SELECT * FROM audit_events WHERE id < 500000 ORDER BY id DESC LIMIT 101"
    "SELECT * FROM audit_events WHERE account_id = 1 AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101"
    "SELECT * FROM audit_events WHERE action = 'account.suspended' AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101"
    "SELECT * FROM audit_events WHERE account_id = 1 AND action = 'key.deleted' AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101"
)
# PostgreSQL's store reads a filtered page in two steps (see pg_event_list); the direct forms
# above show the plan that this avoids.
PG_PLAN_QUERIES=(
    "SELECT * FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events WHERE account_id = 1 AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101)) ORDER BY id DESC"
    "SELECT * FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events WHERE action = 'account.suspended' AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101)) ORDER BY id DESC"
    "SELECT * FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events WHERE account_id = 1 AND action = 'key.deleted' AND id < 9223372036854775807 ORDER BY id DESC LIMIT 101)) ORDER BY id DESC"
)
g_startups() { # g_startups BACKEND LABEL: STARTS start-ups, median into results; the last server stays up
    local s="" i
    for i in $(seq "$STARTS"); do
        [ "$i" = 1 ] || stop_apikeyd "g-$1-$2"
        start_apikeyd "$G_DB" "$WORK/g-$1.log" --no-access-log "${G_SEC[@]}"
        s+="$SRV_STARTUP "
    done
    res "g_${1}_startup_${2}_s" "$(echo "$s" | med)"
    res "g_${1}_startup_${2}_runs" "\"${s% }\""
    say "start-up, 100,000 accounts, $2 (exec to /healthz 200): ${R[g_${1}_startup_${2}_s]} s median of: ${s% }; VmRSS $(rss_mb "$SRV_PID") MB"
}
G_CASES="accounts_first accounts_middle accounts_external_id audit_first audit_deep audit_account_id audit_action audit_both account_audit"
if want g; then
    hdr "[g] issue 9 at scale: 100,000 accounts, 1,000,000 audit events; listings with one client (${G_ROUNDS} rounds of ${G_REQUESTS} per case), start-up x${STARTS}"
    need sqlite3 sqlite3 || die "needs the sqlite3 CLI (apt-get install sqlite3)"
    G_T0=$(($(date +%s) - 25 * 1000000 - 60))
    for backend in sqlite postgres; do
        say "-- $backend"
        if [ $backend = sqlite ]; then
            G_DB=$WORK/scale.db G_SEC=()
        else
            if ! pg_start; then
                issue "[g] postgres: no throwaway cluster (needs root, a postgres user and $PG_BINDIR/initdb): skipped"
                pg_stop
                continue
            fi
            G_DB="postgresql://postgres@/bench?host=$PGDIR&port=$PGPORT"
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/pg.secret"
            echo >>"$WORK/pg.secret"
            chmod 600 "$WORK/pg.secret"
            G_SEC=(--secret-file "$WORK/pg.secret")
            say "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'), cluster in $PGDIR (unix socket, fsync=off)"
        fi
        G_KEY=$("$APIKEYD" account create --db "$G_DB" "${G_SEC[@]}" --name bench | json_get api_key)
        G_TOKEN=$("$APIKEYD" admin-token create --db "$G_DB" "${G_SEC[@]}" --name bench | json_get token)
        t0=$EPOCHREALTIME
        if [ $backend = sqlite ]; then
            { echo 'PRAGMA synchronous=OFF;'; dialect sqlite bench/seed.sql; } | sqlite3 -bail "$G_DB" || die "seeding $G_DB failed"
        else
            { dialect postgres bench/seed.sql
              for t in accounts api_keys audit_events; do echo "SELECT setval(pg_get_serial_sequence('$t', 'id'), (SELECT max(id) FROM $t));"; done
              echo 'VACUUM ANALYZE;'; } | pg_sql >/dev/null || die "seeding PostgreSQL failed"
        fi
        res "g_${backend}_seed_s" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b - a}')"
        say "seeded 100,000 accounts (one key each) and 1,000,000 events in ${R[g_${backend}_seed_s]} s$([ $backend = postgres ] && echo ', then VACUUM ANALYZE')"
        {
            for q in "${PLAN_QUERIES[@]}"; do
                echo "== $q"
                if [ $backend = sqlite ]; then sqlite3 "$G_DB" "EXPLAIN QUERY PLAN $q"; else pg_sql -c "EXPLAIN (ANALYZE, BUFFERS) $q"; fi
            done
            if [ $backend = postgres ]; then
                for q in "${PG_PLAN_QUERIES[@]}"; do
                    echo "== (as the store runs it) $q"
                    pg_sql -c "EXPLAIN (ANALYZE, BUFFERS) $q"
                done
            fi
        } >"$OUT/plans-$backend.txt" 2>&1
        g_startups $backend 1key
        "$PY" bench/listing_latency.py "$SRV_PORT" "$G_TOKEN" "$G_KEY" "$G_ROUNDS" "$G_REQUESTS" >"$OUT/listings-$backend.txt" 2>&1 ||
            issue "[g] $backend listing_latency.py failed: $(tail -2 "$OUT/listings-$backend.txt" | paste -sd '|')"
        grep -v '^RESULT ' "$OUT/listings-$backend.txt" | sed 's/^/  /'
        while read -r _ line; do issue "[g] $backend: $line"; done < <(grep '^ISSUE ' "$OUT/listings-$backend.txt" || true)
        for c in $G_CASES walk_accounts_1000 walk_audit_1000; do
            res "g_${backend}_${c}_p50_ms" "$(awk -v c="$c" '$1 == "RESULT" && $2 == c { sub(/p50_ms=/, "", $3); print $3 }' "$OUT/listings-$backend.txt")"
            res "g_${backend}_${c}_p99_ms" "$(awk -v c="$c" '$1 == "RESULT" && $2 == c { sub(/p99_ms=/, "", $4); print $4 }' "$OUT/listings-$backend.txt")"
        done
        stop_apikeyd "g-$backend"
        if [ $backend = sqlite ]; then
            dialect sqlite bench/seed_second_key.sql | sqlite3 -bail "$G_DB" || die "second keys failed"
        else
            { dialect postgres bench/seed_second_key.sql
              echo "SELECT setval(pg_get_serial_sequence('api_keys', 'id'), (SELECT max(id) FROM api_keys));"
              echo 'VACUUM ANALYZE api_keys;'; } | pg_sql >/dev/null || die "second keys failed"
        fi
        g_startups $backend 2keys
        stop_apikeyd "g-$backend"
        if [ $backend = postgres ]; then pg_stop; else rm -f "$G_DB" "$G_DB"-wal "$G_DB"-shm; fi
    done
    say "g: p99_ms (sqlite / postgres):$(for c in $G_CASES; do printf ' %s=%s/%s' "$c" "${R[g_sqlite_${c}_p99_ms]:--}" "${R[g_postgres_${c}_p99_ms]:--}"; done)"
fi

# --- [k] issue 13 across instances: [j] on each of 2 instances on one PostgreSQL ---------------
# Two instances on a throwaway cluster (pg_start); each round measures, on instance A then B,
# the plain primary and the limited key, interleaved. Both instances run the rate exchange
# (every 100 ms) and lease quota blocks meanwhile.
if want k; then
    hdr "[k] limited key on 2 PostgreSQL instances: ${RESTR_ROUNDS} rounds of ${RESTR_SECS} s per instance (wrk -t2 -c64)"
    if ! pg_start; then
        issue "[k] skipped: cannot start a PostgreSQL cluster (needs root, the postgres user, $PG_BINDIR)"
    else
        start_refs
        KURI="postgresql://postgres@/bench?host=$PGDIR&port=$PGPORT"
        KKEY=$("$APIKEYD" account create --db "$KURI" --secret-file "$WORK/k.secret" --name bench | json_get api_key)
        start_apikeyd "$KURI" "$WORK/k-a.log" --no-access-log --secret-file "$WORK/k.secret"
        KA_PID=$SRV_PID KA_PORT=$SRV_PORT KA_LOG=$SRV_LOG
        KLKEY=$(new_key k-key "$KKEY" "$LIMITED_BODY")
        start_apikeyd "$KURI" "$WORK/k-b.log" --no-access-log --secret-file "$WORK/k.secret"
        KB_PID=$SRV_PID KB_PORT=$SRV_PORT KB_LOG=$SRV_LOG
        for inst in a b; do
            port_var=K${inst^^}_PORT
            kport=${!port_var}
            until curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KLKEY" "http://127.0.0.1:$kport$VERIFY_PATH" | grep -q 204; do sleep 0.1; done
            kp="" kl=""
            for r in $(seq "$RESTR_ROUNDS"); do
                kp+="$(wrkrun "k-$inst-plain-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $KKEY" "http://127.0.0.1:$kport$VERIFY_PATH") "
                kl+="$(wrkrun "k-$inst-limited-$r" -t2 -c64 -d"${RESTR_SECS}s" -H "Authorization: Bearer $KLKEY" "http://127.0.0.1:$kport$VERIFY_PATH") "
            done
            res "k_${inst}_plain_rps" "$(echo "$kp" | med)"
            res "k_${inst}_limited_rps" "$(echo "$kl" | med)"
            res "k_${inst}_limited_vs_plain" "$(div "${R[k_${inst}_limited_rps]}" "${R[k_${inst}_plain_rps]}")"
            printf '%-36s %12s   %s\n' "instance $inst: verify, plain key" "${R[k_${inst}_plain_rps]}" "$kp" \
                "instance $inst: verify, rate limit + quota" "${R[k_${inst}_limited_rps]}" "$kl"
        done
        SRV_PID=$KB_PID SRV_PORT=$KB_PORT SRV_LOG=$KB_LOG SRV_DEAD=0
        stop_apikeyd k-b
        SRV_PID=$KA_PID SRV_PORT=$KA_PORT SRV_LOG=$KA_LOG SRV_DEAD=0
        stop_apikeyd k-a
        pg_stop
        say "k: a limited_vs_plain=${R[k_a_limited_vs_plain]} b limited_vs_plain=${R[k_b_limited_vs_plain]}"
    fi
fi

# --- [l] [m] [n] issue 15: gateway mode ----------------------------------------------------------
# The same request, GET /api/hello with a valid key (Authorization: Bearer), through each way of
# putting an API behind apikeyd (the files are in bench/gateway/):
#   upstream  the API: nginx answering every request 200 with a 39-byte JSON body (upstream.conf);
#             its stub_status counts the connections each proxy opens to it (keep-alive or not);
#   gateway   apikeyd serve --route /api=http://127.0.0.1:UPSTREAM (issue 15);
#   proxy     nginx as a plain reverse proxy, no authentication, keep-alive to the upstream
#             (proxy.conf: proxy_http_version 1.1, Connection "", keepalive 64);
#   authreq   docs/nginx-auth-request.conf with auth-request.sed's edits (a stated worker count, no
#             access log, reuseport, the same keep-alive to the upstream as proxy), its auth_request
#             to /v1/auth/verify of a second apikeyd (--verify-token, --trusted-proxies 127.0.0.1/32);
#   ceiling   the same file, its auth_request to nginx `return 204` (auth204.conf): the fastest
#             possible auth responder, so what auth_request itself costs;
#   shipped   docs/nginx-auth-request.conf with only its placeholders replaced (context);
#   direct    wrk straight to the upstream (context: what no proxy can beat).
# Every nginx has 2 workers and every apikeyd --threads 2 (as compare.sh's nginx and apikeyd's
# default on 2 cores), all sharing the 2 cores with wrk; one database with one account, copied
# for the second apikeyd.
GW_SECS=4 GW_ROUNDS=5 GW_LAT_SECS=5 GW_LAT_ROUNDS=3 GW_HOLD=64 GW_ISO_SECS=4 GW_ISO_ROUNDS=5 GW_SWEEP_SECS=2
GW_PATH=/api/hello
GW_TOKEN=bench-verify-token-6f1c2a9e4b7d3058
GW_EXPECTED_LOG='^apikeyd: (listening on |route /|SIGTERM received, shutting down$)'
declare -A NGX_PID=()
ngx_tpl() { # ngx_tpl NAME TEMPLATE WORKERS PORT [UPSTREAM_PORT]: bench/gateway/TEMPLATE.conf into $WORK/ngx-NAME/
    mkdir -p "$WORK/ngx-$1"
    sed -e "s/@WORKERS@/$3/g; s/@PORT@/$4/g; s/@UPSTREAM_PORT@/${5:-}/g" "$ROOT/bench/gateway/$2.conf" >"$WORK/ngx-$1/nginx.conf"
}
# ngx_ar NAME WORKERS PORT AUTH_PORT UPSTREAM_PORT [shipped]: docs/nginx-auth-request.conf into $WORK/ngx-NAME/,
# edited by bench/gateway/auth-request.sed unless "shipped", then its placeholders replaced.
ngx_ar() {
    local src=$ROOT/docs/nginx-auth-request.conf f=$WORK/ngx-$1/nginx.conf
    mkdir -p "$WORK/ngx-$1"
    if [ "${6:-}" = shipped ]; then cat "$src"; else sed -f "$ROOT/bench/gateway/auth-request.sed" "$src"; fi |
        sed -e "s/@WORKERS@/$2/g; s/@GATEWAY_PORT@/$3/g; s/@APIKEYD_PORT@/$4/g; s/@UPSTREAM_PORT@/$5/g; s/@VERIFY_TOKEN@/$GW_TOKEN/g" >"$f"
    ! grep -q '@[A-Z_]*@' "$f" || die "$f: placeholders left: $(grep -o '@[A-Z_]*@' "$f" | sort -u | paste -sd ' ')"
    [ "${6:-}" = shipped ] && return 0
    # every edit applied (docs/nginx-auth-request.conf may have changed under the sed script)
    if [ "$(grep -c '^worker_processes [0-9]*;$' "$f")" != 1 ] || [ "$(grep -c '^    access_log off;$' "$f")" != 1 ] ||
        [ "$(grep -c ' reuseport;$' "$f")" != 1 ] || [ "$(grep -c '^        keepalive 64;$' "$f")" != 1 ] ||
        [ "$(grep -c 'proxy_http_version 1\.1;' "$f")" != "$(grep -c 'proxy_pass http://' "$f")" ]; then
        die "bench/gateway/auth-request.sed no longer applies to docs/nginx-auth-request.conf as it did (see $f)"
    fi
}
# ngx_start NAME PORT: nginx on $WORK/ngx-NAME/nginx.conf in the foreground (behind $NGX_WRAP if
# set, e.g. "taskset -c 1"), its pid in PIDS; returns once PORT accepts connections.
ngx_start() {
    local d=$WORK/ngx-$1/ i
    nginx -q -t -p "$d" -c "${d}nginx.conf" >"${d}t.log" 2>&1 || die "nginx $1 refused its configuration: $(cat "${d}t.log")"
    # shellcheck disable=SC2086 # NGX_WRAP: an optional prefix (it execs, same pid)
    ${NGX_WRAP:-} nginx -p "$d" -c "${d}nginx.conf" -g 'daemon off;' 2>>"${d}stderr.log" &
    NGX_PID[$1]=$!
    PIDS+=("$!")
    for i in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        kill -0 "${NGX_PID[$1]}" 2>/dev/null || die "nginx $1 exited: $(cat "${d}stderr.log" "${d}error.log" 2>/dev/null | tail -3)"
        sleep 0.05
    done
    die "nginx $1 does not listen on $2"
}
ngx_stop() { # ngx_stop NAME: stops it; lines of its error log at level error or worse are issues
    local d=$WORK/ngx-$1/
    [ -n "${NGX_PID[$1]:-}" ] || return 0
    kill "${NGX_PID[$1]}" 2>/dev/null || true
    wait "${NGX_PID[$1]}" 2>/dev/null || true
    unset "NGX_PID[$1]"
    if grep -qE '\[(error|crit|alert|emerg)\]' "${d}error.log" 2>/dev/null; then
        issue "nginx $1 logged: $(grep -E '\[(error|crit|alert|emerg)\]' "${d}error.log" | sed 's/^[0-9/: ]*//; s/^\[[a-z]*\] [0-9#]*: \*[0-9]* //; s/, client:.*//' |
            sort | uniq -c | sort -rn | head -3 | paste -sd '|')"
    fi
}
gw_upstream() { # gw_upstream NAME WORKERS: the API (upstream.conf); sets GW_UP_PORT and GW_BODY
    GW_UP_PORT=$(port)
    ngx_tpl "$1" upstream "$2" "$GW_UP_PORT"
    ngx_start "$1" "$GW_UP_PORT"
    GW_BODY=$(curl -s "http://127.0.0.1:$GW_UP_PORT$GW_PATH")
    [ -n "$GW_BODY" ] || die "the upstream ($1) does not answer"
}
gw_db() { # one account (GKEY) in GDB, copied with its secret to GDB2 for a second apikeyd; once
    [ -n "${GKEY:-}" ] && return 0
    GDB=$WORK/gw.db GDB2=$WORK/gw2.db
    GKEY=$("$APIKEYD" account create --db "$GDB" --name bench | json_get api_key)
    local s
    for s in "" -wal -shm .secret; do [ ! -e "$GDB$s" ] || cp -p "$GDB$s" "$GDB2$s"; done
}
# gw_check LABEL URL [noauth]: dies unless URL answers the upstream's body to the key and, unless
# noauth, 401 without a key (the request never reaching the upstream).
gw_check() {
    local body code
    body=$(curl -s -H "Authorization: Bearer $GKEY" "$2")
    [ "$body" = "$GW_BODY" ] || die "$1: $2 with the key answered: $(curl -s -i -H "Authorization: Bearer $GKEY" "$2" | head -c 400)"
    [ "${3:-}" = noauth ] && return 0
    code=$(curl -s -o /dev/null -w '%{http_code}' "$2")
    [ "$code" = 401 ] || die "$1: $2 without a key answered $code, not 401"
}
up_count() { curl -s "http://127.0.0.1:$GW_UP_PORT/_status" | awk 'NR == 3 { print $1, $3 }'; } # accepts requests
# cpu_ticks PID...: user + system CPU time of these processes (all their threads), in clock ticks
cpu_ticks() {
    local p t=0
    for p; do t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
ngx_workers() { pgrep -P "${NGX_PID[$1]}" | paste -sd ' '; } # ngx_workers NAME: its worker processes
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# gw_wrk LABEL URL WRK-ARGS...: one wrkrun with the key, and the upstream's counters around it.
# Sets GW_RPS (req/s) and GW_CONNS (connections the upstream accepted during the run: the
# proxy's new connections), and GW_CPU_US: the CPU time of the processes in $GW_CPU_PIDS (the
# proxy and its auth responder) per request answered, in microseconds. The upstream must have
# answered as many requests as wrk completed, give or take those in flight when wrk stopped; if
# not, it is an issue.
gw_wrk() {
    local label=$1 url=$2 a0 r0 a1 r1 n up c0 c1
    shift 2
    read -r a0 r0 < <(up_count)
    # shellcheck disable=SC2086 # a list of pids
    c0=$(cpu_ticks ${GW_CPU_PIDS:-})
    GW_RPS=$(wrkrun "$label" "$@" -H "Authorization: Bearer $GKEY" "$url")
    # shellcheck disable=SC2086
    c1=$(cpu_ticks ${GW_CPU_PIDS:-})
    read -r a1 r1 < <(up_count)
    GW_CONNS=$((a1 - a0 - 1)) # stub_status counts the second status request's connection and request
    up=$((r1 - r0 - 1))
    n=$(awk '/requests in/{print $1}' "$OUT/wrk/$label.txt")
    GW_CPU_US=$(awk -v t=$((c1 - c0)) -v n="${n:-0}" -v u="$TICK_US" 'BEGIN{ if (n > 0) printf "%.1f", t * u / n; else print "-" }')
    if [ -z "$n" ] || [ "$up" -lt "$n" ] || [ "$up" -gt $((n + 600)) ]; then
        issue "$label: the upstream answered $up requests, wrk completed ${n:-none}"
    fi
}
gw_order() { # gw_order ROUND WHO...: WHO turned by ROUND (as [f]: drift within a round hits every one alike)
    local r=$1 i
    shift
    local w=("$@")
    for i in "${!w[@]}"; do printf '%s ' "${w[$(((i + r) % ${#w[@]}))]}"; done
}
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b }'; }
# per_round A-RUNS B-RUNS: the ratio of A to B in each round, rounded
per_round() { paste -d' ' <(echo "$1" | tr ' ' '\n' | grep .) <(echo "$2" | tr ' ' '\n' | grep .) | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $2 }'; }
gw_alive() { local p; for p; do kill -0 "$p" 2>/dev/null || return 1; done; } # gw_alive PID...
srv_stop() { # srv_stop PID LOG LABEL: stop_apikeyd for that server (its gateway log lines expected)
    SRV_PID=$1 SRV_LOG=$2 SRV_DEAD=0 EXPECTED_LOG=$GW_EXPECTED_LOG stop_apikeyd "$3"
}

# --- [l] throughput: the gateway against nginx, and the throughput against connections -------------
if want l; then
    hdr "[l] gateway: GET $GW_PATH with a valid key, ${GW_ROUNDS} interleaved rounds of ${GW_SECS} s (wrk -t2 -c64); every nginx 2 workers, every apikeyd --threads 2"
    gw_db
    gw_upstream l-upstream 2
    diff -u docs/nginx-auth-request.conf <(sed -f bench/gateway/auth-request.sed docs/nginx-auth-request.conf) \
        >"$OUT/gateway-auth-request.diff" || true
    start_apikeyd "$GDB" "$WORK/l-gateway.log" --no-access-log --threads 2 --route "/api=http://127.0.0.1:$GW_UP_PORT"
    LG_PID=$SRV_PID LG_PORT=$SRV_PORT LG_LOG=$SRV_LOG
    start_apikeyd "$GDB2" "$WORK/l-verify.log" --no-access-log --threads 2 --verify-token "$GW_TOKEN" --trusted-proxies 127.0.0.1/32
    LV_PID=$SRV_PID LV_PORT=$SRV_PORT LV_LOG=$SRV_LOG
    A204=$(port) PX=$(port) AR=$(port) AC=$(port) AS=$(port)
    ngx_tpl l-auth204 auth204 2 "$A204" && ngx_start l-auth204 "$A204"
    ngx_tpl l-proxy proxy 2 "$PX" "$GW_UP_PORT" && ngx_start l-proxy "$PX"
    ngx_ar l-authreq 2 "$AR" "$LV_PORT" "$GW_UP_PORT" && ngx_start l-authreq "$AR"
    ngx_ar l-ceiling 2 "$AC" "$A204" "$GW_UP_PORT" && ngx_start l-ceiling "$AC"
    ngx_ar l-shipped 2 "$AS" "$LV_PORT" "$GW_UP_PORT" shipped && ngx_start l-shipped "$AS"
    declare -A GURL=([gateway]="http://127.0.0.1:$LG_PORT$GW_PATH" [proxy]="http://127.0.0.1:$PX$GW_PATH"
        [authreq]="http://127.0.0.1:$AR$GW_PATH" [ceiling]="http://127.0.0.1:$AC$GW_PATH"
        [shipped]="http://127.0.0.1:$AS$GW_PATH" [direct]="http://127.0.0.1:$GW_UP_PORT$GW_PATH")
    gw_check "[l] gateway" "${GURL[gateway]}"
    gw_check "[l] authreq" "${GURL[authreq]}"
    gw_check "[l] shipped" "${GURL[shipped]}"
    for who in proxy ceiling direct; do gw_check "[l] $who" "${GURL[$who]}" noauth; done
    GW_WHO="gateway proxy authreq ceiling shipped direct"
    # whose CPU time counts for each (the proxy and its auth responder; for direct, the upstream)
    declare -A GCPU=([gateway]="$LG_PID" [proxy]="$(ngx_workers l-proxy)" [authreq]="$(ngx_workers l-authreq) $LV_PID"
        [ceiling]="$(ngx_workers l-ceiling) $(ngx_workers l-auth204)" [shipped]="$(ngx_workers l-shipped) $LV_PID"
        [direct]="$(ngx_workers l-upstream)")
    declare -A LR=() LC=() LU=()
    for r in $(seq "$GW_ROUNDS"); do
        # shellcheck disable=SC2086
        for who in $(gw_order "$r" $GW_WHO); do
            GW_CPU_PIDS=${GCPU[$who]} gw_wrk "l-$who-$r" "${GURL[$who]}" -t2 -c64 -d"${GW_SECS}s"
            LR[$who]+="$GW_RPS " LC[$who]+="$GW_CONNS " LU[$who]+="$GW_CPU_US "
        done
        gw_alive "$LG_PID" "$LV_PID" || break
    done
    say "upstream conns: connections the upstream accepted during a run (keep-alive reuse); CPU us/req: CPU time of the"
    say "proxy and its auth responder (direct: of the upstream) per request, wrk and upstream excluded"
    printf '%-9s %12s %14s %11s   %s\n' who 'req/s(med)' 'upstream conns' 'CPU us/req' 'runs: req/s / upstream conns / CPU us/req'
    for who in $GW_WHO; do
        res "l_${who}_rps" "$(echo "${LR[$who]}" | med)"
        res "l_${who}_upstream_conns" "\"${LC[$who]% }\""
        res "l_${who}_cpu_us_per_req" "$(echo "${LU[$who]}" | med)"
        printf '%-9s %12s %14s %11s   %s\n' "$who" "${R[l_${who}_rps]}" "$(echo "${LC[$who]}" | med)" "${R[l_${who}_cpu_us_per_req]}" \
            "${LR[$who]}/ ${LC[$who]}/ ${LU[$who]}"
    done
    for pair in gateway:proxy gateway:authreq gateway:ceiling authreq:proxy ceiling:proxy shipped:proxy gateway:shipped gateway:direct proxy:direct; do
        a=${pair%:*} b=${pair#*:}
        res "l_${a}_vs_${b}" "$(ratio3 "${R[l_${a}_rps]}" "${R[l_${b}_rps]}")"
    done
    say "per round: gateway/proxy $(per_round "${LR[gateway]}" "${LR[proxy]}"); gateway/authreq $(per_round "${LR[gateway]}" "${LR[authreq]}")"
    say "l: gateway/proxy=${R[l_gateway_vs_proxy]} gateway/authreq=${R[l_gateway_vs_authreq]} gateway/ceiling=${R[l_gateway_vs_ceiling]} authreq/proxy=${R[l_authreq_vs_proxy]} ceiling/proxy=${R[l_ceiling_vs_proxy]} shipped/proxy=${R[l_shipped_vs_proxy]} gateway/direct=${R[l_gateway_vs_direct]}"

    say "-- throughput against connections (wrk -d${GW_SWEEP_SECS}s, -t2, -t1 at 1 connection)"
    DATG=$OUT/gateway-sweep.dat
    printf '# connections gateway nginx_proxy nginx_auth_request_apikeyd nginx_auth_request_return_204 (requests/s; wrk -d%ss on loopback, GET %s)\n' "$GW_SWEEP_SECS" "$GW_PATH" >"$DATG"
    printf '%6s %10s %10s %10s %10s\n' conns gateway proxy authreq ceiling
    for c in $SWEEP_CONNS; do
        t=2
        [ "$c" -lt 2 ] && t=1
        row="$c"
        for who in gateway proxy authreq ceiling; do
            gw_wrk "l-sweep-c$c-$who" "${GURL[$who]}" -t$t -c"$c" -d"${GW_SWEEP_SECS}s"
            row+=" $GW_RPS"
        done
        echo "$row" >>"$DATG"
        # shellcheck disable=SC2086
        printf '%6s %10s %10s %10s %10s\n' $row
        gw_alive "$LG_PID" "$LV_PID" || break
    done
    for n in l-shipped l-ceiling l-authreq l-proxy l-auth204; do ngx_stop $n; done
    srv_stop "$LV_PID" "$LV_LOG" l-verify
    srv_stop "$LG_PID" "$LG_LOG" l-gateway
    ngx_stop l-upstream
    if [ "$HAVE_GNUPLOT" = 1 ]; then
        # docs/benchmarks.png holds [e]'s panel and this one, from the same run: without [e] in this
        # run, this panel goes to build/bench/gateway-sweep.png alone and the doc's plot is left as it is.
        if [ -s "$OUT/sweep.dat" ]; then gplot=$ROOT/docs/benchmarks.png panels=2; else gplot=$OUT/gateway-sweep.png panels=1; fi
        term="png size 960,$((panels * 575))"
        gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 && term="pngcairo size 960,$((panels * 575)) font 'sans,11'"
        {
            cat <<GP
set terminal $term
set termoption noenhanced
set output '$gplot'
set multiplot layout $panels,1
set xlabel 'keep-alive connections (wrk -t2; -t1 at 1)'
set ylabel 'requests/s'
set logscale x 2
set xrange [0.8:320]
set yrange [0:*]
set format y '%.0s%c'
set grid
set key below
GP
            # [e]'s panel, as [e] draws it
            [ "$panels" = 1 ] || cat <<GP
set title "Throughput against connections: wrk on loopback, ${SWEEP_SECS} s per point, 2-core machine ($(date -u +%F))"
plot '$OUT/sweep.dat' using 1:5 with linespoints lw 2 pt 7 title 'limit.c (bare libh2o, fixed key)', \\
     '' using 1:2 with linespoints lw 2 pt 5 title 'apikeyd GET /v1/auth/verify', \\
     '' using 1:3 with linespoints lw 2 pt 9 title 'apikeyd GET /v1/account/api-keys/', \\
     '' using 1:4 with linespoints lw 2 pt 13 title 'nginx (static list behind a map)'
GP
            cat <<GP
set title "Gateway (issue 15): GET $GW_PATH with a key, upstream nginx return 200, ${GW_SWEEP_SECS} s per point, same run"
plot '$DATG' using 1:2 with linespoints lw 2 pt 5 lc rgb '#0060ad' title 'apikeyd gateway (--route, --threads 2)', \\
     '' using 1:3 with linespoints lw 2 pt 13 lc rgb '#dd181f' title 'nginx plain reverse proxy, no auth (2 workers, upstream keepalive)', \\
     '' using 1:5 with linespoints lw 2 pt 7 lc rgb '#8c8c8c' title 'nginx + auth_request to nginx return 204 (ceiling)', \\
     '' using 1:4 with linespoints lw 2 pt 9 lc rgb '#e69f00' title 'nginx + auth_request to apikeyd /v1/auth/verify'
unset multiplot
GP
        } >"$OUT/gateway-plot.gp"
        gnuplot "$OUT/gateway-plot.gp" || issue "gnuplot failed ([l]; script $OUT/gateway-plot.gp)"
        say "plot: $gplot ($term), data: $DATG$([ "$panels" = 2 ] || echo "; docs/benchmarks.png left alone: [e] did not run (BENCH_SECTIONS=\"e l\" redraws both panels)")"
    fi
fi

# --- [m] p99 with one core each ----------------------------------------------------------------
# wrk -t1 -c64 on CPU 0; on CPU 1 everything it talks to: the proxy under test (nginx 1 worker or
# apikeyd --threads 1), its auth responder (apikeyd --threads 1 or nginx return 204, 1 worker)
# and the upstream (nginx, 1 worker). Rounds interleaved; medians of each run's p50 and p99.
if want m && { [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; }; then
    issue "[m] skipped: needs 2 CPUs and taskset"
elif want m; then
    hdr "[m] gateway latency, one core each: wrk --latency -t1 -c64 on CPU 0; the proxy, its auth responder and the upstream on CPU 1; ${GW_LAT_ROUNDS} interleaved rounds of ${GW_LAT_SECS} s"
    gw_db
    NGX_WRAP="taskset -c 1" gw_upstream m-upstream 1
    SRV_WRAP="taskset -c 1" start_apikeyd "$GDB" "$WORK/m-gateway.log" --no-access-log --threads 1 --route "/api=http://127.0.0.1:$GW_UP_PORT"
    MG_PID=$SRV_PID MG_PORT=$SRV_PORT MG_LOG=$SRV_LOG
    SRV_WRAP="taskset -c 1" start_apikeyd "$GDB2" "$WORK/m-verify.log" --no-access-log --threads 1 --verify-token "$GW_TOKEN" --trusted-proxies 127.0.0.1/32
    MV_PID=$SRV_PID MV_PORT=$SRV_PORT MV_LOG=$SRV_LOG
    A204=$(port) PX=$(port) AR=$(port) AC=$(port)
    ngx_tpl m-auth204 auth204 1 "$A204" && NGX_WRAP="taskset -c 1" ngx_start m-auth204 "$A204"
    ngx_tpl m-proxy proxy 1 "$PX" "$GW_UP_PORT" && NGX_WRAP="taskset -c 1" ngx_start m-proxy "$PX"
    ngx_ar m-authreq 1 "$AR" "$MV_PORT" "$GW_UP_PORT" && NGX_WRAP="taskset -c 1" ngx_start m-authreq "$AR"
    ngx_ar m-ceiling 1 "$AC" "$A204" "$GW_UP_PORT" && NGX_WRAP="taskset -c 1" ngx_start m-ceiling "$AC"
    declare -A GURL=([gateway]="http://127.0.0.1:$MG_PORT$GW_PATH" [proxy]="http://127.0.0.1:$PX$GW_PATH"
        [authreq]="http://127.0.0.1:$AR$GW_PATH" [ceiling]="http://127.0.0.1:$AC$GW_PATH")
    gw_check "[m] gateway" "${GURL[gateway]}"
    gw_check "[m] authreq" "${GURL[authreq]}"
    for who in proxy ceiling; do gw_check "[m] $who" "${GURL[$who]}" noauth; done
    declare -A MR=() M50=() M99=()
    for r in $(seq "$GW_LAT_ROUNDS"); do
        for who in $(gw_order "$r" gateway proxy authreq ceiling); do
            WRK_WRAP="taskset -c 0" gw_wrk "m-$who-$r" "${GURL[$who]}" --latency -t1 -c64 -d"${GW_LAT_SECS}s"
            MR[$who]+="$GW_RPS "
            M50[$who]+="$(lat_ms "$OUT/wrk/m-$who-$r.txt" 50) "
            M99[$who]+="$(lat_ms "$OUT/wrk/m-$who-$r.txt" 99) "
        done
        gw_alive "$MG_PID" "$MV_PID" || break
    done
    printf '%-9s %10s %8s %8s   %s\n' who req/s p50_ms p99_ms 'runs: p99_ms'
    for who in gateway proxy authreq ceiling; do
        res "m_${who}_rps" "$(echo "${MR[$who]}" | med)"
        res "m_${who}_p50_ms" "$(echo "${M50[$who]}" | med)"
        res "m_${who}_p99_ms" "$(echo "${M99[$who]}" | med)"
        res "m_${who}_p99_runs" "\"${M99[$who]% }\""
        printf '%-9s %10s %8s %8s   %s\n' "$who" "${R[m_${who}_rps]}" "${R[m_${who}_p50_ms]}" "${R[m_${who}_p99_ms]}" "${M99[$who]}"
    done
    for n in m-ceiling m-authreq m-proxy m-auth204; do ngx_stop $n; done
    srv_stop "$MV_PID" "$MV_LOG" m-verify
    srv_stop "$MG_PID" "$MG_LOG" m-gateway
    ngx_stop m-upstream
    say "m: p99_ms gateway=${R[m_gateway_p99_ms]} proxy=${R[m_proxy_p99_ms]} authreq=${R[m_authreq_p99_ms]} ceiling=${R[m_ceiling_p99_ms]}"
fi

# --- [n] upstream failure isolation -------------------------------------------------------------
# Server A has two routes: /api to the upstream and /hang to bench/gateway/hang.py, which accepts
# and never answers (--upstream-first-byte-timeout 600: nothing times out during the run). Server
# B has /api alone. Each round measures, in turn: B's /api ("alone"), A's /api ("idle"), and A's
# /api while bench/gateway/hold.py keeps GW_HOLD requests waiting on A's /hang ("held": they reach
# hang.py before wrk starts; hold.py lets go after it). Every run has a server of its own, started
# for it, so that no run inherits another's state. When hold.py's clients leave, apikeyd must close
# their upstream connections at once (n_release_open: how many hang.py still sees 2 s later).
hang_status() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$WORK/hang.status" 2>/dev/null; }
n_run() { # n_run WHO ROUND: one run of [n]; NR[WHO] gets its req/s
    local who=$1 r=$2 q0 h i
    if [ "$who" = alone ]; then
        start_apikeyd "$GDB2" "$WORK/n-$who.log" --no-access-log --threads 2 --upstream-first-byte-timeout 600 \
            --route "/api=http://127.0.0.1:$GW_UP_PORT"
    else
        start_apikeyd "$GDB" "$WORK/n-$who.log" --no-access-log --threads 2 --upstream-first-byte-timeout 600 \
            --route "/api=http://127.0.0.1:$GW_UP_PORT" --route "/hang=http://127.0.0.1:$HANG_PORT"
    fi
    [ "$r" = 1 ] && gw_check "[n] $who" "http://127.0.0.1:$SRV_PORT$GW_PATH"
    if [ "$who" = held ]; then
        q0=$(hang_status requests)
        "$PY" "$ROOT/bench/gateway/hold.py" "$SRV_PORT" /hang/x "$GKEY" "$GW_HOLD" >"$WORK/hold.out" 2>"$WORK/hold.err" &
        HOLD_PID=$!
        PIDS+=("$HOLD_PID")
        for i in $(seq 200); do [ "$(($(hang_status requests) - q0))" -ge "$GW_HOLD" ] && break; sleep 0.025; done
        [ "$(($(hang_status requests) - q0))" -ge "$GW_HOLD" ] ||
            issue "[n] round $r: $(($(hang_status requests) - q0)) of the $GW_HOLD held requests reached the hanging upstream within 5 s"
    fi
    gw_wrk "n-$who-$r" "http://127.0.0.1:$SRV_PORT$GW_PATH" -t2 -c64 -d"${GW_ISO_SECS}s"
    NR[$who]+="$GW_RPS "
    if [ "$who" = held ]; then
        h=$(sed -n 's/^held=//p' "$WORK/hold.out")
        [ -z "$h" ] || issue "[n] round $r: hold.py ended early: $(cat "$WORK/hold.out" "$WORK/hold.err" | paste -sd '|')"
        kill -TERM "$HOLD_PID"
        wait "$HOLD_PID" || true
        h=$(sed -n 's/^held=//p' "$WORK/hold.out")
        [ "${h%% *}" = "$GW_HOLD" ] || issue "[n] round $r: hold.py: $(cat "$WORK/hold.out" "$WORK/hold.err" | paste -sd '|')"
        # Does apikeyd let go of the upstream connections of requests whose clients left?
        sleep 2
        N_OPEN+="$(hang_status open) "
    fi
    SRV_DEAD=0 EXPECTED_LOG=$GW_EXPECTED_LOG stop_apikeyd "n-$who-$r"
    [ "$who" = held ] && N_STOP+="$SRV_STOP "
    if [ "$who" = held ]; then # hang.py sees the EOFs a moment after apikeyd's exit
        for i in $(seq 80); do [ "$(hang_status open)" = 0 ] && break; sleep 0.025; done
        [ "$(hang_status open)" = 0 ] || issue "[n] round $r: $(hang_status open) connections to the hanging upstream open 2 s after apikeyd exited"
    fi
    return 0
}
if want n; then
    hdr "[n] upstream failure isolation: GET $GW_PATH (wrk -t2 -c64) while $GW_HOLD requests hang on another route; ${GW_ISO_ROUNDS} interleaved rounds of ${GW_ISO_SECS} s"
    gw_db
    gw_upstream n-upstream 2
    HANG_PORT=$(port)
    "$PY" "$ROOT/bench/gateway/hang.py" "$HANG_PORT" "$WORK/hang.status" 2>"$WORK/hang.err" &
    HANG_PID=$!
    PIDS+=("$HANG_PID")
    for i in $(seq 100); do [ -s "$WORK/hang.status" ] && break; sleep 0.05; done
    [ -s "$WORK/hang.status" ] || die "hang.py did not start: $(cat "$WORK/hang.err")"
    declare -A NR=()
    N_OPEN="" N_STOP=""
    for r in $(seq "$GW_ISO_ROUNDS"); do
        for who in $(gw_order "$r" alone idle held); do n_run "$who" "$r"; done
    done
    kill "$HANG_PID" 2>/dev/null || true
    wait "$HANG_PID" 2>/dev/null || true
    ngx_stop n-upstream
    printf '%-40s %12s   runs\n' who 'req/s(med)'
    for who in alone idle held; do res "n_${who}_rps" "$(echo "${NR[$who]}" | med)"; done
    printf '%-40s %12s   %s\n' "B: /api, no other route" "${R[n_alone_rps]}" "${NR[alone]}" \
        "A: /api, /hang idle" "${R[n_idle_rps]}" "${NR[idle]}" \
        "A: /api, $GW_HOLD requests hanging on /hang" "${R[n_held_rps]}" "${NR[held]}"
    res n_held_vs_alone "$(ratio3 "${R[n_held_rps]}" "${R[n_alone_rps]}")"
    res n_held_vs_idle "$(ratio3 "${R[n_held_rps]}" "${R[n_idle_rps]}")"
    res n_idle_vs_alone "$(ratio3 "${R[n_idle_rps]}" "${R[n_alone_rps]}")"
    res n_release_open "\"${N_OPEN% }\""
    res n_stop_held_s "\"${N_STOP% }\""
    say "per round: held/alone $(per_round "${NR[held]}" "${NR[alone]}"); held/idle $(per_round "${NR[held]}" "${NR[idle]}")"
    say "connections to the hanging upstream still open 2 s after hold.py's clients left: ${N_OPEN% } (of $GW_HOLD); SIGTERM to exit with them: ${N_STOP% } s"
    [ "$(echo "$N_OPEN" | tr ' ' '\n' | grep -c '^[1-9]')" = 0 ] ||
        issue "[n] apikeyd kept the upstream connections of requests whose clients had left (${N_OPEN% } of $GW_HOLD still open 2 s later): they stay until --upstream-first-byte-timeout"
    say "n: held/alone=${R[n_held_vs_alone]} held/idle=${R[n_held_vs_idle]} idle/alone=${R[n_idle_vs_alone]}"
fi

# --- summary -------------------------------------------------------------------
v() { echo "${R[$1]:--}"; }
check() { # check VALUE OP LIMIT -> yes/no/-
    awk -v x="$1" -v op="$2" -v l="$3" 'BEGIN{ if (x == "-" || x == "") { print "-"; exit }
        ok = (op == ">=") ? (x + 0 >= l + 0) : (x + 0 < l + 0); print ok ? "yes" : "NO" }'
}
SUM=$OUT/summary.md
{
    echo "| measure | value | target | met |"
    echo "| --- | ---: | --- | :-: |"
    row() { echo "| $1 | $2 | $3 $4 | $(check "$2" "$3" "$4") |"; }
    row "[a] list / nginx (compare.sh)" "$(v list_vs_nginx)" ">=" 2.0
    row "[a] list / limit (compare.sh)" "$(v list_vs_limit)" ">=" 0.75
    row "[a] verify / limit (compare.sh)" "$(v verify_vs_limit)" ">=" 0.8
    echo "| [a] verify / nginx (compare.sh) | $(v verify_vs_nginx) | | |"
    echo "| [a] list / nginx, access log on | $(v list_log_vs_nginx) | | |"
    echo "| [a] list / limit, access log on | $(v list_log_vs_limit) | | |"
    row "[b] list p99 at 64 conns, ms" "$(v lat_list_p99_ms)" "<" 2
    row "[b] verify p99 at 64 conns, ms" "$(v lat_verify_p99_ms)" "<" 2
    echo "| [b] list / verify p50, ms | $(v lat_list_p50_ms) / $(v lat_verify_p50_ms) | | |"
    echo "| [b] nginx / limit p99, ms | $(v lat_nginx_p99_ms) / $(v lat_limit_p99_ms) | | |"
    echo "| [b] one core each: list / verify / limit p99, ms | $(v lat1_list_p99_ms) / $(v lat1_verify_p99_ms) / $(v lat1_limit_p99_ms) | | |"
    row "[c] 1M keys: start-up, s" "$(v startup_s)" "<" 3
    row "[c] 1M keys: VmRSS after start-up, MB" "$(v rss_start_mb)" "<" 300
    row "[c] 1M keys: VmRSS after random run, MB" "$(v rss_after_mb)" "<" 300
    row "[c] 1M keys: random verify / limit" "$(v random_vs_limit)" ">=" 0.7
    echo "| [c] bulk load of 1M keys, s | $(v bulkload_s) | | |"
    row "[d] list with writer / without" "$(v writer_list_ratio)" ">=" 0.8
    row "[d] verify with writer / without" "$(v writer_verify_ratio)" ">=" 0.8
    echo "| [d] writer, keys created/s | $(v wr_writer_rps) | | |"
    # issue 9: ratio to limit after / before, and their quotient (target >= 0.95)
    echo "| [f] list / limit: after, before | $(v f_list_after_vs_limit), $(v f_list_before_vs_limit) | | |"
    row "[f] list: after / before (quotient)" "$(v f_list_after_over_before)" ">=" 0.95
    echo "| [f] verify / limit: after, before | $(v f_verify_after_vs_limit), $(v f_verify_before_vs_limit) | | |"
    row "[f] verify: after / before (quotient)" "$(v f_verify_after_over_before)" ">=" 0.95
    # issue 10: the same with an expiry on every key of the after account (target >= 0.95)
    echo "| [h] list / limit: after (expiry), before | $(v h_list_after_vs_limit), $(v h_list_before_vs_limit) | | |"
    row "[h] list: after with expiry / before (quotient)" "$(v h_list_after_over_before)" ">=" 0.95
    echo "| [h] verify / limit: after (expiry), before | $(v h_verify_after_vs_limit), $(v h_verify_before_vs_limit) | | |"
    row "[h] verify: after with expiry / before (quotient)" "$(v h_verify_after_over_before)" ">=" 0.95
    # issue 12: restricted keys
    row "[i] verify, 20 scopes + 32 CIDRs / plain" "$(v i_restricted_vs_plain)" ">=" 0.9
    row "[i] 1M keys, 10 % restricted: start-up, s" "$(v i_startup_s)" "<" 3
    echo "| [i] 1M plain keys ([c]), start-up in the same turns, s | $(v i_plain_startup_s) | | |"
    row "[i] 1M keys, 10 % restricted: VmRSS after start-up, MB" "$(v i_rss_start_mb)" "<" 350
    row "[i] 1M keys, 10 % restricted: VmRSS after random run, MB" "$(v i_rss_after_mb)" "<" 350
    echo "| [i] 1M keys, 10 % restricted: random verify / limit | $(v i_random_vs_limit) | | |"
    # issue 13: rate limits and quotas
    row "[j] verify, rate limit + quota / plain" "$(v j_limited_vs_plain)" ">=" 0.9
    row "[k] PostgreSQL instance A: rate limit + quota / plain" "$(v k_a_limited_vs_plain)" ">=" 0.9
    row "[k] PostgreSQL instance B: rate limit + quota / plain" "$(v k_b_limited_vs_plain)" ">=" 0.9
    # issue 15: gateway mode
    row "[l] gateway / nginx plain proxy (no auth)" "$(v l_gateway_vs_proxy)" ">=" 1.0
    row "[l] gateway / nginx + auth_request to apikeyd" "$(v l_gateway_vs_authreq)" ">=" 2.0
    echo "| [l] gateway / nginx + auth_request to return 204 (ceiling) | $(v l_gateway_vs_ceiling) | | |"
    echo "| [l] nginx + auth_request to apikeyd / plain proxy; to return 204 / plain proxy | $(v l_authreq_vs_proxy); $(v l_ceiling_vs_proxy) | | |"
    echo "| [l] docs/nginx-auth-request.conf as shipped / plain proxy | $(v l_shipped_vs_proxy) | | |"
    echo "| [l] gateway / upstream direct; plain proxy / upstream direct | $(v l_gateway_vs_direct); $(v l_proxy_vs_direct) | | |"
    echo "| [l] CPU us per request (proxy + auth responder): gateway / proxy / auth_request to apikeyd / to return 204 | $(v l_gateway_cpu_us_per_req) / $(v l_proxy_cpu_us_per_req) / $(v l_authreq_cpu_us_per_req) / $(v l_ceiling_cpu_us_per_req) | | |"
    echo "| [m] one core each, p99 ms: gateway / proxy / auth_request to apikeyd / to return 204 | $(v m_gateway_p99_ms) / $(v m_proxy_p99_ms) / $(v m_authreq_p99_ms) / $(v m_ceiling_p99_ms) | | |"
    echo "| [m] one core each, p50 ms: gateway / proxy / auth_request to apikeyd / to return 204 | $(v m_gateway_p50_ms) / $(v m_proxy_p50_ms) / $(v m_authreq_p50_ms) / $(v m_ceiling_p50_ms) | | |"
    row "[n] a route with 64 requests hanging on another / no other route" "$(v n_held_vs_alone)" ">=" 0.9
    echo "| [n] 64 hanging / the same server with nothing hanging | $(v n_held_vs_idle) | | |"
    for b in sqlite postgres; do
        for c in $G_CASES; do row "[g] $b: $c p99 (one client), ms" "$(v g_${b}_${c}_p99_ms)" "<" 5; done
        row "[g] $b: start-up, 100k accounts x 1 key, s" "$(v g_${b}_startup_1key_s)" "<" 3
        row "[g] $b: start-up, 100k accounts x 2 keys, s" "$(v g_${b}_startup_2keys_s)" "<" 3
    done
} >"$SUM"
hdr "summary (also $SUM; key=value in $OUT/results.txt)"
cat "$SUM"
BUSY_AFTER=$(busy_pct)
res cpu_busy_after_pct "$BUSY_AFTER"
say "CPU busy with other work: $BUSY% before the run, $BUSY_AFTER% after it"
res elapsed_s "$(awk -v a="$T_BEGIN" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b - a}')"
if [ -s "$OUT/issues.txt" ]; then
    hdr "issues seen ($(wc -l <"$OUT/issues.txt"), also in $OUT/issues.txt)"
    cat "$OUT/issues.txt"
else
    say ""
    say "no errors seen: every answer 2xx, no socket errors, servers exited cleanly"
fi
say "bench: done in ${R[elapsed_s]} s"
