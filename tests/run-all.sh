#!/bin/sh
# Installs what is missing, builds vigil twice (warnings as errors; then with
# AddressSanitizer + UBSan) and runs every unit and integration test in both.
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
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C $dir --suite unit --suite integration --print-errorlogs \
        --num-processes 2 || status=1
done

/usr/bin/python3 tests/summarize.py build/meson-logs/testlog.json build-asan/meson-logs/testlog.json
summary=$?
[ $status = 0 ] && [ $summary = 0 ]
