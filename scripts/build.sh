#!/bin/sh
# Builds govrelay out of tree in build/ (or $1) with the given extra
# CFLAGS in $GOVRELAY_CFLAGS. Used by demo.sh and test.sh.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-"$top/build"}
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ]; then
	"$top/configure" -q CFLAGS="${GOVRELAY_CFLAGS:--g -O2}" ${GOVRELAY_LDFLAGS:+LDFLAGS="$GOVRELAY_LDFLAGS"}
fi
make -j2 >/dev/null || make
