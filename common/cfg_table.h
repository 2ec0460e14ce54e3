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
 *         HOSTPORT ENDPOINT
 *   default: the value as it would be written in the file ("" = unset)
 *   min/max: bounds for numeric types (DURATION in milliseconds)
 */
#define CFG_PARAMS(X) \
	X(hostname, STRING, "", 0, 0, 1, \
	  "Name in the greeting, Received headers and DSNs; default: the system host name.") \
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
	  "Most concurrent SMTP sessions from one client address outside trusted_networks.") \
	X(dns_server, HOSTPORT, "", 0, 0, 0, \
	  "ADDRESS:PORT of the DNS resolver to use; default: the system resolver.") \
	X(smtp_port, PORT, "25", 1, 65535, 1, \
	  "TCP port for deliveries over mx routes.") \
	X(clamd, ENDPOINT, "", 0, 0, 1, \
	  "unix:PATH or tcp:ADDRESS:PORT of clamd. Not available yet: govrelayd refuses a configuration that sets it.") \
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
	X(time_scale, COUNT, "1", 1, 100000, 0, \
	  "Test aid: divide every queue delay (backoff, lifetime, warning) by this factor.") \
	X(auth_max_failures, COUNT, "5", 1, 1000, 1, \
	  "Consecutive failed AUTH attempts after which a user is locked out until govrelayctl user unlock.") \
	X(auth_failure_delay, DURATION, "1s", 0, 60000, 1, \
	  "Delay before answering a failed AUTH; it doubles with each further failure from the same address or for the same user.") \
	X(auth_failure_delay_max, DURATION, "30s", 0, 300000, 1, \
	  "Longest delay before answering a failed AUTH.") \
	X(auth_ip_max_failures, COUNT, "20", 1, 100000, 1, \
	  "Failed AUTH attempts from one client address within auth_failure_window after which it may not try again until the window has passed.") \
	X(auth_failure_window, DURATION, "1h", 1000, 604800000, 1, \
	  "How long failed AUTH attempts of a client address are remembered.") \
	X(password_hash_cost, COUNT, "15", 10, 20, 1, \
	  "log2 of scrypt's N for new password hashes (15: 32 MiB and tens of milliseconds per check); stored hashes keep their own cost.") \
	X(control_command_time, DURATION, "10m", 1000, 86400000, 1, \
	  "Total time one govrelayctl command run through control_socket may take, its output included; a client that reads slower loses the rest of its output.")

#endif
