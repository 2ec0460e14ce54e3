#!/bin/sh
# Installs every Debian 12 package govrelay needs to build, run and test,
# and only those that are missing. Safe to run again.
set -eu

# To build and run govrelay.
BUILD_PKGS="build-essential autoconf automake pkg-config
  libuv1-dev libssl-dev liblmdb-dev lmdb-utils libspf2-dev libopendkim-dev
  libopendmarc-dev libunbound-dev libevent-dev libsystemd-dev libidn2-dev check
  openssl publicsuffix
  libutf8proc-dev libpcre2-dev libmagic-dev libarchive-dev libxml2-dev
  libpoppler-glib-dev libsodium-dev"
# The demo's local mail store and a client to send with.
DEMO_PKGS="python3 python3-aiosmtpd swaks libnet-ssleay-perl"
# Real peers for the test suite: Postfix's smtp-sink/smtp-source, unbound,
# valgrind.
TEST_PKGS="postfix unbound ldnsutils valgrind ca-certificates libnet-ssleay-perl
  python3-lmdb libauthen-sasl-perl"
# ---- sender authentication: independent implementations to check ours
# against (dkimpy with PyNaCl for ed25519, opendkim-testmsg, pyspf,
# authres to parse our Authentication-Results).
TEST_PKGS="$TEST_PKGS python3-dkim python3-nacl python3-dnspython opendkim-tools
  python3-spf python3-authres"
# ---- sender-authentication-end
# ---- content scanning: a real clamd (its database is made by the tests
# from the EICAR test string with sigtool; nothing is downloaded, and
# freshclam is never started).
TEST_PKGS="$TEST_PKGS clamav-daemon clamav"
# ---- content-scanning-end
# ---- document text: test_doctext draws its PDF in DejaVu Sans, which has
# the Vietnamese glyphs (fontconfig only recommends one of several fonts).
TEST_PKGS="$TEST_PKGS fonts-dejavu-core"
# ---- document-text-end
# ---- fuzz: clang and libFuzzer for make check-fuzz (libclang-rt-14-dev
# holds libclang_rt.fuzzer; clang only recommends it, and we install
# without recommends).
TEST_PKGS="$TEST_PKGS clang libclang-rt-14-dev"
# ---- fuzz-end

case "${1:-}" in
--test) want="$BUILD_PKGS $DEMO_PKGS $TEST_PKGS" ;;
*) want="$BUILD_PKGS $DEMO_PKGS" ;;
esac

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# The unprivileged system user govrelayd drops to when started as root
# (the `user` key's default): no login shell, no home, its own group.
# Created once; running this again changes nothing. A developer who runs
# govrelayd as themselves does not need it, so without root (and without
# a password-less sudo) this only says how to make it.
daemon_user=govrelay
if ! getent passwd "$daemon_user" >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/bin/false
	if [ -z "$SUDO" ]; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell "$nologin" --comment "govrelay mail relay" "$daemon_user"
	elif ! sudo -n useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell "$nologin" --comment "govrelay mail relay" "$daemon_user" 2>/dev/null; then
		echo "install-deps: to run govrelayd as root, first create its user:" \
			"sudo useradd --system --user-group --no-create-home" \
			"--home-dir /nonexistent --shell $nologin $daemon_user" >&2
	fi
fi

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing" >&2
# Postfix asks a debconf question on install; we only use its test tools
# (smtp-sink, smtp-source) and never run it as the system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections 2>/dev/null || true
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Packages like unbound and postfix would start system services on install;
# we only run them as unprivileged test peers, so keep them from starting.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	guard=1
fi
# shellcheck disable=SC2086
rc=0
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
[ -n "$guard" ] && $SUDO rm -f /usr/sbin/policy-rc.d
exit $rc
