/*
 * tsocket BSD backend: ipv4, ipv6 and unix domain addresses, datagram
 * sockets and stream sockets on top of the generic layer (tsocket.c).
 *
 * Every socket keeps one tevent_fd for its whole life; requests toggle
 * its flags instead of re-registering it, and the syscall is tried at once
 * (unless the last read already found nothing to read) so that the common
 * case, data already there or room in the socket buffer, completes without
 * a trip through epoll. See docs/tsocket.md ("BSD backend") for the
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

/*
 * Private data is fetched with _tevent_req_data(), _tstream_context_data()
 * and _tdgram_context_data() rather than their talloc_get_type_abort()
 * macros: the generic layer only ever passes this file its own requests
 * and contexts, and the name check (a strcmp) per call cost about 2% of
 * the CPU per operation in the benchmark.
 */

/*
 * A UDP payload never exceeds 65535 bytes, so an inet datagram socket
 * receives into one scratch buffer of that size (one recvmsg per
 * datagram) and copies out exactly the datagram; unix datagrams can be
 * larger and are sized with FIONREAD first.
 */
#define TDGRAM_BSD_INET_SCRATCH 65536

/* Vectors up to this size are copied into the request state itself. */
#define TSTREAM_BSD_INLINE_IOV 4

/*
 * A readv asking for less than this also reads up to this much ahead into
 * the stream's own buffer: a PDU header read then brings the body along,
 * and the body's readv is served without a syscall.
 */
#define TSTREAM_BSD_READAHEAD 4096

/*
 * What a request waiting for room to write asks of its tevent_fd. tevent
 * before 0.15 only reports EPOLLERR/EPOLLHUP to an fd that waits for
 * TEVENT_FD_READ (a write-only one is silently dropped from epoll), so a
 * waiting writer also asks for READ there; newer tevent has
 * TEVENT_FD_ERROR for exactly this.
 */
#ifdef TEVENT_FD_ERROR
#define TSOCKET_BSD_WRITE_WAIT  (TEVENT_FD_WRITE | TEVENT_FD_ERROR)
#define TSOCKET_BSD_READ_EVENTS (TEVENT_FD_READ | TEVENT_FD_ERROR)
#else
#define TSOCKET_BSD_WRITE_WAIT  (TEVENT_FD_WRITE | TEVENT_FD_READ)
#define TSOCKET_BSD_READ_EVENTS TEVENT_FD_READ
#endif

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

union tsocket_bsd_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

struct tsocket_address_bsd {
	socklen_t sa_socklen;
	union tsocket_bsd_sockaddr u;
};

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

static const struct tsocket_address_bsd *tsocket_address_bsd_get(
    const struct tsocket_address *addr)
{
	if (addr == NULL || addr->ops != &tsocket_address_bsd_ops) {
		return NULL;
	}
	return talloc_get_type_abort(addr->private_data,
				     struct tsocket_address_bsd);
}

static bool tsocket_bsd_is_inet_family(int family)
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

static int tsocket_bsd_set_nonblocking(int fd)
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

static void tsocket_bsd_close_keep_errno(int fd)
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
static int tsocket_bsd_socket(const struct tsocket_address_bsd *lbsd,
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
static bool tsocket_bsd_watch_ev(struct tevent_context *ev,
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

static int tsocket_bsd_errno_is_retry(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* ------------------------------------------------------------------ */
/* Datagrams                                                           */
/* ------------------------------------------------------------------ */

struct tdgram_bsd {
	int fd;
	bool inet;
	uint8_t *scratch;
	/* the last receive found nothing and epoll has not said otherwise */
	bool drained;

	struct tevent_context *ev;
	struct tsocket_bsd_ev_guard *ev_guard;
	struct tevent_fd *fde;
	uint16_t fde_flags;

	struct tevent_req *recvfrom_req;
	struct tevent_req *sendto_req;
};

struct tdgram_bsd_recvfrom_state {
	struct tdgram_bsd *bsd;
	uint8_t *buf;
	ssize_t len;
	union tsocket_bsd_sockaddr src;
	socklen_t src_len;
};

struct tdgram_bsd_sendto_state {
	struct tdgram_bsd *bsd;
	const uint8_t *buf;
	size_t len;
	union tsocket_bsd_sockaddr dst;
	socklen_t dst_len;
	ssize_t ret;
};

static void tdgram_bsd_fde_handler(struct tevent_context *ev,
				   struct tevent_fd *fde,
				   uint16_t flags,
				   void *private_data);
static bool tdgram_bsd_recvfrom_try(struct tevent_req *req, bool from_event);
static bool tdgram_bsd_sendto_try(struct tevent_req *req);

static int tdgram_bsd_destructor(struct tdgram_bsd *bsd)
{
	/* a request that outlives the socket must not touch it */
	if (bsd->recvfrom_req != NULL) {
		struct tdgram_bsd_recvfrom_state *state =
		    _tevent_req_data(bsd->recvfrom_req);

		state->bsd = NULL;
		bsd->recvfrom_req = NULL;
	}
	if (bsd->sendto_req != NULL) {
		struct tdgram_bsd_sendto_state *state =
		    _tevent_req_data(bsd->sendto_req);

		state->bsd = NULL;
		bsd->sendto_req = NULL;
	}
	/* leave epoll before the fd number can be reused */
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	if (bsd->fd != -1) {
		close(bsd->fd);
		bsd->fd = -1;
	}
	return 0;
}

/* Adds flag to the socket's tevent_fd, creating it on first use. */
static int tdgram_bsd_want(struct tdgram_bsd *bsd,
			   struct tevent_context *ev,
			   uint16_t flag)
{
	if (bsd->fde == NULL || bsd->ev != ev) {
		TALLOC_FREE(bsd->fde);
		bsd->fde_flags |= flag;
		bsd->fde = tevent_add_fd(ev, bsd, bsd->fd, bsd->fde_flags,
					 tdgram_bsd_fde_handler, bsd);
		if (bsd->fde == NULL ||
		    !tsocket_bsd_watch_ev(ev, &bsd->ev, &bsd->ev_guard)) {
			TALLOC_FREE(bsd->fde);
			bsd->fde_flags = 0;
			return ENOMEM;
		}
		return 0;
	}
	if ((bsd->fde_flags & flag) != flag) {
		bsd->fde_flags |= flag;
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
	return 0;
}

static void tdgram_bsd_unwant(struct tdgram_bsd *bsd, uint16_t flag)
{
	if ((bsd->fde_flags & flag) == 0) {
		return;
	}
	bsd->fde_flags &= ~flag;
	if (bsd->fde != NULL) {
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
}

static void tdgram_bsd_fde_handler(struct tevent_context *ev,
				   struct tevent_fd *fde,
				   uint16_t flags,
				   void *private_data)
{
	struct tdgram_bsd *bsd = private_data;

	/*
	 * One direction per call: completing a request runs the caller's
	 * callback, which may free bsd. Level triggering brings us back
	 * for the other direction.
	 */
	if ((flags & TEVENT_FD_WRITE) != 0 && bsd->sendto_req != NULL) {
		tdgram_bsd_sendto_try(bsd->sendto_req);
		return;
	}
	if ((flags & TSOCKET_BSD_READ_EVENTS) != 0) {
		bsd->drained = false;
		if (bsd->recvfrom_req != NULL) {
			tdgram_bsd_recvfrom_try(bsd->recvfrom_req, true);
			return;
		}
		if (bsd->sendto_req != NULL &&
		    tdgram_bsd_sendto_try(bsd->sendto_req)) {
			/* an error reported as readability */
			return;
		}
		/*
		 * Datagrams nobody asked for yet (the flag is kept lazily,
		 * see tdgram_bsd_recvfrom_cleanup): stop polling for them.
		 */
		tdgram_bsd_unwant(bsd, TEVENT_FD_READ);
		return;
	}
	if ((flags & TEVENT_FD_WRITE) != 0) {
		tdgram_bsd_unwant(bsd, TEVENT_FD_WRITE);
	}
}

static void tdgram_bsd_recvfrom_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->recvfrom_req == req) {
		/*
		 * TEVENT_FD_READ stays set: a server asks for the next
		 * datagram right away, and the handler drops the flag if
		 * nobody does.
		 */
		state->bsd->recvfrom_req = NULL;
	}
	state->bsd = NULL;
}

/* Whether the socket's reading side is shut (POLLRDHUP), checked rarely. */
static bool tdgram_bsd_read_shut(struct tdgram_bsd *bsd)
{
	struct pollfd pfd = {.fd = bsd->fd, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & (POLLRDHUP | POLLHUP)) != 0;
}

/*
 * Receives one datagram without blocking into *pbuf (allocated on
 * mem_ctx) and its sender into *src / *src_len. Returns its length, 0
 * when there was none (bsd->drained set), or -1 with *perrno.
 * from_event: epoll said readable (a socket shut for reading says so
 * forever, which must end with EPIPE instead of spinning).
 */
static ssize_t tdgram_bsd_recv_once(struct tdgram_bsd *bsd,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **pbuf,
				    union tsocket_bsd_sockaddr *src,
				    socklen_t *src_len,
				    bool from_event,
				    int *perrno)
{
	struct iovec iov;
	struct msghdr msg;
	ssize_t ret;

	for (;;) {
		size_t want;
		uint8_t *dest;

		if (bsd->inet) {
			if (bsd->scratch == NULL) {
				bsd->scratch =
				    talloc_size(bsd, TDGRAM_BSD_INET_SCRATCH);
				if (bsd->scratch == NULL) {
					*perrno = ENOMEM;
					return -1;
				}
			}
			dest = bsd->scratch;
			want = TDGRAM_BSD_INET_SCRATCH;
		} else {
			int avail = 0;

			ret = ioctl(bsd->fd, FIONREAD, &avail);
			if (ret == -1) {
				*perrno = errno;
				return -1;
			}
			if (avail <= 0) {
				/* nothing queued, or an empty datagram */
				avail = 1;
			}
			TALLOC_FREE(*pbuf);
			*pbuf = talloc_size(mem_ctx, (size_t)avail);
			if (*pbuf == NULL) {
				*perrno = ENOMEM;
				return -1;
			}
			dest = *pbuf;
			want = (size_t)avail;
		}

		iov.iov_base = dest;
		iov.iov_len = want;
		memset(&msg, 0, sizeof(msg));
		msg.msg_name = src;
		msg.msg_namelen = sizeof(*src);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;

		ret = recvmsg(bsd->fd, &msg, MSG_DONTWAIT);
		if (ret == -1) {
			int err = errno;

			if (tsocket_bsd_errno_is_retry(err)) {
				TALLOC_FREE(*pbuf);
				bsd->drained = true;
				/*
				 * Readable by epoll yet nothing to receive: a
				 * socket shut for reading stays "readable"
				 * forever and would spin the loop.
				 */
				if (from_event && tdgram_bsd_read_shut(bsd)) {
					*perrno = EPIPE;
					return -1;
				}
				return 0;
			}
			*perrno = err;
			return -1;
		}
		if (ret == 0) {
			/*
			 * An empty datagram is never reported: take the next.
			 * (A socket that is not a datagram socket says 0 at
			 * its end, forever: that must not loop here.)
			 */
			if (tdgram_bsd_read_shut(bsd)) {
				*perrno = EPIPE;
				return -1;
			}
			continue;
		}
		if ((msg.msg_flags & MSG_TRUNC) != 0) {
			*perrno = EMSGSIZE;
			return -1;
		}
		*src_len = msg.msg_namelen;
		if (bsd->inet) {
			*pbuf = talloc_memdup(mem_ctx, dest, (size_t)ret);
			if (*pbuf == NULL) {
				*perrno = ENOMEM;
				return -1;
			}
		}
		return ret;
	}
}

/*
 * Receives one datagram without blocking. Returns true when the request
 * finished (done or error), false when it must wait for readability.
 */
static bool tdgram_bsd_recvfrom_try(struct tevent_req *req, bool from_event)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tdgram_bsd_recv_once(state->bsd, state, &state->buf, &state->src,
				   &state->src_len, from_event, &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	if (ret == 0) {
		return false;
	}
	state->len = ret;
	tevent_req_done(req);
	return true;
}

/* A sender's address as the caller gets it. */
static int tdgram_bsd_src_address(TALLOC_CTX *mem_ctx,
				  union tsocket_bsd_sockaddr *sa,
				  socklen_t len,
				  struct tsocket_address **src)
{
	if (len < (socklen_t)sizeof(sa_family_t)) {
		/* an unbound unix peer: empty path */
		sa->sa.sa_family = AF_UNIX;
		len = sizeof(sa_family_t);
	}
	return _tsocket_address_bsd_from_sockaddr(mem_ctx, &sa->sa, len, src,
						  __location__);
}

static struct tevent_req *tdgram_bsd_recvfrom_send(TALLOC_CTX *mem_ctx,
						   struct tevent_context *ev,
						   struct tdgram_context *dgram)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	struct tdgram_bsd_recvfrom_state *state;
	int err;

	req = tevent_req_create(mem_ctx, &state,
				struct tdgram_bsd_recvfrom_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;
	state->len = -1;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->recvfrom_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}

	/* a server asks again right after each datagram: try it only if
	 * the last attempt did not already find the queue empty */
	if (!bsd->drained && tdgram_bsd_recvfrom_try(req, false)) {
		return tevent_req_post(req, ev);
	}

	err = tdgram_bsd_want(bsd, ev, TEVENT_FD_READ);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->recvfrom_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tdgram_bsd_recvfrom_cleanup);
	return req;
}

static ssize_t tdgram_bsd_recvfrom_recv(struct tevent_req *req,
					int *perrno,
					TALLOC_CTX *mem_ctx,
					uint8_t **buf,
					struct tsocket_address **src)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		if (src != NULL) {
			int rc = tdgram_bsd_src_address(mem_ctx, &state->src,
							state->src_len, src);

			if (rc != 0) {
				*perrno = errno;
				tevent_req_received(req);
				return -1;
			}
		}
		if (buf != NULL) {
			*buf = talloc_move(mem_ctx, &state->buf);
		}
		ret = state->len;
	}
	tevent_req_received(req);
	return ret;
}

static void tdgram_bsd_sendto_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->sendto_req == req) {
		/* sockets are writable nearly always: drop it right away */
		tdgram_bsd_unwant(state->bsd,
				  TSOCKET_BSD_WRITE_WAIT & ~TEVENT_FD_READ);
		state->bsd->sendto_req = NULL;
	}
	state->bsd = NULL;
}

/*
 * One sendto without blocking. Returns false when the socket buffer is
 * full, true when it is done: *pret the bytes sent, or -1 with *perrno.
 */
static bool tdgram_bsd_send_once(struct tdgram_bsd *bsd,
				 const uint8_t *buf,
				 size_t len,
				 const struct sockaddr *dst,
				 socklen_t dst_len,
				 ssize_t *pret,
				 int *perrno)
{
	ssize_t ret;

	ret = sendto(bsd->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT, dst,
		     dst_len);
	if (ret == -1 && errno == EMSGSIZE && len <= INT_MAX - 1023) {
		/*
		 * A unix datagram is limited by the send buffer, not by a
		 * protocol: raise SO_SNDBUF to the datagram and try once
		 * more, as Samba does (the tsocket oracle found 300 KB that
		 * Samba sends and we refused). For UDP above 64 KiB the
		 * second try fails with EMSGSIZE again.
		 */
		int size = (int)((len + 1023) & ~(size_t)1023);

		if (setsockopt(bsd->fd, SOL_SOCKET, SO_SNDBUF, &size,
			       sizeof(size)) == 0) {
			ret = sendto(bsd->fd, buf, len,
				     MSG_NOSIGNAL | MSG_DONTWAIT, dst, dst_len);
		} else {
			errno = EMSGSIZE;
		}
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			return false;
		}
		*perrno = err;
	}
	*pret = ret;
	return true;
}

static bool tdgram_bsd_sendto_try(struct tevent_req *req)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);
	ssize_t ret = -1;
	int err = 0;

	if (!tdgram_bsd_send_once(state->bsd, state->buf, state->len,
				  state->dst_len != 0 ? &state->dst.sa : NULL,
				  state->dst_len, &ret, &err)) {
		return false;
	}
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret = ret;
	tevent_req_done(req);
	return true;
}

static struct tevent_req *tdgram_bsd_sendto_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram,
    const uint8_t *buf,
    size_t len,
    const struct tsocket_address *dst)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	struct tdgram_bsd_sendto_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tdgram_bsd_sendto_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;
	state->buf = buf;
	state->len = len;
	state->ret = -1;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->sendto_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (buf == NULL || len == 0) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	if (dst != NULL) {
		const struct tsocket_address_bsd *dbsd =
		    tsocket_address_bsd_get(dst);

		if (dbsd == NULL) {
			tevent_req_error(req, EINVAL);
			return tevent_req_post(req, ev);
		}
		memcpy(&state->dst, &dbsd->u, dbsd->sa_socklen);
		state->dst_len = dbsd->sa_socklen;
	}

	if (tdgram_bsd_sendto_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tdgram_bsd_want(bsd, ev, TSOCKET_BSD_WRITE_WAIT);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->sendto_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tdgram_bsd_sendto_cleanup);
	return req;
}

static ssize_t tdgram_bsd_sendto_recv(struct tevent_req *req, int *perrno)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tdgram_bsd_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->recvfrom_req != NULL || bsd->sendto_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	bsd->fde_flags = 0;
	close(bsd->fd);
	bsd->fd = -1;
	TALLOC_FREE(bsd->scratch);

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static int tdgram_bsd_disconnect_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

/*
 * The generic layer's fast path for datagrams (tdgram_try_recvfrom_fn and
 * tdgram_try_sendto_fn of tsocket_private.h): the same receive/send as
 * the requests above, tried before any request of ours exists. false:
 * nothing done, the request path deals with it.
 */
static bool tdgram_bsd_try_recvfrom(struct tdgram_context *dgram,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **buf,
				    struct tsocket_address **src,
				    ssize_t *pret,
				    int *perrno)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	union tsocket_bsd_sockaddr sa;
	socklen_t sa_len = 0;
	ssize_t ret;

	if (bsd->fd == -1 || bsd->recvfrom_req != NULL || bsd->drained) {
		return false;
	}
	ret = tdgram_bsd_recv_once(bsd, mem_ctx, buf, &sa, &sa_len, false,
				   perrno);
	if (ret == 0) {
		return false;
	}
	if (ret > 0 && tdgram_bsd_src_address(mem_ctx, &sa, sa_len, src) != 0) {
		*perrno = errno;
		ret = -1;
	}
	*pret = ret;
	return true;
}

static bool tdgram_bsd_try_sendto(struct tdgram_context *dgram,
				  const uint8_t *buf,
				  size_t len,
				  const struct tsocket_address *dst,
				  ssize_t *pret,
				  int *perrno)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	const struct tsocket_address_bsd *dbsd = NULL;

	if (bsd->fd == -1 || bsd->sendto_req != NULL) {
		return false;
	}
	if (dst != NULL) {
		dbsd = tsocket_address_bsd_get(dst);
		if (dbsd == NULL) {
			return false;
		}
	}
	return tdgram_bsd_send_once(
	    bsd, buf, len, dbsd != NULL ? &dbsd->u.sa : NULL,
	    dbsd != NULL ? dbsd->sa_socklen : 0, pret, perrno);
}

static const struct tdgram_context_ops tdgram_bsd_ops = {
    .name = "bsd",
    .recvfrom_send = tdgram_bsd_recvfrom_send,
    .recvfrom_recv = tdgram_bsd_recvfrom_recv,
    .sendto_send = tdgram_bsd_sendto_send,
    .sendto_recv = tdgram_bsd_sendto_recv,
    .disconnect_send = tdgram_bsd_disconnect_send,
    .disconnect_recv = tdgram_bsd_disconnect_recv,
};

/* Wraps fd; on failure the caller keeps the fd. */
static int tdgram_bsd_wrap(TALLOC_CTX *mem_ctx,
			   int fd,
			   bool inet,
			   struct tdgram_context **_dgram,
			   const char *location)
{
	struct tdgram_context *dgram;
	struct tdgram_bsd *bsd = NULL;

	dgram = tdgram_context_create(mem_ctx, &tdgram_bsd_ops, &bsd,
				      struct tdgram_bsd, location);
	if (dgram == NULL) {
		errno = ENOMEM;
		return -1;
	}
	bsd->fd = fd;
	bsd->inet = inet;
	talloc_set_destructor(bsd, tdgram_bsd_destructor);
	_tdgram_context_set_try(dgram, tdgram_bsd_try_recvfrom,
				tdgram_bsd_try_sendto);

	*_dgram = dgram;
	return 0;
}

_PUBLIC_ int _tdgram_bsd_existing_socket(TALLOC_CTX *mem_ctx,
					 int fd,
					 struct tdgram_context **_dgram,
					 const char *location)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	bool inet = false;

	if (fd < 0 || _dgram == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (tsocket_bsd_set_nonblocking(fd) == -1) {
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		inet = tsocket_bsd_is_inet_family(ss.ss_family);
	}
	return tdgram_bsd_wrap(mem_ctx, fd, inet, _dgram, location);
}

static int tdgram_bsd_socket(const struct tsocket_address *local,
			     const struct tsocket_address *remote,
			     bool broadcast,
			     bool want_inet,
			     TALLOC_CTX *mem_ctx,
			     struct tdgram_context **_dgram,
			     const char *location)
{
	const struct tsocket_address_bsd *lbsd = tsocket_address_bsd_get(local);
	const struct tsocket_address_bsd *rbsd = NULL;
	int fd;
	int ret;

	if (lbsd == NULL || _dgram == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (remote != NULL) {
		rbsd = tsocket_address_bsd_get(remote);
		if (rbsd == NULL) {
			errno = EINVAL;
			return -1;
		}
	}
	if (broadcast && lbsd->u.sa.sa_family != AF_INET) {
		errno = EINVAL;
		return -1;
	}

	fd = tsocket_bsd_socket(lbsd, rbsd, SOCK_DGRAM, want_inet);
	if (fd == -1) {
		return -1;
	}
	if (broadcast) {
		int one = 1;

		ret =
		    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
		if (ret == -1) {
			goto fail;
		}
	}
	if (rbsd != NULL) {
		ret = connect(fd, &rbsd->u.sa, rbsd->sa_socklen);
		if (ret == -1) {
			goto fail;
		}
	}
	ret = tdgram_bsd_wrap(mem_ctx, fd, want_inet, _dgram, location);
	if (ret == -1) {
		goto fail;
	}
	return 0;

fail:
	tsocket_bsd_close_keep_errno(fd);
	return -1;
}

_PUBLIC_ int _tdgram_inet_udp_socket(const struct tsocket_address *local,
				     const struct tsocket_address *remote,
				     TALLOC_CTX *mem_ctx,
				     struct tdgram_context **dgram,
				     const char *location)
{
	return tdgram_bsd_socket(local, remote, false, true, mem_ctx, dgram,
				 location);
}

_PUBLIC_ int _tdgram_inet_udp_broadcast_socket(
    const struct tsocket_address *local,
    TALLOC_CTX *mem_ctx,
    struct tdgram_context **dgram,
    const char *location)
{
	return tdgram_bsd_socket(local, NULL, true, true, mem_ctx, dgram,
				 location);
}

_PUBLIC_ int _tdgram_unix_socket(const struct tsocket_address *local,
				 const struct tsocket_address *remote,
				 TALLOC_CTX *mem_ctx,
				 struct tdgram_context **dgram,
				 const char *location)
{
	return tdgram_bsd_socket(local, remote, false, false, mem_ctx, dgram,
				 location);
}

/* ------------------------------------------------------------------ */
/* Streams                                                             */
/* ------------------------------------------------------------------ */

struct tstream_bsd {
	int fd;
	bool is_socket;

	/* sticky errors, per direction (see tstream_bsd_fail) */
	int read_error;
	int write_error;

	struct tevent_context *ev;
	struct tsocket_bsd_ev_guard *ev_guard;
	struct tevent_fd *fde;
	uint16_t fde_flags;

	struct tevent_req *readv_req;
	struct tevent_req *writev_req;
	/*
	 * The readable handler (see tstream_bsd_set_readable_handler): it
	 * waits on the tevent_fd like a readv. readable_im exists only
	 * after a writer's error had to call it (tstream_bsd_fail_other).
	 */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	struct tstream_context *readable_stream;
	struct tevent_immediate *readable_im;

	/*
	 * Bytes read ahead, not yet handed out: [off, off + len). The
	 * buffer exists only while it holds bytes: an idle stream keeps
	 * none.
	 */
	uint8_t *rahead;
	size_t rahead_off;
	size_t rahead_len;
	/*
	 * The last read found the socket empty and epoll has not said
	 * otherwise since: the next readv waits instead of trying a read
	 * that would only return EAGAIN.
	 */
	bool drained;
	/* both directions ready: take turns (see tstream_bsd_fde_handler) */
	bool read_first;
};

struct tstream_bsd_readv_state {
	struct tstream_bsd *bsd;
	struct iovec *vector;
	int count;
	int ret;
	/* one spare entry at the end for the read-ahead buffer */
	struct iovec inline_iov[TSTREAM_BSD_INLINE_IOV + 1];
};

struct tstream_bsd_writev_state {
	struct tstream_bsd *bsd;
	struct iovec *vector;
	int count;
	int ret;
	struct iovec inline_iov[TSTREAM_BSD_INLINE_IOV];
};

static void tstream_bsd_fde_handler(struct tevent_context *ev,
				    struct tevent_fd *fde,
				    uint16_t flags,
				    void *private_data);
static bool tstream_bsd_readv_try(struct tevent_req *req);
static bool tstream_bsd_writev_try(struct tevent_req *req);

static int tstream_bsd_destructor(struct tstream_bsd *bsd)
{
	if (bsd->readv_req != NULL) {
		struct tstream_bsd_readv_state *state =
		    _tevent_req_data(bsd->readv_req);

		state->bsd = NULL;
		bsd->readv_req = NULL;
	}
	if (bsd->writev_req != NULL) {
		struct tstream_bsd_writev_state *state =
		    _tevent_req_data(bsd->writev_req);

		state->bsd = NULL;
		bsd->writev_req = NULL;
	}
	/* leave epoll before the fd number can be reused */
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	if (bsd->fd != -1) {
		close(bsd->fd);
		bsd->fd = -1;
	}
	return 0;
}

/*
 * Records an error: end of stream (EPIPE) or a write-side EPIPE stay in
 * their direction (the other one may still work: a half-closed peer);
 * anything else (ECONNRESET, ETIMEDOUT, ...) breaks both directions.
 */
static void tstream_bsd_fail(struct tstream_bsd *bsd, int err, bool reading)
{
	if (err == EPIPE) {
		if (reading) {
			if (bsd->read_error == 0) {
				bsd->read_error = err;
			}
		} else if (bsd->write_error == 0) {
			bsd->write_error = err;
		}
		return;
	}
	if (bsd->read_error == 0) {
		bsd->read_error = err;
	}
	if (bsd->write_error == 0) {
		bsd->write_error = err;
	}
}

/*
 * A fatal error seen by one direction also ends a request waiting in the
 * other: the kernel reports a reset only once, and a waiting writer may
 * never hear of it (see TSOCKET_BSD_WRITE_WAIT). The other callback runs
 * from the loop, not inside the current one.
 */
/* Forgets the readable handler and calls it (which may free bsd). */
static void tstream_bsd_readable_fire(struct tstream_bsd *bsd)
{
	tstream_readable_handler_t fn = bsd->readable_fn;

	bsd->readable_fn = NULL;
	fn(bsd->readable_stream, bsd->readable_private);
}

static void tstream_bsd_readable_im_handler(struct tevent_context *ev,
					    struct tevent_immediate *im,
					    void *private_data)
{
	struct tstream_bsd *bsd = private_data;

	(void)ev;
	(void)im;
	if (bsd->readable_fn != NULL) {
		tstream_bsd_readable_fire(bsd);
	}
}

static void tstream_bsd_fail_other(struct tstream_bsd *bsd,
				   int err,
				   bool reading)
{
	struct tevent_req *other = reading ? bsd->writev_req : bsd->readv_req;

	if (err == EPIPE || bsd->ev == NULL) {
		return;
	}
	if (!reading && bsd->readable_fn != NULL) {
		/*
		 * A readv would fail at once now: call the handler from the
		 * loop. Rare enough for an immediate made on demand; without
		 * memory the socket's error still wakes the tevent_fd.
		 */
		if (bsd->readable_im == NULL) {
			bsd->readable_im = tevent_create_immediate(bsd);
		}
		if (bsd->readable_im != NULL) {
			tevent_schedule_immediate(
			    bsd->readable_im, bsd->ev,
			    tstream_bsd_readable_im_handler, bsd);
		}
		return;
	}
	if (other == NULL) {
		return;
	}
	tevent_req_defer_callback(other, bsd->ev);
	tevent_req_error(other, err);
}

static int tstream_bsd_want(struct tstream_bsd *bsd,
			    struct tevent_context *ev,
			    uint16_t flag)
{
	if (bsd->fde == NULL || bsd->ev != ev) {
		TALLOC_FREE(bsd->fde);
		bsd->fde_flags |= flag;
		bsd->fde = tevent_add_fd(ev, bsd, bsd->fd, bsd->fde_flags,
					 tstream_bsd_fde_handler, bsd);
		if (bsd->fde == NULL ||
		    !tsocket_bsd_watch_ev(ev, &bsd->ev, &bsd->ev_guard)) {
			TALLOC_FREE(bsd->fde);
			bsd->fde_flags = 0;
			return ENOMEM;
		}
		return 0;
	}
	if ((bsd->fde_flags & flag) != flag) {
		bsd->fde_flags |= flag;
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
	return 0;
}

static void tstream_bsd_unwant(struct tstream_bsd *bsd, uint16_t flag)
{
	if ((bsd->fde_flags & flag) == 0) {
		return;
	}
	bsd->fde_flags &= ~flag;
	if (bsd->fde != NULL) {
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
}

static void tstream_bsd_fde_handler(struct tevent_context *ev,
				    struct tevent_fd *fde,
				    uint16_t flags,
				    void *private_data)
{
	struct tstream_bsd *bsd = private_data;

	/*
	 * One direction per call: completing a request runs the caller's
	 * callback, which may free bsd. Level triggering brings us back
	 * for the other direction.
	 */
	if ((flags & TEVENT_FD_WRITE) != 0 && bsd->writev_req != NULL) {
		/*
		 * With a reader waiting too, alternate: a relay writing a
		 * steady flow to this socket must not starve its reading.
		 */
		bool both =
		    (flags & TSOCKET_BSD_READ_EVENTS) != 0 &&
		    (bsd->readv_req != NULL || bsd->readable_fn != NULL);

		if (!both || !bsd->read_first) {
			bsd->read_first = both;
			tstream_bsd_writev_try(bsd->writev_req);
			return;
		}
		bsd->read_first = false;
	}
	if ((flags & TSOCKET_BSD_READ_EVENTS) != 0) {
		bsd->drained = false;
		if (bsd->readv_req != NULL) {
			tstream_bsd_readv_try(bsd->readv_req);
			return;
		}
		if (bsd->readable_fn != NULL) {
			/* bytes, EOF or an error: the readv that follows
			 * takes them (TEVENT_FD_READ stays set for it) */
			tstream_bsd_readable_fire(bsd);
			return;
		}
		if (bsd->writev_req != NULL &&
		    tstream_bsd_writev_try(bsd->writev_req)) {
			/* an error (RST) reported as readability */
			return;
		}
		/*
		 * Bytes or an EOF nobody reads yet (the flag is kept
		 * lazily, see tstream_bsd_readv_cleanup): stop polling
		 * for them instead of spinning. A reset then shows up at
		 * the next readv, which fails a waiting writev too.
		 */
		tstream_bsd_unwant(bsd, TEVENT_FD_READ);
		return;
	}
	if ((flags & TEVENT_FD_WRITE) != 0) {
		tstream_bsd_unwant(bsd, TEVENT_FD_WRITE);
	}
}

static ssize_t tstream_bsd_pending_bytes(struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	int avail = 0;

	if (bsd->fd == -1) {
		errno = ENOTCONN;
		return -1;
	}
	if (bsd->read_error != 0) {
		errno = bsd->read_error;
		return -1;
	}
	if (ioctl(bsd->fd, FIONREAD, &avail) == -1) {
		return -1;
	}
	return (ssize_t)bsd->rahead_len + avail;
}

/*
 * Copies the caller's vector so it can be advanced; small ones live in
 * the state itself.
 */
static struct iovec *tstream_bsd_copy_vector(TALLOC_CTX *mem_ctx,
					     struct iovec *inline_iov,
					     const struct iovec *vector,
					     size_t count,
					     size_t spare)
{
	struct iovec *copy = inline_iov;

	if (count > TSTREAM_BSD_INLINE_IOV) {
		copy = talloc_array(mem_ctx, struct iovec, count + spare);
		if (copy == NULL) {
			return NULL;
		}
	}
	memcpy(copy, vector, count * sizeof(struct iovec));
	return copy;
}

/*
 * Consumes n bytes from the front of *vector / *count, skipping empty
 * entries. Returns true when the vector is exhausted.
 */
static bool tstream_bsd_advance(struct iovec **vector, int *count, size_t n)
{
	struct iovec *v = *vector;
	int c = *count;

	while (c > 0) {
		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			break;
		}
		n -= v->iov_len;
		v++;
		c--;
	}
	*vector = v;
	*count = c;
	return c == 0;
}

static void tstream_bsd_readv_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->readv_req == req) {
		/*
		 * TEVENT_FD_READ stays set: the next readv usually follows
		 * at once (a PDU body after its header), and the handler
		 * drops the flag if nobody asks.
		 */
		state->bsd->readv_req = NULL;
	}
	state->bsd = NULL;
}

/* The read-ahead buffer goes as soon as it is empty. */
static void tstream_bsd_rahead_release(struct tstream_bsd *bsd)
{
	if (bsd->rahead_len == 0) {
		TALLOC_FREE(bsd->rahead);
		bsd->rahead_off = 0;
	}
}

/*
 * One readv(2) into *vector / *count without blocking; the vector has a
 * spare entry at [*count] for the read-ahead buffer (made for this read
 * and freed again unless bytes went into it). Returns the bytes
 * that went into the vector (advanced past them; a short read leaves
 * the socket drained), 0 when there was nothing to read, or -1 with
 * *perrno (EPIPE at the end of the stream), recorded as sticky.
 *
 * Only called with the read-ahead buffer empty (a readv takes it first).
 */
static ssize_t tstream_bsd_readv_once(struct tstream_bsd *bsd,
				      struct iovec **vector,
				      int *count,
				      int *perrno)
{
	struct iovec *v = *vector;
	size_t want = 0;
	size_t capacity;
	int iovcnt = *count;
	ssize_t ret;
	int i;

	/*
	 * want is everything readv(2) may put into the caller's buffers,
	 * all of them: only bytes beyond it are read-ahead. (Stopping the
	 * sum at the read-ahead size once booked bytes that had landed in
	 * later buffers as read-ahead, with no buffer behind them: issue
	 * 13.) The generic layer caps the total at INT_MAX.
	 */
	for (i = 0; i < *count; i++) {
		want += v[i].iov_len;
	}
	capacity = want;
	if (want < TSTREAM_BSD_READAHEAD && *count < IOV_MAX) {
		if (bsd->rahead == NULL) {
			bsd->rahead = talloc_size(bsd, TSTREAM_BSD_READAHEAD);
		}
		if (bsd->rahead != NULL) {
			/* the spare entry after the caller's vector */
			v[iovcnt].iov_base = bsd->rahead;
			v[iovcnt].iov_len = TSTREAM_BSD_READAHEAD;
			iovcnt++;
			capacity += TSTREAM_BSD_READAHEAD;
		}
	}

	ret = readv(bsd->fd, v, iovcnt);
	if (ret <= (ssize_t)want) {
		/* nothing went ahead (or nothing came at all) */
		TALLOC_FREE(bsd->rahead);
	}
	if (ret == 0) {
		/* the peer closed: a read never reports 0 bytes */
		tstream_bsd_fail(bsd, EPIPE, true);
		*perrno = EPIPE;
		return -1;
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			bsd->drained = true;
			return 0;
		}
		tstream_bsd_fail(bsd, err, true);
		tstream_bsd_fail_other(bsd, err, true);
		*perrno = err;
		return -1;
	}
	bsd->drained = (size_t)ret < capacity;
	if ((size_t)ret > want) {
		/* the caller's vector is full, the rest went ahead */
		bsd->rahead_off = 0;
		bsd->rahead_len = (size_t)ret - want;
		ret = (ssize_t)want;
	}
	tstream_bsd_advance(vector, count, (size_t)ret);
	return ret;
}

/*
 * One readv without blocking. Returns true when the request finished,
 * false when it waits for more bytes.
 */
static bool tstream_bsd_readv_try(struct tevent_req *req)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tstream_bsd_readv_once(state->bsd, &state->vector, &state->count,
				     &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret += ret;
	if (state->count > 0) {
		/* a short read means the socket is drained: wait */
		return false;
	}
	tevent_req_done(req);
	return true;
}

/*
 * Serves a readv from the read-ahead buffer. Returns the bytes copied
 * (the vector is advanced past them).
 */
static size_t tstream_bsd_take_readahead(struct tstream_bsd *bsd,
					 struct iovec **vector,
					 int *count)
{
	size_t taken = 0;

	while (bsd->rahead_len > 0 && *count > 0) {
		size_t n = (*vector)[0].iov_len;

		if (n > bsd->rahead_len) {
			n = bsd->rahead_len;
		}
		memcpy((*vector)[0].iov_base, bsd->rahead + bsd->rahead_off, n);
		bsd->rahead_off += n;
		bsd->rahead_len -= n;
		taken += n;
		tstream_bsd_advance(vector, count, n);
	}
	tstream_bsd_rahead_release(bsd);
	return taken;
}

static struct tevent_req *tstream_bsd_readv_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 struct iovec *vector,
						 size_t count)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	struct tstream_bsd_readv_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_bsd_readv_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->readv_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->read_error != 0) {
		tevent_req_error(req, bsd->read_error);
		return tevent_req_post(req, ev);
	}
	if (count == 0 || count > IOV_MAX) {
		tevent_req_error(req, count == 0 ? EINVAL : EMSGSIZE);
		return tevent_req_post(req, ev);
	}
	state->vector =
	    tstream_bsd_copy_vector(state, state->inline_iov, vector, count, 1);
	if (tevent_req_nomem(state->vector, req)) {
		return tevent_req_post(req, ev);
	}
	state->count = (int)count;
	if (tstream_bsd_advance(&state->vector, &state->count, 0)) {
		/* only empty buffers */
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	state->ret =
	    (int)tstream_bsd_take_readahead(bsd, &state->vector, &state->count);
	if (state->count == 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	if (!bsd->drained && tstream_bsd_readv_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tstream_bsd_want(bsd, ev, TEVENT_FD_READ);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->readv_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tstream_bsd_readv_cleanup);
	return req;
}

static int tstream_bsd_readv_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static void tstream_bsd_writev_cleanup(struct tevent_req *req,
				       enum tevent_req_state req_state)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->writev_req == req) {
		/* sockets are writable nearly always: drop it right away */
		tstream_bsd_unwant(state->bsd,
				   TSOCKET_BSD_WRITE_WAIT & ~TEVENT_FD_READ);
		state->bsd->writev_req = NULL;
	}
	state->bsd = NULL;
}

/*
 * writev(2) on something that is not a socket (a pipe) cannot take
 * MSG_NOSIGNAL: block SIGPIPE around it and swallow the one it raised.
 */
static ssize_t tstream_bsd_writev_nosigpipe(int fd,
					    const struct iovec *iov,
					    int count)
{
	sigset_t pipe_set, old_set, pending;
	bool was_pending;
	ssize_t ret;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) != 0) {
		return writev(fd, iov, count);
	}
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;

	ret = writev(fd, iov, count);
	err = errno;

	if (ret == -1 && err == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};

		while (sigtimedwait(&pipe_set, NULL, &zero) == -1 &&
		       errno == EINTR) {
		}
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	errno = err;
	return ret;
}

/*
 * One write of *vector / *count without blocking. Returns the bytes
 * written (the vector is advanced past them), 0 when the socket buffer
 * is full, or -1 with *perrno, recorded as sticky.
 */
static ssize_t tstream_bsd_writev_once(struct tstream_bsd *bsd,
				       struct iovec **vector,
				       int *count,
				       int *perrno)
{
	ssize_t ret;

	for (;;) {
		if (bsd->is_socket) {
			struct msghdr msg = {
			    .msg_iov = *vector,
			    .msg_iovlen = (size_t)*count,
			};

			ret =
			    sendmsg(bsd->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (ret == -1 && errno == ENOTSOCK) {
				bsd->is_socket = false;
				continue;
			}
		} else {
			ret = tstream_bsd_writev_nosigpipe(bsd->fd, *vector,
							   *count);
		}
		break;
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			return 0;
		}
		tstream_bsd_fail(bsd, err, false);
		tstream_bsd_fail_other(bsd, err, false);
		*perrno = err;
		return -1;
	}
	if (ret == 0) {
		/* nothing taken from a non-empty vector: treat as closed */
		tstream_bsd_fail(bsd, EPIPE, false);
		*perrno = EPIPE;
		return -1;
	}
	tstream_bsd_advance(vector, count, (size_t)ret);
	return ret;
}

static bool tstream_bsd_writev_try(struct tevent_req *req)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tstream_bsd_writev_once(state->bsd, &state->vector, &state->count,
				      &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret += ret;
	if (state->count > 0) {
		/* socket buffer full: wait for room */
		return false;
	}
	tevent_req_done(req);
	return true;
}

static struct tevent_req *tstream_bsd_writev_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    const struct iovec *vector,
    size_t count)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	struct tstream_bsd_writev_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_bsd_writev_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->write_error != 0) {
		tevent_req_error(req, bsd->write_error);
		return tevent_req_post(req, ev);
	}
	if (count == 0 || count > IOV_MAX) {
		tevent_req_error(req, count == 0 ? EINVAL : EMSGSIZE);
		return tevent_req_post(req, ev);
	}
	state->vector =
	    tstream_bsd_copy_vector(state, state->inline_iov, vector, count, 0);
	if (tevent_req_nomem(state->vector, req)) {
		return tevent_req_post(req, ev);
	}
	state->count = (int)count;
	if (tstream_bsd_advance(&state->vector, &state->count, 0)) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	if (tstream_bsd_writev_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tstream_bsd_want(bsd, ev, TSOCKET_BSD_WRITE_WAIT);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->writev_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tstream_bsd_writev_cleanup);
	return req;
}

static int tstream_bsd_writev_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tstream_bsd_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->readv_req != NULL || bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	bsd->fde_flags = 0;
	close(bsd->fd);
	bsd->fd = -1;
	/* what was read ahead goes with the socket */
	TALLOC_FREE(bsd->rahead);
	bsd->rahead_len = 0;

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static int tstream_bsd_simple_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tstream_bsd_shutdown_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (shutdown(bsd->fd, SHUT_WR) == -1) {
		int err = errno;

		tevent_req_error(req, err == ENOTSOCK ? EOPNOTSUPP : err);
		return tevent_req_post(req, ev);
	}
	tstream_bsd_fail(bsd, EPIPE, false);

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

/*
 * The generic layer's fast path (tstream_try_io_fn of
 * tsocket_private.h): the same readv/writev as the requests below,
 * tried before any request of ours exists. Only called with no request
 * of ours outstanding in that direction; 0 lets the request path deal
 * with everything else.
 */
static ssize_t tstream_bsd_try_readv(struct tstream_context *stream,
				     struct iovec **vector,
				     int *count,
				     int *perrno)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	size_t taken;
	ssize_t ret;

	if (bsd->fd == -1 || bsd->readv_req != NULL) {
		return 0;
	}
	if (bsd->read_error != 0) {
		*perrno = bsd->read_error;
		return -1;
	}
	tstream_bsd_advance(vector, count, 0);
	taken = tstream_bsd_take_readahead(bsd, vector, count);
	if (*count == 0 || bsd->drained) {
		return (ssize_t)taken;
	}
	ret = tstream_bsd_readv_once(bsd, vector, count, perrno);
	if (ret == -1) {
		return -1;
	}
	return (ssize_t)taken + ret;
}

static ssize_t tstream_bsd_try_writev(struct tstream_context *stream,
				      struct iovec **vector,
				      int *count,
				      int *perrno)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);

	if (bsd->fd == -1 || bsd->writev_req != NULL) {
		return 0;
	}
	if (bsd->write_error != 0) {
		*perrno = bsd->write_error;
		return -1;
	}
	tstream_bsd_advance(vector, count, 0);
	return tstream_bsd_writev_once(bsd, vector, count, perrno);
}

/*
 * What the readable handler needs first: ENOTCONN, or
 * *pready when a readv would not wait, else TEVENT_FD_READ wanted.
 * Returns 0 with *pready false when the caller must register its waiter.
 */
static int tstream_bsd_wait_prepare(struct tstream_bsd *bsd,
				    struct tevent_context *ev,
				    bool *pready)
{
	if (bsd->fd == -1) {
		return ENOTCONN;
	}
	if (bsd->read_error != 0 || bsd->rahead_len > 0) {
		/* the readv fails or is served at once */
		*pready = true;
		return 0;
	}
	return tstream_bsd_want(bsd, ev, TEVENT_FD_READ);
}

/*
 * The readable handler (of tstream_set_readable_handler() or of a
 * tstream_wait_readable request): it waits on the socket's tevent_fd
 * with no allocation.
 */
static int tstream_bsd_set_readable_handler(struct tstream_context *stream,
					    struct tevent_context *ev,
					    tstream_readable_handler_t handler,
					    void *private_data,
					    bool *pready)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	int err;

	if (handler == NULL) {
		/* TEVENT_FD_READ stays: the handler drops it if nobody reads */
		bsd->readable_fn = NULL;
		bsd->readable_private = NULL;
		TALLOC_FREE(bsd->readable_im);
		return 0;
	}
	err = tstream_bsd_wait_prepare(bsd, ev, pready);
	if (err != 0 || *pready) {
		return err;
	}
	bsd->readable_fn = handler;
	bsd->readable_private = private_data;
	bsd->readable_stream = stream;
	return 0;
}

static const struct tstream_context_ops tstream_bsd_ops = {
    .name = "bsd",
    .pending_bytes = tstream_bsd_pending_bytes,
    .readv_send = tstream_bsd_readv_send,
    .readv_recv = tstream_bsd_readv_recv,
    .writev_send = tstream_bsd_writev_send,
    .writev_recv = tstream_bsd_writev_recv,
    .disconnect_send = tstream_bsd_disconnect_send,
    .disconnect_recv = tstream_bsd_simple_recv,
    .shutdown_send = tstream_bsd_shutdown_send,
    .shutdown_recv = tstream_bsd_simple_recv,
    .set_readable_handler = tstream_bsd_set_readable_handler,
};

/* Wraps fd; on failure the caller keeps the fd. */
static int tstream_bsd_wrap(TALLOC_CTX *mem_ctx,
			    int fd,
			    bool is_socket,
			    struct tstream_context **_stream,
			    const char *location)
{
	struct tstream_context *stream;
	struct tstream_bsd *bsd = NULL;

	stream = tstream_context_create(mem_ctx, &tstream_bsd_ops, &bsd,
					struct tstream_bsd, location);
	if (stream == NULL) {
		errno = ENOMEM;
		return -1;
	}
	bsd->fd = fd;
	bsd->is_socket = is_socket;
	talloc_set_destructor(bsd, tstream_bsd_destructor);
	_tstream_context_set_try(stream, tstream_bsd_try_readv,
				 tstream_bsd_try_writev);

	*_stream = stream;
	return 0;
}

_PUBLIC_ int _tstream_bsd_existing_socket(TALLOC_CTX *mem_ctx,
					  int fd,
					  struct tstream_context **_stream,
					  const char *location)
{
	int type;
	socklen_t len = sizeof(type);
	bool is_socket;

	if (fd < 0 || _stream == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (tsocket_bsd_set_nonblocking(fd) == -1) {
		return -1;
	}
	is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
	return tstream_bsd_wrap(mem_ctx, fd, is_socket, _stream, location);
}

_PUBLIC_ int _tstream_unix_socketpair(TALLOC_CTX *mem_ctx1,
				      struct tstream_context **_stream1,
				      TALLOC_CTX *mem_ctx2,
				      struct tstream_context **_stream2,
				      const char *location)
{
	struct tstream_context *stream1 = NULL;
	int fds[2];

	if (_stream1 == NULL || _stream2 == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       fds) == -1) {
		return -1;
	}
	if (tstream_bsd_wrap(mem_ctx1, fds[0], true, &stream1, location) ==
	    -1) {
		close(fds[0]);
		close(fds[1]);
		errno = ENOMEM;
		return -1;
	}
	if (tstream_bsd_wrap(mem_ctx2, fds[1], true, _stream2, location) ==
	    -1) {
		talloc_free(stream1); /* closes fds[0] */
		close(fds[1]);
		errno = ENOMEM;
		return -1;
	}
	*_stream1 = stream1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stream connect                                                      */
/* ------------------------------------------------------------------ */

struct tstream_bsd_connect_state {
	int fd;
	struct tevent_fd *fde;
};

static void tstream_bsd_connect_fde_handler(struct tevent_context *ev,
					    struct tevent_fd *fde,
					    uint16_t flags,
					    void *private_data);

static void tstream_bsd_connect_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state)
{
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);

	TALLOC_FREE(state->fde);
	if (req_state == TEVENT_REQ_DONE) {
		/* the fd goes to the stream made by _recv */
		return;
	}
	if (state->fd != -1) {
		close(state->fd);
		state->fd = -1;
	}
}

static struct tevent_req *tstream_bsd_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote,
    bool want_inet)
{
	const struct tsocket_address_bsd *lbsd = tsocket_address_bsd_get(local);
	const struct tsocket_address_bsd *rbsd =
	    tsocket_address_bsd_get(remote);
	struct tevent_req *req;
	struct tstream_bsd_connect_state *state;
	int ret;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_bsd_connect_state);
	if (req == NULL) {
		return NULL;
	}
	state->fd = -1;
	tevent_req_set_cleanup_fn(req, tstream_bsd_connect_cleanup);

	if (lbsd == NULL || rbsd == NULL ||
	    tsocket_bsd_is_inet_family(rbsd->u.sa.sa_family) != want_inet) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	state->fd = tsocket_bsd_socket(lbsd, rbsd, SOCK_STREAM, want_inet);
	if (state->fd == -1) {
		tevent_req_error(req, errno);
		return tevent_req_post(req, ev);
	}

	ret = connect(state->fd, &rbsd->u.sa, rbsd->sa_socklen);
	if (ret == 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	if (errno != EINPROGRESS && errno != EINTR) {
		tevent_req_error(req, errno);
		return tevent_req_post(req, ev);
	}

	/* READ too: only then does tevent report a failed connect */
	state->fde = tevent_add_fd(ev, state, state->fd,
				   TEVENT_FD_READ | TEVENT_FD_WRITE,
				   tstream_bsd_connect_fde_handler, req);
	if (tevent_req_nomem(state->fde, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tstream_bsd_connect_fde_handler(struct tevent_context *ev,
					    struct tevent_fd *fde,
					    uint16_t flags,
					    void *private_data)
{
	struct tevent_req *req =
	    talloc_get_type_abort(private_data, struct tevent_req);
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(state->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
		err = errno;
	}
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

static int tstream_bsd_connect_recv(struct tevent_req *req,
				    int *perrno,
				    TALLOC_CTX *mem_ctx,
				    struct tstream_context **stream,
				    const char *location)
{
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		if (stream == NULL) {
			*perrno = EINVAL;
			ret = -1;
		} else if (tstream_bsd_wrap(mem_ctx, state->fd, true, stream,
					    location) == -1) {
			*perrno = errno;
			ret = -1;
		} else {
			state->fd = -1;
		}
	}
	if (state->fd != -1) {
		close(state->fd);
		state->fd = -1;
	}
	tevent_req_received(req);
	return ret;
}

_PUBLIC_ struct tevent_req *tstream_inet_tcp_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote)
{
	return tstream_bsd_connect_send(mem_ctx, ev, local, remote, true);
}

_PUBLIC_ int _tstream_inet_tcp_connect_recv(struct tevent_req *req,
					    int *perrno,
					    TALLOC_CTX *mem_ctx,
					    struct tstream_context **stream,
					    const char *location)
{
	return tstream_bsd_connect_recv(req, perrno, mem_ctx, stream, location);
}

_PUBLIC_ struct tevent_req *tstream_unix_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote)
{
	return tstream_bsd_connect_send(mem_ctx, ev, local, remote, false);
}

/* parenthesised: the header also makes this name a 4-or-5-argument macro */
_PUBLIC_ int(_tstream_unix_connect_recv)(struct tevent_req *req,
					 int *perrno,
					 TALLOC_CTX *mem_ctx,
					 struct tstream_context **stream,
					 const char *location)
{
	return tstream_bsd_connect_recv(req, perrno, mem_ctx, stream, location);
}
