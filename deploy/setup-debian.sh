#!/bin/sh
# Installs every Debian 12 package vigil needs to build, test and run its demo.
# Idempotent: when everything is already installed it changes nothing and asks
# no mirror. Run as root.
set -eu

PACKAGES="
    gcc clang libclang-rt-14-dev clang-format meson ninja-build pkg-config
    libwebsockets-dev libmsgpack-dev libyaml-dev libjansson-dev uuid-dev libssl-dev check
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-x fonts-dejavu-core
    gstreamer1.0-libav
    ffmpeg openssl python3 python3-websocket python3-msgpack python3-yaml procps
    libwslay-dev libhttp-parser-dev libcurl4-openssl-dev
    wrk nginx-light curl wget iperf3
    chromium
    build-essential debhelper lintian debootstrap iproute2
"
# The web app (httpd/web: npm ci, esbuild) and its browser test (playwright-core
# driving chromium) need node and npm. Debian 12's nodejs 18 and npm do; a
# nodejs from elsewhere that already brings npm is left alone (Debian's npm
# package would conflict with it).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "setup: all $(echo $PACKAGES | wc -w) packages already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages:$missing" >&2
    echo "setup: run this script as root to install them" >&2
    exit 1
fi
echo "setup: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
echo "setup: done"
