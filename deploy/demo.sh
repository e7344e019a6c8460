#!/bin/sh
# The demo behind the README's run command: vigil with deploy/demo.yaml
# (everything on 127.0.0.1, state under /tmp/vigil-demo) and one demo sentinel
# streaming a test pattern with its name and a clock. The last line it prints
# is the page to open, with its token; the sentinel logs only warnings, so
# that line stays on the screen. Ctrl-C stops both.
# VIGIL_DEMO_CONFIG and VIGIL_DEMO_STATE name another config and place for the
# sentinel's id (the tests run it on ports and in directories of their own).
set -u
cd "$(dirname "$0")/.."
build=${VIGIL_BUILD_DIR:-build}
config=${VIGIL_DEMO_CONFIG:-deploy/demo.yaml}
ctl="$build/deploy/vigilctl --config $config"
state=${VIGIL_DEMO_STATE:-/tmp/vigil-demo}
sentinel=

$ctl start || exit 1
# A background job of a script ignores SIGINT: the sentinel is told with TERM.
stop() {
	[ -n "$sentinel" ] && kill -TERM "$sentinel" 2>/dev/null && wait "$sentinel"
	$ctl stop
}
trap 'stop; exit 0' INT TERM

# Where the stages listen, as vigild has them (a wildcard address: loopback).
addr() {
	$ctl status --json | /usr/bin/python3 -c '
import json, sys
st = {s["name"]: s["listen"] for s in json.load(sys.stdin)["stages"]}[sys.argv[1]]
print(st.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "127.0.0.1:"))' "$1"
}
ingest=$(addr ingest) && http=$(addr httpd) || { stop; exit 1; }

mkdir -p "$state"
"$build/deploy/vigil-sentinel" --quiet --url "ws://$ingest/sentinel" --name "Hall A / seat 1" \
    --state "$state/sentinel.id" &
sentinel=$!
echo
echo "The demo sentinel 'Hall A / seat 1' streams a test pattern to ws://$ingest/sentinel."
echo "History and export.mp4 downloads: http://$http/?token=demo-archivist"
echo "'$ctl status' shows the stages; Ctrl-C stops the demo."
echo
echo "Watch it live in a browser: http://$http/?token=demo-proctor"
wait "$sentinel"
status=$?
sentinel=
$ctl stop
exit $status
