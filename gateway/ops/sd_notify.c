/* SPDX-License-Identifier: MIT */
/*
 * sd_notify(3) without libsystemd: see sd_notify.h.
 */
#include "sd_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* systemd reads at most this much of one message; ours are far shorter */
#define NOTIFY_MAX 4096

struct tsgate_notify {
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
};

static int notify_destructor(struct tsgate_notify *n)
{
	if (n->fd != -1) {
		close(n->fd);
	}
	return 0;
}

/* "/path" or "@abstract" into addr; 0 or an errno. */
static int notify_address(const char *name,
			  struct sockaddr_un *addr,
			  socklen_t *len)
{
	size_t n = strlen(name);

	if (name[0] != '/' && name[0] != '@') {
		return EINVAL;
	}
	/* a path needs its NUL; an abstract name is exactly its bytes */
	if (n >= sizeof(addr->sun_path) || n < 2) {
		return n < 2 ? EINVAL : ENAMETOOLONG;
	}
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, name, n);
	if (name[0] == '@') {
		addr->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int tsgate_notify_new(TALLOC_CTX *mem_ctx,
		      const char *socket_name,
		      struct tsgate_notify **pnotify)
{
	struct tsgate_notify *n;
	int ret;

	*pnotify = NULL;
	if (socket_name == NULL || socket_name[0] == '\0') {
		return 0;
	}
	n = talloc_zero(mem_ctx, struct tsgate_notify);
	if (n == NULL) {
		return ENOMEM;
	}
	n->fd = -1;
	talloc_set_destructor(n, notify_destructor);
	ret = notify_address(socket_name, &n->addr, &n->addr_len);
	if (ret != 0) {
		talloc_free(n);
		return ret;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd == -1) {
		ret = errno;
		talloc_free(n);
		return ret;
	}
	*pnotify = n;
	return 0;
}

static int notify_send(struct tsgate_notify *n, const char *msg, size_t len)
{
	ssize_t sent;

	do {
		sent = sendto(n->fd, msg, len, MSG_NOSIGNAL,
			      (const struct sockaddr *)&n->addr, n->addr_len);
	} while (sent == -1 && errno == EINTR);
	if (sent == -1) {
		return errno;
	}
	return (size_t)sent == len ? 0 : EMSGSIZE;
}

int tsgate_notify(struct tsgate_notify *n, const char *fmt, ...)
{
	char msg[NOTIFY_MAX];
	va_list ap;
	int len;

	if (n == NULL) {
		return 0;
	}
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0) {
		return EINVAL;
	}
	if ((size_t)len >= sizeof(msg)) {
		/* the end of a long STATUS= line goes; the rest is sent */
		len = sizeof(msg) - 1;
	}
	return notify_send(n, msg, (size_t)len);
}

int tsgate_notify_reloading(struct tsgate_notify *n)
{
	struct timespec ts;

	if (n == NULL) {
		return 0;
	}
	/* systemd (notify-reload) matches this against its own clock */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return tsgate_notify(n, "RELOADING=1\nMONOTONIC_USEC=%llu",
			     (unsigned long long)ts.tv_sec * 1000000ULL +
				 (unsigned long long)ts.tv_nsec / 1000ULL);
}
