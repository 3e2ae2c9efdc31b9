#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what tern needs to build, run and test, from Debian packages.
# Idempotent: asks dpkg what is missing and installs only that; silent
# (apart from one line) when everything is already there.
set -eu

# Build and run.
BUILD="build-essential pkg-config libev-dev libc-ares-dev libssl-dev librocksdb-dev libzstd-dev openssl libmicrohttpd-dev libpcre2-dev libcurl4-openssl-dev libhiredis-dev libgmime-3.0-dev xxd librdkafka-dev"
# Tests, fuzzing and benchmarks.
TEST="libcmocka-dev clang libclang-rt-14-dev python3 python3-pytest python3-pyflakes python3-aiosmtpd python3-dkim
python3-dnslib swaks libnet-ssleay-perl libio-socket-ssl-perl opendkim opendkim-tools postfix redis-server zstd tmux
python3-prometheus-client python3-selenium chromium chromium-driver prometheus"
# make deb and the man pages (the unit's systemd-analyze check runs where systemd is installed).
PACKAGE="debhelper lintian scdoc"

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Either LuaJIT flavour gives pkg-config 'luajit'; prefer OpenResty's branch
# but keep whichever is already there (the two -dev packages conflict).
luajit_pkg() {
	if is_installed libluajit2-5.1-dev || is_installed libluajit-5.1-dev; then
		return
	fi
	if apt-cache show libluajit2-5.1-dev >/dev/null 2>&1; then
		echo libluajit2-5.1-dev
	else
		echo libluajit-5.1-dev
	fi
}

missing=""
for p in $BUILD $TEST $PACKAGE; do
	is_installed "$p" || missing="$missing $p"
done
if ! is_installed libluajit2-5.1-dev && ! is_installed libluajit-5.1-dev; then
	missing="$missing luajit"
fi

if [ -z "$missing" ]; then
	echo "install-deps: all dependencies present"
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

echo "install-deps: missing:$missing"
echo "install-deps: apt-get update"
$SUDO apt-get update -qq
missing=$(echo "$missing" | sed "s/ luajit/ $(luajit_pkg)/")
# Postfix asks how to configure itself; the benchmark runs its own instance
# with its own config directory, so the system one stays unconfigured.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "install-deps: apt-get install$missing"
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
