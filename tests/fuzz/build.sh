#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer into OUTDIR, apart from
# the gcc build so that one is untouched. The parsers' sources are compiled
# again here with the fuzzer's coverage instrumentation.
#
#   sh tests/fuzz/build.sh OUTDIR [CONFIG_H_DIR]
#
# CONFIG_H_DIR is a configured build folder (for its config.h); without it
# the script runs configure with CC=clang in OUTDIR/conf once.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build.sh OUTDIR [CONFIG_H_DIR]}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cfgdir=${2:-}
CC=${FUZZ_CC:-clang}

if [ -z "$cfgdir" ]; then
	cfgdir="$out/conf"
	if [ ! -f "$cfgdir/config.h" ]; then
		if [ ! -x "$top/configure" ]; then
			(cd "$top" && autoreconf -fi >/dev/null 2>&1)
		fi
		mkdir -p "$cfgdir"
		(cd "$cfgdir" && "$top/configure" -q CC="$CC")
	fi
fi
cfgdir=$(cd "$cfgdir" && pwd)
[ -f "$cfgdir/config.h" ] || { echo "build.sh: no config.h in $cfgdir" >&2; exit 1; }

if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
	"$CC" -x c -fsanitize=fuzzer -o "$out/.probe" - 2>/dev/null; then
	echo "build.sh: $CC cannot link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi
rm -f "$out/.probe"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -g -O1 -Wall -Wextra -Werror $SAN -I$top -I$cfgdir -D_GNU_SOURCE \
	$(pkg-config --cflags libidn2 openssl)"
LIBS="$(pkg-config --libs libidn2 openssl)"

# The parsers and what they need from common/. Objects go into an
# archive so each target pulls in only what it uses.
SRCS="common/xmalloc.c common/buf.c common/util.c common/log.c common/cfg.c
	common/cfg_check.c common/checkpoint.c common/ctlproto.c common/addr.c common/rfc5322.c common/sasl.c
	relay/smtp_parse.c policy/mime.c policy/mime_words.c policy/mime_text.c"
rm -f "$out/libparsers.a"
objs=""
for s in $SRCS; do
	o="$out/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
	# shellcheck disable=SC2086
	$CC $CFLAGS -fsanitize=fuzzer-no-link -c "$top/$s" -o "$o"
	objs="$objs $o"
done
# shellcheck disable=SC2086
ar cr "$out/libparsers.a" $objs

for t in "$top"/tests/fuzz/fuzz_*.c; do
	name=$(basename "$t" .c)
	# shellcheck disable=SC2086
	$CC $CFLAGS -fsanitize=fuzzer "$t" "$out/libparsers.a" $LIBS -o "$out/$name"
done
echo "build.sh: built $(ls "$top"/tests/fuzz/fuzz_*.c | wc -l) targets in $out"
