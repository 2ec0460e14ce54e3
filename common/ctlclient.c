/*
 * ctlclient: govrelayctl's end of the control socket — connect with
 * timeouts, send a request, read reply lines and frame payloads through
 * one bounded buffer. Both the queue verbs (admin/queue.c) and a
 * delegated operator's whole command (admin-cli/govrelayctl.c) use it, so
 * the client has one reader, as the daemon has one (relay/conn.c).
 *
 * Entry points: ctlclient_connect, ctlclient_send, ctlclient_line,
 * ctlclient_copy, ctlclient_free.
 *
 * OWNERSHIP: the client owns its socket and buffer; ctlclient_free closes.
 * THREADS: any thread, one client per thread.
 * ERRORS: negative errno values (see ctlclient.h); nothing is logged.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctlclient.h"
#include "common/ctlproto.h"
#include "common/util.h"
#include "common/xmalloc.h"

/* Large enough for a whole output frame header and a good part of its payload. */
#define CTLCLIENT_BUF 65536

struct ctlclient {
	int fd;
	size_t start, end;       /* unread bytes are buf[start..end) */
	char buf[CTLCLIENT_BUF];
};

int ctlclient_connect(const char *path, int timeout_s, struct ctlclient **out)
{
	struct timeval tv = { timeout_s, 0 };
	struct sockaddr_un sa;
	struct ctlclient *c;
	int s, e;

	*out = NULL;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (path == NULL || str_copy(sa.sun_path, path, sizeof sa.sun_path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	/* Before connect: a daemon with a full backlog makes connect wait. */
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
	    connect(s, (const struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		close(s);
		return -e;
	}
	c = xcalloc(1, sizeof *c);
	c->fd = s;
	*out = c;
	return 0;
}

void ctlclient_free(struct ctlclient *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c);
}

int ctlclient_send(struct ctlclient *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads more: 1 with data, 0 at end of stream, -errno. */
static int ctlclient_fill(struct ctlclient *c)
{
	ssize_t n;

	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == sizeof c->buf)
		return -ENOBUFS;
	do {
		n = recv(c->fd, c->buf + c->end, sizeof c->buf - c->end, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		/*
		 * The daemon answered and closed with part of our request
		 * unread: what it answered is already here.
		 */
		if (errno == ECONNRESET && c->end > c->start)
			return 0;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	c->end += (size_t)n;
	return n > 0 ? 1 : 0;
}

int ctlclient_line(struct ctlclient *c, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);
		int rc;

		if (nl != NULL) {
			size_t len = (size_t)(nl - (c->buf + c->start));

			if (len >= outlen)
				return -EBADMSG;
			memcpy(out, c->buf + c->start, len);
			out[len] = '\0';
			c->start += len + 1;
			return 0;
		}
		/* CTLPROTO_LINE_MAX counts the newline. */
		if (c->end - c->start >= CTLPROTO_LINE_MAX)
			return -EBADMSG;
		rc = ctlclient_fill(c);
		if (rc == 0)
			return -EPIPE;
		if (rc < 0)
			return rc;
	}
}

int ctlclient_copy(struct ctlclient *c, size_t len, FILE *f)
{
	while (len > 0) {
		size_t have = c->end - c->start, take;
		int rc;

		if (have == 0) {
			rc = ctlclient_fill(c);
			if (rc == 0)
				return -EPIPE;
			if (rc < 0)
				return rc;
			continue;
		}
		take = have < len ? have : len;
		fwrite(c->buf + c->start, 1, take, f);
		c->start += take;
		len -= take;
	}
	fflush(f);
	return 0;
}
