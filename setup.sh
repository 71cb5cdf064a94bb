#!/bin/sh
# vetsync set-up: install the Debian 12 packages that the build, the tests
# and the demo need (idempotent, non-interactive), then configure and build
# out of tree in ./build.
#
#   ./setup.sh            install + build
#   ./setup.sh demo       install + build + run the main job (demo.sh)
#   ./setup.sh test       install + build + run the whole test suite
#   ./setup.sh deps       install only
#
# Run as root (or with sudo available).  Nothing is downloaded but Debian's
# packages.
set -eu

top=$(cd "$(dirname "$0")" && pwd)
cd "$top"

PACKAGES="build-essential autoconf automake libtool pkg-config
	libevent-dev libseccomp-dev libcurl4-openssl-dev libpq-dev libssl-dev
	libprotobuf-c-dev protobuf-c-compiler libxml2-dev libjansson-dev
	libinih-dev libcmocka-dev
	clang libclang-rt-14-dev valgrind nodejs
	postgresql postgresql-common
	ca-certificates tzdata openssl curl procps iproute2 jq systemd"

sudo_() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
	missing=
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		echo "setup: every package is installed"
		return 0
	fi
	echo "setup: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	sudo_ apt-get update -qq
	# shellcheck disable=SC2086
	sudo_ apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] ||
	    [ -n "$(find . -name '*.am' -newer configure 2>/dev/null | head -1)" ]; then
		autoreconf -fi
	fi
	mkdir -p build
	cd build
	if [ ! -f config.status ]; then
		../configure --enable-werror ${VS_CONFIGURE_FLAGS:-}
	fi
	make -j"$(nproc)"
	cd "$top"
}

case "${1:-build}" in
deps)	install_deps ;;
build)	install_deps; build ;;
demo)	install_deps; build; exec "$top/demo.sh" ;;
test)	install_deps; build; exec "$top/tests/run-all.sh" ;;
*)	echo "usage: $0 [deps|build|demo|test]" >&2; exit 2 ;;
esac
