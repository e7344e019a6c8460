#!/bin/sh
# The demo behind the README's run command: vigil with deploy/demo.yaml
# (everything on 127.0.0.1, state under /tmp/vigil-demo) and one demo sentinel
# streaming a test pattern with its name and a clock. Ctrl-C stops both.
set -u
cd "$(dirname "$0")/.."
build=${VIGIL_BUILD_DIR:-build}
config=deploy/demo.yaml
ctl="$build/deploy/vigilctl --config $config"

$ctl start || exit 1
trap '$ctl stop; exit 0' INT TERM
mkdir -p /tmp/vigil-demo
echo "demo sentinel 'Hall A / seat 1' streams to ws://127.0.0.1:8082/sentinel"
echo "watch it live in a browser: http://127.0.0.1:8080/?token=demo-proctor"
echo "  (history and export.mp4 downloads: http://127.0.0.1:8080/?token=demo-archivist;"
echo "   '$ctl status' shows the stages)"
"$build/deploy/vigil-sentinel" --url ws://127.0.0.1:8082/sentinel --name "Hall A / seat 1" \
    --state /tmp/vigil-demo/sentinel.id &
wait $!
status=$?
$ctl stop
exit $status
