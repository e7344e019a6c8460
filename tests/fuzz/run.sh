#!/bin/sh
# Runs each libFuzzer target of a -Dfuzz=true build for SECONDS (default 60)
# from its seed corpus: the fMP4 fixtures for fuzz_fmp4, the envelopes in
# corpus/env for fuzz_env, handshakes and first frames in corpus/listener for
# fuzz_listener. Prints one line per target, "fuzz_X: N runs, no
# crash" or the crash with its reproducer; exits non-zero on any crash.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]
#   (CC=clang meson setup BUILD_DIR -Dfuzz=true && meson compile -C BUILD_DIR)
# Logs go to BUILD_DIR/fuzz/, crash inputs to BUILD_DIR/fuzz/crashes/; the
# corpus grown by a run is kept in BUILD_DIR/fuzz/corpus-X/ for the next one.
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BUILD_DIR [SECONDS]" >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=${2:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
out=$build/fuzz
mkdir -p "$out/crashes" || exit 2

status=0
# run_target NAME SEED_DIR MAX_LEN
run_target() {
    name=$1
    seeds=$2
    exe=$(find "$build" -name "$name" -type f -perm -u+x | head -n 1)
    if [ -z "$exe" ]; then
        echo "$name: not built (meson setup $build -Dfuzz=true)"
        status=1
        return
    fi
    corpus=$out/corpus-$name
    mkdir -p "$corpus"
    log=$out/$name.log
    # New inputs go to the first directory; the seeds stay untouched.
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$exe" -max_total_time="$seconds" -max_len="$3" -rss_limit_mb=2048 \
        -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$name-" "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "$name: ${runs:-?} runs, no crash (${speed:-?} runs/s)"
        return
    fi
    what=$(grep -m 1 -E '^==[0-9]+==ERROR|runtime error|deadly signal|ERROR: libFuzzer' "$log")
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "$name: CRASH: ${what:-exit $rc} (input: ${input:-none}; log: $log)"
    status=1
}

run_target fuzz_fmp4 "$src/tests/data/fmp4" 1048576
run_target fuzz_env "$src/tests/fuzz/corpus/env" 65536
run_target fuzz_listener "$src/tests/fuzz/corpus/listener" 65536
exit $status
