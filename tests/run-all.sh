#!/bin/sh
# Installs what is missing, builds vigil twice (warnings as errors; then with
# AddressSanitizer + UBSan) and runs every unit and integration test in both
# (the browser suites in the plain build only), builds the Debian package and
# tests it in a clean root (plain build only: tests/package/test_deb.py), then
# looks for every token the tests configured in every log they kept
# (tests/check_secrets.py), then each libFuzzer target for FUZZ_SECONDS
# (default 30) in a clang build.
# Ends with one line "N passed, M failed" over every test case it ran.
set -u
cd "$(dirname "$0")/.."

./deploy/setup-debian.sh || exit 1

configure() {
    dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" --werror "$@" >/dev/null
    else
        meson setup "$dir" --werror "$@" >/dev/null
    fi
}

status=0
for variant in plain asan; do
    if [ $variant = plain ]; then
        dir=build
        configure $dir || exit 1
    else
        dir=build-asan
        configure $dir -Dsanitize=true -Dbuildtype=debug || exit 1
    fi
    echo "== $variant build"
    meson compile -C $dir || exit 1
    echo "== $variant tests"
    # Every log the integration tests' vigilds wrote, and every token they
    # configured, are kept here (tests/integration/vigil.py) for the check below.
    VIGIL_TEST_LOGS=$PWD/$dir/test-logs
    rm -rf "$VIGIL_TEST_LOGS"
    export VIGIL_TEST_LOGS
    # The browser suites test the web app (JavaScript in chromium): they run
    # once, against the plain build; every other suite runs in both, so that
    # the stages meet ASan and UBSan with all of them (and CI stays in time).
    skip=""
    [ $variant = asan ] && skip="--no-suite browser"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C $dir --suite unit --suite integration $skip --print-errorlogs \
        --num-processes 2 || status=1
    if [ $variant = plain ]; then
        echo "== the Debian package"
        meson test -C $dir --suite package --print-errorlogs --logbase testlog-package || status=1
    fi
    echo "== $variant: no token in any log"
    meson test -C $dir --suite secrets --print-errorlogs --logbase testlog-secrets || status=1
done

echo "== fuzz (${FUZZ_SECONDS:-30} s per target)"
fuzz_results=build-fuzz/fuzz-results.txt
if [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=disabled >/dev/null; then
    meson compile -C build-fuzz >/dev/null || status=1
    tests/fuzz/run.sh build-fuzz "${FUZZ_SECONDS:-30}" | tee "$fuzz_results" || status=1
else
    echo "fuzz: setup failed" | tee "$fuzz_results"
    status=1
fi

/usr/bin/python3 tests/summarize.py --fuzz "$fuzz_results" \
    build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
    build/meson-logs/testlog-package.json \
    build/meson-logs/testlog-secrets.json build-asan/meson-logs/testlog-secrets.json
summary=$?
[ $status = 0 ] && [ $summary = 0 ]
