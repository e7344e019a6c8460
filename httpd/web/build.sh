#!/bin/sh
# Builds the proctor web app: OUTDIR gets index.html, app.css and app.js (every
# module and the npm libraries bundled by esbuild, so the page loads nothing
# from any other host). Runs `npm ci` first when node_modules is missing or
# older than package-lock.json (serialised with flock: several build
# directories share httpd/web/node_modules).
# Usage: build.sh [OUTDIR [STAMP]]   (default OUTDIR: httpd/web/dist, which httpd serves)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/dist}
stamp=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
case $stamp in "" | /*) ;; *) stamp=$(pwd)/$stamp ;; esac
cd "$here"

need_ci() {
    [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]
}
if need_ci; then
    (
        flock 9
        if need_ci; then
            echo "web: npm ci (package-lock.json)"
            npm ci --no-audit --no-fund --loglevel=error
        fi
    ) 9>"$here/node_modules.lock"
fi

# Into a hidden temporary directory first, then renamed file by file: httpd
# never serves a half-written bundle. index.html names app.js and app.css with
# their content hash, so browsers never mix an old script with a new page.
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
node_modules/.bin/esbuild src/main.js --bundle --format=esm --target=es2020 --minify \
    --sourcemap --legal-comments=linked --log-level=warning --outfile="$tmp/app.js"
cp src/app.css "$tmp/"
js=$(sha256sum "$tmp/app.js" | cut -c1-12)
css=$(sha256sum "$tmp/app.css" | cut -c1-12)
sed -e "s|\"app.js\"|\"app.js?v=$js\"|" -e "s|\"app.css\"|\"app.css?v=$css\"|" \
    src/index.html >"$tmp/index.html"
for f in "$tmp"/*; do
    mv -f "$f" "$out/"
done
if [ -n "$stamp" ]; then
    date -u +%FT%TZ >"$stamp"
fi
