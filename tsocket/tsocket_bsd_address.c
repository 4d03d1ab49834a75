/* SPDX-License-Identifier: MIT */
/*
 * tsocket BSD backend, addresses: the ipv4, ipv6 and unix domain address
 * type, and the socket helpers both socket kinds share (making a socket
 * bound to an address, the event-context guard of a socket's tevent_fd).
 * The datagram and stream sockets are in tsocket_bsd_dgram.c and
 * tsocket_bsd_stream.c; see docs/tsocket.md ("BSD backend") for the
 * decisions taken here where the seed document is silent.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tsocket_private.h"
#include "tsocket_bsd_private.h"

static char *tsocket_address_bsd_string(const struct tsocket_address *addr,
					TALLOC_CTX *mem_ctx);
static struct tsocket_address *tsocket_address_bsd_copy(
    const struct tsocket_address *addr,
    TALLOC_CTX *mem_ctx,
    const char *location);

static const struct tsocket_address_ops tsocket_address_bsd_ops = {
    .name = "bsd",
    .string = tsocket_address_bsd_string,
    .copy = tsocket_address_bsd_copy,
};

const struct tsocket_address_bsd *tsocket_address_bsd_get(
    const struct tsocket_address *addr)
{
	if (addr == NULL || addr->ops != &tsocket_address_bsd_ops) {
		return NULL;
	}
	return talloc_get_type_abort(addr->private_data,
				     struct tsocket_address_bsd);
}

bool tsocket_bsd_is_inet_family(int family)
{
	return family == AF_INET || family == AF_INET6;
}

/*
 * Copies a sockaddr (already checked by the caller) into a new address.
 * Unix addresses are normalised to a NUL-terminated sun_path and the full
 * sizeof(struct sockaddr_un), as the kernel may hand back a shorter or an
 * unterminated one.
 */
static int tsocket_address_bsd_make(TALLOC_CTX *mem_ctx,
				    const struct sockaddr *sa,
				    socklen_t sa_socklen,
				    struct tsocket_address **_addr,
				    const char *location)
{
	struct tsocket_address *addr;
	struct tsocket_address_bsd *bsd = NULL;

	addr = tsocket_address_create(mem_ctx, &tsocket_address_bsd_ops, &bsd,
				      struct tsocket_address_bsd, location);
	if (addr == NULL) {
		errno = ENOMEM;
		return -1;
	}

	if (sa->sa_family == AF_UNIX) {
		size_t max = sizeof(bsd->u.un.sun_path) - 1;
		size_t plen = 0;

		if (sa_socklen > offsetof(struct sockaddr_un, sun_path)) {
			plen =
			    sa_socklen - offsetof(struct sockaddr_un, sun_path);
		}
		if (plen > max) {
			plen = max;
		}
		bsd->u.un.sun_family = AF_UNIX;
		memcpy(bsd->u.un.sun_path,
		       ((const struct sockaddr_un *)(const void *)sa)->sun_path,
		       plen);
		bsd->u.un.sun_path[plen] = '\0';
		bsd->sa_socklen = sizeof(struct sockaddr_un);
	} else {
		memcpy(&bsd->u.ss, sa, sa_socklen);
		bsd->sa_socklen = sa_socklen;
	}

	*_addr = addr;
	return 0;
}

_PUBLIC_ int _tsocket_address_bsd_from_sockaddr(TALLOC_CTX *mem_ctx,
						const struct sockaddr *sa,
						socklen_t sa_socklen,
						struct tsocket_address **_addr,
						const char *location)
{
	socklen_t need;

	if (sa == NULL || _addr == NULL ||
	    sa_socklen < (socklen_t)sizeof(sa->sa_family)) {
		errno = EINVAL;
		return -1;
	}

	switch (sa->sa_family) {
	case AF_INET:
		need = sizeof(struct sockaddr_in);
		break;
	case AF_INET6:
		need = sizeof(struct sockaddr_in6);
		break;
	case AF_UNIX:
		need = offsetof(struct sockaddr_un, sun_path);
		break;
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (sa_socklen < need) {
		errno = EINVAL;
		return -1;
	}
	if (sa->sa_family != AF_UNIX) {
		/* ignore trailing bytes of a larger buffer (sockaddr_storage)
		 */
		sa_socklen = need;
	}

	return tsocket_address_bsd_make(mem_ctx, sa, sa_socklen, _addr,
					location);
}

_PUBLIC_ ssize_t
tsocket_address_bsd_sockaddr(const struct tsocket_address *addr,
			     struct sockaddr *sa,
			     socklen_t sa_socklen)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);

	if (bsd == NULL || sa == NULL || sa_socklen < bsd->sa_socklen) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa, &bsd->u.ss, bsd->sa_socklen);
	if (sa_socklen > bsd->sa_socklen) {
		memset((uint8_t *)sa + bsd->sa_socklen, 0,
		       sa_socklen - bsd->sa_socklen);
	}
	return bsd->sa_socklen;
}

_PUBLIC_ bool tsocket_address_is_inet(const struct tsocket_address *addr,
				      const char *fam)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);

	if (bsd == NULL || fam == NULL) {
		return false;
	}
	if (strcasecmp(fam, "ip") == 0) {
		return tsocket_bsd_is_inet_family(bsd->u.sa.sa_family);
	}
	if (strcasecmp(fam, "ipv4") == 0) {
		return bsd->u.sa.sa_family == AF_INET;
	}
	if (strcasecmp(fam, "ipv6") == 0) {
		return bsd->u.sa.sa_family == AF_INET6;
	}
	return false;
}

/*
 * Numeric IPv6 with an optional "%scope" (interface name or number);
 * inet_pton() alone knows neither.
 */
static bool tsocket_bsd_parse_in6(const char *str, struct sockaddr_in6 *in6)
{
	const char *pct = strchr(str, '%');
	char buf[INET6_ADDRSTRLEN];
	size_t len;

	if (pct == NULL) {
		return inet_pton(AF_INET6, str, &in6->sin6_addr) == 1;
	}
	len = (size_t)(pct - str);
	if (len >= sizeof(buf) || pct[1] == '\0') {
		return false;
	}
	memcpy(buf, str, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, &in6->sin6_addr) != 1) {
		return false;
	}
	in6->sin6_scope_id = if_nametoindex(pct + 1);
	if (in6->sin6_scope_id == 0) {
		char *end = NULL;
		unsigned long v;

		errno = 0;
		v = strtoul(pct + 1, &end, 10);
		if (errno != 0 || end == NULL || *end != '\0' ||
		    v > UINT32_MAX) {
			return false;
		}
		in6->sin6_scope_id = (uint32_t)v;
	}
	return true;
}

_PUBLIC_ int _tsocket_address_inet_from_strings(TALLOC_CTX *mem_ctx,
						const char *fam,
						const char *addr,
						uint16_t port,
						struct tsocket_address **_addr,
						const char *location)
{
	union tsocket_bsd_sockaddr u;
	socklen_t len;
	bool want4, want6;

	if (fam == NULL || _addr == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (strcasecmp(fam, "ip") == 0) {
		want4 = want6 = true;
		if (addr == NULL) {
			addr = "0.0.0.0";
		}
	} else if (strcasecmp(fam, "ipv4") == 0) {
		want4 = true;
		want6 = false;
		if (addr == NULL) {
			addr = "0.0.0.0";
		}
	} else if (strcasecmp(fam, "ipv6") == 0) {
		want4 = false;
		want6 = true;
		if (addr == NULL) {
			addr = "::";
		}
	} else {
		/* as Samba: EINVAL is for an address the family refuses */
		errno = EAFNOSUPPORT;
		return -1;
	}

	memset(&u, 0, sizeof(u));
	if (want4 && inet_pton(AF_INET, addr, &u.in.sin_addr) == 1) {
		u.in.sin_family = AF_INET;
		u.in.sin_port = htons(port);
		len = sizeof(u.in);
	} else if (want6 && tsocket_bsd_parse_in6(addr, &u.in6)) {
		u.in6.sin6_family = AF_INET6;
		u.in6.sin6_port = htons(port);
		len = sizeof(u.in6);
	} else {
		/* not a numeric address of that family: no DNS here */
		errno = EINVAL;
		return -1;
	}

	return tsocket_address_bsd_make(mem_ctx, &u.sa, len, _addr, location);
}

_PUBLIC_ char *tsocket_address_inet_addr_string(
    const struct tsocket_address *addr, TALLOC_CTX *mem_ctx)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);
	char buf[INET6_ADDRSTRLEN];
	const char *str;
	char *result;

	if (bsd == NULL || !tsocket_bsd_is_inet_family(bsd->u.sa.sa_family)) {
		errno = EINVAL;
		return NULL;
	}
	if (bsd->u.sa.sa_family == AF_INET) {
		str = inet_ntop(AF_INET, &bsd->u.in.sin_addr, buf, sizeof(buf));
	} else {
		str = inet_ntop(AF_INET6, &bsd->u.in6.sin6_addr, buf,
				sizeof(buf));
	}
	if (str == NULL) {
		return NULL;
	}
	result = talloc_strdup(mem_ctx, str);
	if (result == NULL) {
		errno = ENOMEM;
	}
	return result;
}

_PUBLIC_ uint16_t tsocket_address_inet_port(const struct tsocket_address *addr)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);

	if (bsd == NULL) {
		errno = EINVAL;
		return 0;
	}
	switch (bsd->u.sa.sa_family) {
	case AF_INET:
		return ntohs(bsd->u.in.sin_port);
	case AF_INET6:
		return ntohs(bsd->u.in6.sin6_port);
	default:
		errno = EINVAL;
		return 0;
	}
}

_PUBLIC_ int tsocket_address_inet_set_port(struct tsocket_address *addr,
					   uint16_t port)
{
	struct tsocket_address_bsd *bsd;

	if (tsocket_address_bsd_get(addr) == NULL) {
		errno = EINVAL;
		return -1;
	}
	bsd = talloc_get_type_abort(addr->private_data,
				    struct tsocket_address_bsd);
	switch (bsd->u.sa.sa_family) {
	case AF_INET:
		bsd->u.in.sin_port = htons(port);
		return 0;
	case AF_INET6:
		bsd->u.in6.sin6_port = htons(port);
		return 0;
	default:
		errno = EINVAL;
		return -1;
	}
}

_PUBLIC_ bool tsocket_address_is_unix(const struct tsocket_address *addr)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);

	return bsd != NULL && bsd->u.sa.sa_family == AF_UNIX;
}

_PUBLIC_ int _tsocket_address_unix_from_path(TALLOC_CTX *mem_ctx,
					     const char *path,
					     struct tsocket_address **_addr,
					     const char *location)
{
	struct sockaddr_un un;
	size_t len;

	if (_addr == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (path == NULL) {
		path = "";
	}
	len = strlen(path);
	if (len >= sizeof(un.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	memcpy(un.sun_path, path, len);

	return tsocket_address_bsd_make(mem_ctx, (struct sockaddr *)&un,
					sizeof(un), _addr, location);
}

_PUBLIC_ char *tsocket_address_unix_path(const struct tsocket_address *addr,
					 TALLOC_CTX *mem_ctx)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);
	char *result;

	if (bsd == NULL || bsd->u.sa.sa_family != AF_UNIX) {
		errno = EINVAL;
		return NULL;
	}
	result = talloc_strdup(mem_ctx, bsd->u.un.sun_path);
	if (result == NULL) {
		errno = ENOMEM;
	}
	return result;
}

static char *tsocket_address_bsd_string(const struct tsocket_address *addr,
					TALLOC_CTX *mem_ctx)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);
	char buf[INET6_ADDRSTRLEN];
	const char *prefix;
	const char *str;
	uint16_t port;
	char *result;

	if (bsd == NULL) {
		errno = EINVAL;
		return NULL;
	}
	switch (bsd->u.sa.sa_family) {
	case AF_UNIX:
		result =
		    talloc_asprintf(mem_ctx, "unix:%s", bsd->u.un.sun_path);
		goto out;
	case AF_INET:
		prefix = "ipv4";
		str = inet_ntop(AF_INET, &bsd->u.in.sin_addr, buf, sizeof(buf));
		port = ntohs(bsd->u.in.sin_port);
		break;
	case AF_INET6:
		prefix = "ipv6";
		str = inet_ntop(AF_INET6, &bsd->u.in6.sin6_addr, buf,
				sizeof(buf));
		port = ntohs(bsd->u.in6.sin6_port);
		break;
	default:
		errno = EINVAL;
		return NULL;
	}
	if (str == NULL) {
		return NULL;
	}
	result =
	    talloc_asprintf(mem_ctx, "%s:%s:%u", prefix, str, (unsigned)port);
out:
	if (result == NULL) {
		errno = ENOMEM;
	}
	return result;
}

static struct tsocket_address *tsocket_address_bsd_copy(
    const struct tsocket_address *addr,
    TALLOC_CTX *mem_ctx,
    const char *location)
{
	const struct tsocket_address_bsd *bsd = tsocket_address_bsd_get(addr);
	struct tsocket_address *copy = NULL;

	if (bsd == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if (tsocket_address_bsd_make(mem_ctx, &bsd->u.sa, bsd->sa_socklen,
				     &copy, location) != 0) {
		return NULL;
	}
	return copy;
}

/* ------------------------------------------------------------------ */
/* Socket helpers                                                      */
/* ------------------------------------------------------------------ */

int tsocket_bsd_set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags == -1) {
		return -1;
	}
	if ((flags & O_NONBLOCK) != 0) {
		return 0;
	}
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void tsocket_bsd_close_keep_errno(int fd)
{
	int err = errno;

	close(fd);
	errno = err;
}

static bool tsocket_bsd_is_any(const struct tsocket_address_bsd *bsd)
{
	switch (bsd->u.sa.sa_family) {
	case AF_INET:
		return bsd->u.in.sin_port == 0 &&
		       bsd->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
	case AF_INET6:
		return bsd->u.in6.sin6_port == 0 &&
		       IN6_IS_ADDR_UNSPECIFIED(&bsd->u.in6.sin6_addr);
	case AF_UNIX:
		return bsd->u.un.sun_path[0] == '\0';
	default:
		return false;
	}
}

/*
 * Makes a non-blocking, close-on-exec socket of the given type bound to
 * local (unless local is the "any" address with port 0 / an empty unix
 * path, which the kernel binds itself as needed). When local is such a
 * wildcard and remote is given, the socket takes remote's family, so
 * that tstream_inet_tcp_connect_send(ipv4 any, ipv6 remote) works.
 * Returns the fd, or -1 with errno set.
 */
int tsocket_bsd_socket(const struct tsocket_address_bsd *lbsd,
		       const struct tsocket_address_bsd *rbsd,
		       int type,
		       bool want_inet)
{
	int family = lbsd->u.sa.sa_family;
	bool do_bind = !tsocket_bsd_is_any(lbsd);
	int fd;
	int ret;

	if (tsocket_bsd_is_inet_family(family) != want_inet) {
		errno = EINVAL;
		return -1;
	}
	if (rbsd != NULL && rbsd->u.sa.sa_family != family) {
		if (do_bind ||
		    !tsocket_bsd_is_inet_family(rbsd->u.sa.sa_family)) {
			errno = EINVAL;
			return -1;
		}
		family = rbsd->u.sa.sa_family;
	}

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		return -1;
	}

	if (family == AF_INET6) {
		int one = 1;

		/* an ipv6 socket speaks ipv6 only, as its address says */
		ret = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one));
		if (ret == -1) {
			goto fail;
		}
	}
	if (do_bind) {
		if (tsocket_bsd_is_inet_family(family) &&
		    ((family == AF_INET && lbsd->u.in.sin_port != 0) ||
		     (family == AF_INET6 && lbsd->u.in6.sin6_port != 0))) {
			int one = 1;

			ret = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
					 sizeof(one));
			if (ret == -1) {
				goto fail;
			}
		}
		ret = bind(fd, &lbsd->u.sa, lbsd->sa_socklen);
		if (ret == -1) {
			goto fail;
		}
	}
	return fd;

fail:
	tsocket_bsd_close_keep_errno(fd);
	return -1;
}

/*
 * A child of the tevent_context that a socket's tevent_fd lives on. When
 * that context is freed, the socket forgets it: its tevent_fd is dead, and
 * a new context (often at the very same address) needs a new one.
 */
struct tsocket_bsd_ev_guard {
	struct tevent_context **pev;
	struct tsocket_bsd_ev_guard **pguard;
};

static int tsocket_bsd_ev_guard_destructor(struct tsocket_bsd_ev_guard *guard)
{
	*guard->pev = NULL;
	*guard->pguard = NULL;
	return 0;
}

/* Sets *pev = ev, watched by a new guard in *pguard. */
bool tsocket_bsd_watch_ev(struct tevent_context *ev,
			  struct tevent_context **pev,
			  struct tsocket_bsd_ev_guard **pguard)
{
	struct tsocket_bsd_ev_guard *guard;

	TALLOC_FREE(*pguard);
	guard = talloc(ev, struct tsocket_bsd_ev_guard);
	if (guard == NULL) {
		return false;
	}
	guard->pev = pev;
	guard->pguard = pguard;
	talloc_set_destructor(guard, tsocket_bsd_ev_guard_destructor);
	*pguard = guard;
	*pev = ev;
	return true;
}

int tsocket_bsd_errno_is_retry(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}
