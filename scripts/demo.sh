#!/bin/bash
# Sets up everything on a fresh Debian 12 machine and runs govrelay in the
# foreground on a demo configuration: loopback ports, a self-signed
# certificate made on first run, data in demo/run/ inside the checkout, and
# demo domains delivering to a local mail store (a Maildir written by a
# small SMTP server from python3-aiosmtpd) so you can watch mail go through.
# The domains belong to a small tree of agencies (tenants: the city, two
# departments, a ward) with a few mailboxes and one user who submits with
# AUTH on the submission port; the setup is idempotent (each step looks
# first), so the demo can be run again on the same demo/run/.
# Stop it with Ctrl-C.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sh scripts/install-deps.sh
sh scripts/build.sh

run="$top/demo/run"
conf="$run/govrelay.conf"
mkdir -p "$run"
if [ ! -f "$run/cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
		-subj /CN=relay.demo.gov.vn -keyout "$run/key.pem" -out "$run/cert.pem" 2>/dev/null
	chmod 600 "$run/key.pem"
fi
# Started as root, govrelayd drops to the user govrelay (install-deps.sh
# made it): its data_dir must belong to govrelay and be reachable by it,
# and its key readable by it to be read again on SIGHUP (root:govrelay
# 0640). A checkout in a private folder (under /root) is out of
# govrelay's reach: then the demo keeps its data in /var/lib/govrelay-demo.
data="$run/data"
if [ "$(id -u)" -eq 0 ]; then
	if ! runuser -u govrelay -- test -x "$run" 2>/dev/null; then
		data=/var/lib/govrelay-demo
		echo "demo: user govrelay cannot reach $run; the demo's data goes to $data" >&2
	fi
	mkdir -p "$data"
	# govrelay must be able to pass through every folder above its data
	# (a normal / and /var/lib already let it; a root folder made with
	# mktemp, as in a bare chroot, does not). Search only, never read.
	# From / down, so each test sees only the folder it names.
	d=
	for part in / $(dirname "$data" | tr / ' '); do
		d="${d%/}/${part#/}"
		[ "$part" = / ] && d=/
		if ! runuser -u govrelay -- test -x "$d" 2>/dev/null; then
			echo "demo: letting user govrelay pass through $d (chmod o+x)" >&2
			chmod o+x "$d"
		fi
	done
	# A demo run before the privilege drop left root's files: hand them over
	# (-R never follows a symbolic link; this is root's own demo folder).
	chown -R govrelay: "$data"
	chown root:govrelay "$run/key.pem"
	chmod 640 "$run/key.pem"
fi
sed "s|@RUN@|$run|g; s|^data_dir = .*|data_dir = $data|" demo/govrelay.conf.in > "$conf"

ctl="$top/build/govrelayctl -c $conf"
gctl() { "$top/build/govrelayctl" -c "$conf" "$@"; }

# The demo city's agencies (tenants), their domains, mailboxes and one user
# who submits with AUTH. Each step looks first, so running the demo again
# changes nothing.
demo_tenant() { # ID NAME [PARENT]
	gctl tenant show "$1" >/dev/null 2>&1 && return 0
	gctl tenant add "$1" --name "$2" ${3:+--parent "$3"}
}
demo_domain() { # DOMAIN TENANT
	if gctl domain show "$1" --json 2>/dev/null | grep -q "\"tenant\":\"$2\""; then
		return 0
	fi
	# Left by an older demo without its agency: add it again with one.
	if gctl domain show "$1" >/dev/null 2>&1; then
		gctl domain remove "$1"
	fi
	gctl domain add "$1" --tenant "$2" --route smtp:127.0.0.1:2526
}
demo_mailbox() { # ADDRESS [TARGET...]: a mailbox, or an alias of the targets
	local a=$1 t
	shift
	gctl mailbox show "$a" >/dev/null 2>&1 && return 0
	if [ $# -eq 0 ]; then
		gctl mailbox add "$a"
	fi
	for t in "$@"; do
		gctl mailbox add "$a" --alias-of "$t"
	done
}
demo_user="demo@so-tttt.demo.gov.vn"
demo_password="demo-password"

demo_tenant city "Thành phố"
demo_tenant so-noi-vu "Sở Nội vụ" city
demo_tenant so-tttt "Sở Thông tin và Truyền thông" city
demo_tenant phuong-1 "Phường 1" so-noi-vu
demo_domain demo.gov.vn city
demo_domain so-noi-vu.demo.gov.vn so-noi-vu
demo_domain so-tttt.demo.gov.vn so-tttt
demo_domain phuong-1.demo.gov.vn phuong-1
demo_mailbox mayor@demo.gov.vn
demo_mailbox vanthu@demo.gov.vn
demo_mailbox vanthu@so-noi-vu.demo.gov.vn
demo_mailbox giamdoc@so-noi-vu.demo.gov.vn
demo_mailbox vanthu@so-tttt.demo.gov.vn
demo_mailbox vanthu@phuong-1.demo.gov.vn
demo_mailbox chutich@phuong-1.demo.gov.vn
# An alias: the city's leaders.
demo_mailbox lanhdao@demo.gov.vn mayor@demo.gov.vn giamdoc@so-noi-vu.demo.gov.vn
# The password goes on standard input, never on the command line.
if ! gctl user show "$demo_user" >/dev/null 2>&1; then
	printf '%s\n' "$demo_password" | gctl user add "$demo_user"
fi
# The department's DKIM key (Ed25519): its outgoing mail is signed; the
# private key stays in the daemon's data, `dkim dns` prints what to publish.
if ! gctl dkim list --domain so-tttt.demo.gov.vn 2>/dev/null | grep -q demo; then
	gctl dkim keygen so-tttt.demo.gov.vn --selector demo --algorithm ed25519
fi

# The agencies' mail store for the demo: every message lands in a Maildir
# (Python's mailbox module expects tmp/, new/ and cur/ to exist already).
mkdir -p "$run/Maildir/tmp" "$run/Maildir/new" "$run/Maildir/cur"
/usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:2526 -c aiosmtpd.handlers.Mailbox "$run/Maildir" \
	>"$run/mailstore.log" 2>&1 &
store_pid=$!

echo
gctl tenant list
tls_note=""
if ! perl -MNet::SSLeay -e 1 >/dev/null 2>&1; then
	tls_note="
(swaks --tls needs Perl's Net::SSLeay: apt-get install libnet-ssleay-perl)"
fi

cat <<MSG

govrelay demo: MX on 127.0.0.1:2525 (STARTTLS), submission on 2587 (STARTTLS,
then AUTH) and 2465 (implicit TLS, then AUTH). Agencies, domains, mailboxes:
    $ctl tenant list
    $ctl domain list
    $ctl mailbox list

From another terminal, a message from the Internet to the city (MX):
    swaks --server 127.0.0.1:2525 --from citizen@example.org --to mayor@demo.gov.vn

A civil servant submitting with AUTH (user $demo_user, password $demo_password):
    swaks --server 127.0.0.1:2587 --tls --auth PLAIN \\
        --auth-user $demo_user --auth-password $demo_password \\
        --from $demo_user --to vanthu@phuong-1.demo.gov.vn$tls_note

See it delivered:   ls $run/Maildir/new/  (the submitted one carries a DKIM-Signature;
                    what to publish for it: $ctl dkim dns so-tttt.demo.gov.vn)
See it audited:     $ctl audit search --sender $demo_user
See the queue:      $ctl queue list
Stop with Ctrl-C.

MSG

"$top/build/govrelayd" -f -c "$conf" &
relay_pid=$!
stop() {
	kill -TERM "$relay_pid" 2>/dev/null || true
	wait "$relay_pid" 2>/dev/null || true
	kill -TERM "$store_pid" 2>/dev/null || true
	wait "$store_pid" 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
wait "$relay_pid"
status=$?
kill -TERM "$store_pid" 2>/dev/null || true
exit $status
