#!/bin/bash
# Sets up everything on a fresh Debian 12 machine and runs govrelay in the
# foreground on a demo configuration: loopback ports, a self-signed
# certificate made on first run, data in demo/run/ inside the checkout, and
# demo domains delivering to a local mail store (a Maildir written by a
# small SMTP server from python3-aiosmtpd) so you can watch mail go through.
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
sed "s|@RUN@|$run|g" demo/govrelay.conf.in > "$conf"

# The agencies' mail store for the demo: every message lands in a Maildir
# (Python's mailbox module expects tmp/, new/ and cur/ to exist already).
mkdir -p "$run/Maildir/tmp" "$run/Maildir/new" "$run/Maildir/cur"
/usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:2526 -c aiosmtpd.handlers.Mailbox "$run/Maildir" \
	>"$run/mailstore.log" 2>&1 &
store_pid=$!

ctl="$top/build/govrelayctl -c $conf"
for d in demo.gov.vn phuong-1.demo.gov.vn so-tttt.demo.gov.vn; do
	$ctl domain show "$d" >/dev/null 2>&1 || $ctl domain add "$d" --route smtp:127.0.0.1:2526
done

cat <<MSG

govrelay demo: MX on 127.0.0.1:2525 (STARTTLS), submission on 2587/2465.
Send a message from another terminal:
    swaks --server 127.0.0.1:2525 --from citizen@example.org --to mayor@demo.gov.vn
See it delivered:   ls $run/Maildir/new/
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
