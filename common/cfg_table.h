#ifndef GOVRELAY_CFG_TABLE_H
#define GOVRELAY_CFG_TABLE_H
/*
 * Every configuration parameter, once. The parser, `govrelayd -t`,
 * `govrelayctl config check` and doc/govrelay.conf.5's parameter list are
 * generated from this table (STYLE.md section 9). INTERFACE.md's keys and
 * defaults are the contract; the keys after them are ours.
 *
 * X(name, type, default, min, max, reloadable, doc)
 *   type: STRING PATH SIZE COUNT DURATION PORT LOGFORMAT CIDRS LISTEN
 *         HOSTPORT ENDPOINT BOOL
 *   default: the value as it would be written in the file ("" = unset)
 *   min/max: bounds for numeric types (DURATION in milliseconds)
 */
#define CFG_PARAMS(X) \
	X(hostname, STRING, "", 0, 0, 1, \
	  "Name in the greeting, Received headers and DSNs; default: the system host name.") \
	X(authserv_id, STRING, "", 0, 0, 1, \
	  "authserv-id of our Authentication-Results header field (RFC 8601); default: hostname.") \
	X(data_dir, PATH, "", 0, 0, 0, \
	  "Folder of the LMDB environment and everything persistent (required).") \
	X(listen, LISTEN, "", 0, 0, 0, \
	  "ROLE ADDRESS:PORT with ROLE mx, submission or submissions; repeated lines accumulate.") \
	X(tls_cert_file, PATH, "", 0, 0, 1, \
	  "PEM certificate chain; without it STARTTLS is not offered and submission roles refuse to start.") \
	X(tls_key_file, PATH, "", 0, 0, 1, \
	  "PEM private key matching tls_cert_file.") \
	X(trusted_networks, CIDRS, "127.0.0.0/8 ::1/128", 0, 0, 1, \
	  "CIDR list of clients allowed to relay without AUTH (agency mail servers).") \
	X(max_message_size, SIZE, "26214400", 1024, 4294967295ULL, 1, \
	  "Largest message accepted, in bytes; announced in the EHLO SIZE keyword.") \
	X(max_recipients, COUNT, "100", 1, 100000, 1, \
	  "Most recipients accepted for one message.") \
	X(max_connections, COUNT, "10000", 1, 1000000, 1, \
	  "Most concurrent SMTP sessions over all listeners.") \
	X(max_connections_per_ip, COUNT, "50", 1, 1000000, 1, \
	  "Most concurrent SMTP sessions from one client address (an IPv6 client: its /64) outside trusted_networks.") \
	X(dns_server, HOSTPORT, "", 0, 0, 0, \
	  "ADDRESS:PORT of the DNS resolver to use; default: the system resolver.") \
	X(smtp_port, PORT, "25", 1, 65535, 1, \
	  "TCP port for deliveries over mx routes.") \
	X(clamd, ENDPOINT, "", 0, 0, 0, \
	  "unix:PATH or tcp:ADDRESS:PORT of clamd; when set every message is streamed to it (INSTREAM) before it is accepted: a virus is refused with 554 5.7.1, clamd unreachable, slow or in error is 451 4.7.1; read at startup only.") \
	X(clamd_timeout, DURATION, "30s", 1000, 300000, 0, \
	  "How long govrelayd waits on clamd (to connect, to take the message, to answer) before the message is refused with 451 4.7.1.") \
	X(quarantine_lifetime, DURATION, "30d", 0, 315360000000ULL, 1, \
	  "How long a quarantined message is kept: after that govrelayd deletes it (body and envelope) with an audit record (event admin, action quarantine.expire, by govrelayd); looked at every minute (a quarter of a lifetime under four minutes). 0 keeps every message until an operator releases or deletes it, and the quarantine then grows until the store is full.") \
	X(control_socket, PATH, "", 0, 0, 0, \
	  "Unix socket for govrelayctl live verbs; default: DATA_DIR/control.sock.") \
	X(log_format, LOGFORMAT, "text", 0, 0, 1, \
	  "Operational log format: text or json.") \
	X(minimal_backoff_time, DURATION, "300s", 1000, 31536000000ULL, 1, \
	  "Shortest retry delay after a temporary delivery failure.") \
	X(maximal_backoff_time, DURATION, "4000s", 1000, 31536000000ULL, 1, \
	  "Longest retry delay after a temporary delivery failure.") \
	X(max_queue_lifetime, DURATION, "5d", 0, 31536000000ULL, 1, \
	  "Age after which an undeliverable message is returned to its sender.") \
	X(delay_warning_time, DURATION, "4h", 0, 31536000000ULL, 1, \
	  "Age after which the sender is warned of a delayed message; 0s disables.") \
	X(command_timeout, DURATION, "5m", 1000, 3600000, 1, \
	  "How long a session waits for the next command (RFC 5321 4.5.3.2.7).") \
	X(data_timeout, DURATION, "5m", 1000, 3600000, 1, \
	  "How long a session waits between two reads during DATA or BDAT.") \
	X(greet_pause, DURATION, "1s", 0, 60000, 1, \
	  "Delay before the greeting on mx listeners for clients outside trusted_networks; a client that talks during it is refused.") \
	X(max_bad_commands, COUNT, "10", 1, 1000, 1, \
	  "Errors a session may make before it is disconnected with 421.") \
	X(max_session_time, DURATION, "1h", 1000, 86400000, 1, \
	  "Total lifetime of one SMTP session; after it the session is ended with 421 4.4.2.") \
	X(junk_command_limit, COUNT, "100", 1, 1000000000, 1, \
	  "NOOP, RSET, HELP, VRFY, EHLO and HELO commands a session may send before it queues a message; one more is answered 421 4.7.0 and the session ends. A queued message resets the count.") \
	X(queue_max_size, SIZE, "17179869184", 1048576, 1099511627776ULL, 0, \
	  "Largest size the LMDB store may grow to; a full store answers 452 4.3.1.") \
	X(delivery_concurrency, COUNT, "100", 1, 10000, 1, \
	  "Most messages being delivered at once.") \
	X(destination_concurrency, COUNT, "20", 1, 1000, 1, \
	  "Most sessions open to one next hop at once; more messages wait and reuse them.") \
	X(connection_cache_time, DURATION, "2s", 0, 300000, 1, \
	  "How long an outbound connection to a next hop known without DNS (smtp: or lmtp: with an address, lmtp:unix:) stays open and idle when its messages are done, for the next message to the same next hop; 0 sends QUIT at once.") \
	X(time_scale, COUNT, "1", 1, 100000, 0, \
	  "Test aid: divide every queue delay (backoff, lifetime, warning) by this factor.") \
	X(auth_max_failures, COUNT, "5", 1, 1000, 1, \
	  "Consecutive failed AUTH attempts after which a user is locked out for auth_lockout_time or until govrelayctl user unlock.") \
	X(auth_failure_delay, DURATION, "1s", 0, 60000, 1, \
	  "Delay before answering a failed AUTH; it doubles with each further failure from the same address or for the same user.") \
	X(auth_failure_delay_max, DURATION, "30s", 0, 300000, 1, \
	  "Longest delay before answering a failed AUTH.") \
	X(auth_ip_max_failures, COUNT, "20", 1, 100000, 1, \
	  "Failed AUTH attempts from one client address within auth_failure_window after which it may not try again until the window has passed.") \
	X(auth_failure_window, DURATION, "1h", 1000, 604800000, 1, \
	  "How long failed AUTH attempts of a client address (an IPv6 client: its /64) are remembered.") \
	X(auth_lockout_time, DURATION, "15m", 1000, 2592000000ULL, 1, \
	  "How long auth_max_failures consecutive failures lock a user; failures further apart than this are not consecutive.") \
	X(auth_session_failures, COUNT, "3", 1, 100, 1, \
	  "Failed AUTH attempts one session may make; the last is followed by 421 4.7.0 and the end of the session.") \
	X(rcpt_error_soft_limit, COUNT, "3", 0, 1000, 1, \
	  "Refused recipients a session outside trusted_networks may have before each further refusal is answered after rcpt_error_delay.") \
	X(rcpt_error_delay, DURATION, "1s", 0, 60000, 1, \
	  "Delay before answering a refused recipient past rcpt_error_soft_limit; it doubles with each further refusal in the session.") \
	X(rcpt_error_delay_max, DURATION, "10s", 0, 300000, 1, \
	  "Longest delay before answering a refused recipient.") \
	X(password_hash_cost, COUNT, "15", 10, 20, 1, \
	  "log2 of scrypt's N for new password hashes (15: 32 MiB and tens of milliseconds per check); stored hashes keep their own cost.") \
	X(delegated_route_networks, CIDRS, "", 0, 0, 1, \
	  "CIDR list of next hops a delegated postmaster may name in smtp:ADDRESS:PORT and lmtp:ADDRESS:PORT routes (IP literals only); unset: none. Root and the daemon's user are not bound by it.") \
	X(maildir_root, PATH, "", 0, 0, 1, \
	  "Folder beneath which maildir: routes must lie: checked when a delegated postmaster adds one, and at every delivery (no symbolic link followed below it); unset: delegated postmasters may not name maildir routes.") \
	X(lmtp_socket_dir, PATH, "", 0, 0, 1, \
	  "Folder in which the sockets of lmtp:unix: routes named by delegated postmasters must lie; unset: delegated postmasters may not name such routes.") \
	X(postmaster_address, STRING, "", 0, 0, 1, \
	  "Where mail to <Postmaster> (no domain) goes; default: postmaster@ the first domain, in name order, of a root tenant (or of no tenant).") \
	X(max_inflight_memory, SIZE, "268435456", 65536, 1099511627776ULL, 1, \
	  "Most message data all sessions together may hold in memory before it is queued; a DATA or BDAT that would exceed it is answered 452 4.3.1.") \
	X(tls_ca_file, PATH, "", 0, 0, 0, \
	  "PEM CA certificates that verify next hops when TLS is required outbound; default: the system CA store. Read at startup only.") \
	X(audit_signing_key, PATH, "", 0, 0, 0, \
	  "PEM Ed25519 private key (openssl genpkey -algorithm ed25519) that signs audit checkpoints; keep it outside data_dir, readable only by the daemon's user (mode 600). Unset: no checkpoints.") \
	X(audit_checkpoint_file, PATH, "", 0, 0, 0, \
	  "Append-only file of signed audit checkpoints, one line each; required with audit_signing_key.") \
	X(audit_checkpoint_records, COUNT, "1000", 1, 1000000000, 0, \
	  "Write an audit checkpoint once this many audit records were added since the last one.") \
	X(audit_checkpoint_interval, DURATION, "5m", 1000, 86400000, 0, \
	  "Write an audit checkpoint at least this often while the audit chain grows (never when its head did not move).") \
	X(user, STRING, "govrelay", 0, 0, 0, \
	  "Unprivileged user govrelayd runs as: started as root it binds its listeners, reads its key, then drops to this user for good (never root). data_dir must belong to it.") \
	X(control_command_time, DURATION, "10m", 1000, 86400000, 1, \
	  "Total time one govrelayctl command run through control_socket may take, its output included; a client that reads slower loses the rest of its output.") \
	X(dmarc, BOOL, "yes", 0, 0, 0, \
	  "Apply DMARC (RFC 7489) to mail from outside trusted_networks on mx listeners: the From: domain's published policy decides (reject: 550 5.7.1, quarantine: held in the queue, none: delivered), and mail claiming one of our domains without SPF or DKIM alignment is refused whatever the policy.") \
	X(spf, BOOL, "yes", 0, 0, 0, \
	  "Check SPF (RFC 7208) at MAIL FROM on mx listeners for clients outside trusted_networks: temperror is 451 4.7.24, fail for a domain of ours 550 5.7.23, fail for other domains as the recipient's agency says (tenant policy spf_fail_action); a Received-SPF field is added. yes or no; read at startup only (the policy engine is built once).") \
	X(dkim_sign, BOOL, "yes", 0, 0, 0, \
	  "Sign mail leaving through submission, submissions or a trusted agency server on mx with the DKIM keys of its From: domain (govrelayctl dkim keygen); a domain without keys is not signed.") \
	X(dkim_verify, BOOL, "yes", 0, 0, 0, \
	  "Verify the DKIM signatures of mail received on mx listeners (every signature, keys looked up through dns_server); the results go to the Authentication-Results header and the audit record. no: not verified, no dkim= result.") \
	X(content_scan, BOOL, "yes", 0, 0, 0, \
	  "Read every message as its reader would see it before the 250, on every listener: MIME structure limits (554 5.6.0) and state-secret markings (Mat, Toi mat, Tuyet mat: tenant policy classified_action and classified_min_level). no turns both off, an emergency switch that govrelayd warns about at start; read at startup only.")

#endif
