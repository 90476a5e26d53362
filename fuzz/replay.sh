#!/usr/bin/env bash
# Replays the committed fuzz corpus as a regression test: every file of every
# fuzz/corpus/<target>/ through each target's replay binary (BUILD/fuzz/replay_<target>,
# built with BUILD_TESTING by fuzz/CMakeLists.txt, with whatever compiler and
# sanitizers BUILD uses). A target sees its own corpus and the others' too,
# since any bytes are valid input for every parser.
#
#   bash fuzz/replay.sh build        bash fuzz/replay.sh build-asan
#
# One line per target, then `fuzz replay: N passed, M failed` (N, M count
# targets). Exits non-zero on any failure, naming the inputs that fail.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
passed=0
failed=0
corpora=(fuzz/corpus/*/)
for c in "${corpora[@]}"; do
    t=$(basename "$c")
    bin=$BUILD/fuzz/replay_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz replay: $t: FAILED: no $bin (cmake --build $BUILD --target replay_$t)"
        failed=$((failed + 1))
        continue
    fi
    if out=$("$bin" "${corpora[@]}" 2>&1); then
        own=$(find "$c" -type f | wc -l)
        echo "fuzz replay: $t: ok, ${out% inputs} inputs ($own of its own)"
        passed=$((passed + 1))
        continue
    fi
    failed=$((failed + 1))
    echo "fuzz replay: $t: FAILED"
    # Find the inputs that fail, one run each, and show the first report.
    shown=0
    while IFS= read -r -d '' f; do
        if ! one=$("$bin" "$f" 2>&1); then
            echo "    fails on $f"
            if [ "$shown" -eq 0 ]; then
                sed 's/^/        /' <<<"$one" | head -n 40
                shown=1
            fi
        fi
    done < <(find "${corpora[@]}" -type f -print0 | sort -z)
    [ "$shown" -eq 1 ] || sed 's/^/        /' <<<"$out" | tail -n 40
done
echo "fuzz replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
