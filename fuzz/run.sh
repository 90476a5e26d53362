#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (fuzz/fuzz_*.c) with clang-14,
# ASan and UBSan in build-fuzz/, then runs each for FUZZ_SECONDS (default 60)
# over a working corpus, build-fuzz/fuzz/work/<target>/, emptied at the start
# and seeded from the committed fuzz/corpus/<target>/, which this script only
# reads. Prints one line per target (execs, execs/s, coverage, corpus) and how
# to merge what it found; exits non-zero if any target crashed, leaked, hung
# or ran out of memory, after printing the reproducer and its stack.
#
#   FUZZ_SECONDS=30 bash fuzz/run.sh                 # every target, 30 s each
#   FUZZ_TARGETS="router bearer" bash fuzz/run.sh    # some of them
#   FUZZ_BUILD (default build-fuzz), FUZZ_CC (default clang-14)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD:-build-fuzz}
SECS=${FUZZ_SECONDS:-60}
FCC=${FUZZ_CC:-clang-14}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-$(cd fuzz/corpus && echo *)}"
OUT=$BUILD/fuzz
ART=$OUT/artifacts
JOBS=$(nproc)

max_len() { # the largest input worth trying, per target
    case $1 in
    keyfmt) echo 128 ;;     # a key is at most 60 bytes
    auth) echo 256 ;;       # a header with one key
    bearer) echo 512 ;;
    netaddr) echo 512 ;;   # a forwarding header of a few dozen hops
    name | router) echo 1024 ;;
    validate) echo 4096 ;;  # bodies up to 64 KiB exist, but the parsers are linear
    *) echo 4096 ;;
    esac
}
dict() {
    case $1 in
    auth) echo fuzz/dict/bearer.dict ;;
    *) [ -f "fuzz/dict/$1.dict" ] && echo "fuzz/dict/$1.dict" || true ;;
    esac
}
stat_of() { # stat_of LOG NAME: a libFuzzer final statistic
    sed -n "s/^stat::$2: *//p" "$1" | tail -1
}

command -v "$FCC" >/dev/null || { echo "fuzz: $FCC not found (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$OUT"
echo "== fuzz: build ($BUILD, $FCC, ASan+UBSan+libFuzzer)"
# -O1 -g without NDEBUG, as libFuzzer recommends; the library gets -fsanitize=fuzzer-no-link from fuzz/CMakeLists.txt.
if ! cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$FCC" -DAPIKEYD_FUZZ=ON -DAPIKEYD_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >"$OUT/configure.log" 2>&1; then
    cat "$OUT/configure.log"
    exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]/#/fuzz_}" >"$OUT/build.log" 2>&1; then
    cat "$OUT/build.log"
    exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ok=0
failed=0
for t in "${TARGETS[@]}"; do
    bin=$OUT/fuzz_$t work=$OUT/work/$t log=$OUT/fuzz_$t.log
    [ -d "fuzz/corpus/$t" ] || { echo "fuzz_$t: no fuzz/corpus/$t" >&2; failed=$((failed + 1)); continue; }
    rm -rf "$work"
    mkdir -p "$work" "$ART/$t"
    args=(-max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 -print_final_stats=1
          -artifact_prefix="$ART/$t/")
    d=$(dict "$t")
    [ -n "$d" ] && args+=(-dict="$d")
    echo "== fuzz_$t: ${SECS} s, -max_len=$(max_len "$t")${d:+, $d}"
    set +e
    "$bin" "${args[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(stat_of "$log" number_of_executed_units)
    eps=$(stat_of "$log" average_exec_per_sec)
    fresh=$(stat_of "$log" new_units_added)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
    summary="${execs:-?} execs (${eps:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} (${fresh:-0} new units)"
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ok: $summary"
        ok=$((ok + 1))
        continue
    fi
    failed=$((failed + 1))
    echo "fuzz_$t: FAILED (exit $rc): $summary"
    # What it found: from the first report line to libFuzzer's note of the saved input.
    awk '/ERROR: |fuzz invariant failed|runtime error:|deadly signal|ALARM: |out-of-memory/ { on = 1 } on { print "    " $0 } /Test unit written to/ { exit }' "$log" | head -n 80
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ -n "$repro" ]; then
        echo "    reproducer: $repro"
        echo "    replay it:  $bin $repro"
        echo "    minimize:   $bin -minimize_crash=1 -runs=100000 -artifact_prefix=$ART/$t/min- $repro"
        echo "    keep it as a regression input: cp $repro fuzz/corpus/$t/  (fuzz/replay.sh then fails until it is fixed)"
    fi
    echo "    full log: $log"
done

cat <<EOF
== fuzz: the working corpora are in $OUT/work/<target>/ (not committed). To keep what a run found:
     $OUT/fuzz_<target> -merge=1 fuzz/corpus/<target> $OUT/work/<target>
   (adds only inputs with new coverage; review them, then commit). To shrink a committed corpus:
     mkdir /tmp/min && $OUT/fuzz_<target> -merge=1 /tmp/min fuzz/corpus/<target>
EOF
echo "make fuzz: $ok targets ok, $failed failed (${SECS} s each)"
[ "$failed" -eq 0 ]
