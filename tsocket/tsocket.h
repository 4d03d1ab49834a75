/* SPDX-License-Identifier: MIT */
/*
 * tsocket — async socket abstraction on talloc and tevent.
 *
 * Public API of libtsocket. Source-compatible with Samba's <tsocket.h>:
 * code written against Samba's tsocket builds against this header
 * unchanged (see docs/api.md for the few deliberate differences).
 *
 * Conventions shared by every function here:
 *  - errors are errno values: synchronous calls return -1 (or NULL) and
 *    set errno; async calls report them through *perrno of their _recv;
 *  - results are allocated on the mem_ctx passed in;
 *  - receive functions never report 0 bytes: end of stream is EPIPE;
 *  - one outstanding read and one outstanding write per context, a second
 *    one fails with EBUSY.
 *
 * Where Samba defines a name as a macro over `_name(..., location)`, both
 * spellings exist here too; `location` is a "file:line" string kept for
 * talloc debugging (talloc_set_name_const).
 */

#ifndef _TSOCKET_H
#define _TSOCKET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <talloc.h>
#include <tevent.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tsocket_address;
struct tdgram_context;
struct tstream_context;
struct iovec;
struct sockaddr;

#ifndef __location__
#define __TSOCKET_STR1(x) #x
#define __TSOCKET_STR2(x) __TSOCKET_STR1(x)
#define __location__      __FILE__ ":" __TSOCKET_STR2(__LINE__)
#endif

/*
 * Lets a `_name(...)` macro accept its arguments with or without the
 * trailing location: _TSOCKET_LOC(n, args...) expands to the call with
 * __location__ appended when exactly n arguments were given.
 */
#define _TSOCKET_ARG6(a1, a2, a3, a4, a5, a6, ...) a6
#define _TSOCKET_CALL4(fn, a, b, c, d)             fn(a, b, c, d, __location__)
#define _TSOCKET_CALL5(fn, a, b, c, d, e)          fn(a, b, c, d, e)

/**
 * @defgroup tsocket_address The tsocket_address abstraction
 * @{
 */

/**
 * @brief Get a string representation of an endpoint, for logs and debugging.
 *
 * Callers must not parse it; use the getters of the address type instead.
 * Formats: "ipv4:ADDR:PORT", "ipv6:ADDR:PORT", "unix:PATH".
 *
 * @param addr     The address.
 * @param mem_ctx  Where to allocate the string.
 * @return The string, or NULL with errno set.
 */
char *tsocket_address_string(const struct tsocket_address *addr,
			     TALLOC_CTX *mem_ctx);

/**
 * @brief Copy an address (e.g. before changing its port).
 *
 * @param addr      The address to copy.
 * @param mem_ctx   The talloc parent of the copy.
 * @param location  Caller location for talloc debugging.
 * @return The copy, or NULL with errno set.
 */
struct tsocket_address *_tsocket_address_copy(
    const struct tsocket_address *addr,
    TALLOC_CTX *mem_ctx,
    const char *location);
/** @brief Copy an address; see _tsocket_address_copy(). */
#define tsocket_address_copy(addr, mem_ctx) \
	_tsocket_address_copy(addr, mem_ctx, __location__)

/** @} */

/**
 * @defgroup tdgram_context The tdgram_context abstraction (datagrams)
 * @{
 */

/**
 * @brief Ask for the next datagram.
 *
 * Only one recvfrom may be outstanding per context; a second one fails
 * with EBUSY.
 *
 * @param mem_ctx  The talloc parent of the request.
 * @param ev       The event context.
 * @param dgram    The datagram context.
 * @return A request; NULL only when out of memory.
 */
struct tevent_req *tdgram_recvfrom_send(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					struct tdgram_context *dgram);

/**
 * @brief Receive the result of tdgram_recvfrom_send().
 *
 * @param req      The request.
 * @param perrno   Set to the errno on failure.
 * @param mem_ctx  Where *buf and *src are allocated.
 * @param buf      The datagram's bytes.
 * @param src      The sender's address (may be NULL if not wanted).
 * @return The datagram's length (never 0), or -1 with *perrno set.
 */
ssize_t tdgram_recvfrom_recv(struct tevent_req *req,
			     int *perrno,
			     TALLOC_CTX *mem_ctx,
			     uint8_t **buf,
			     struct tsocket_address **src);

/**
 * @brief Send one datagram.
 *
 * @param mem_ctx  The talloc parent of the request.
 * @param ev       The event context.
 * @param dgram    The datagram context.
 * @param buf      The bytes (copied or kept until completion: the caller
 *                 keeps them valid until the request is done).
 * @param len      Their number; 0 is refused with EINVAL.
 * @param dst      The destination, NULL on a connected context.
 * @return A request; NULL only when out of memory.
 */
struct tevent_req *tdgram_sendto_send(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tdgram_context *dgram,
				      const uint8_t *buf,
				      size_t len,
				      const struct tsocket_address *dst);

/**
 * @brief Receive the result of tdgram_sendto_send().
 *
 * @return The number of bytes sent (never 0), or -1 with *perrno set.
 */
ssize_t tdgram_sendto_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Shut down a datagram context.
 *
 * Fails with EBUSY while a recvfrom or sendto is outstanding; any I/O
 * after it fails with ENOTCONN. talloc_free() of the context is always
 * allowed and releases everything.
 */
struct tevent_req *tdgram_disconnect_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tdgram_context *dgram);

/**
 * @brief Receive the result of tdgram_disconnect_send().
 * @return 0, or -1 with *perrno set.
 */
int tdgram_disconnect_recv(struct tevent_req *req, int *perrno);

/** @} */

/**
 * @defgroup tstream_context The tstream_context abstraction (byte streams)
 * @{
 */

/**
 * @brief Bytes received but not yet consumed.
 *
 * @return The count (may be 0), or -1 with errno set (e.g. ENOTCONN after
 *         disconnect, or the stream's sticky error).
 */
ssize_t tstream_pending_bytes(struct tstream_context *stream);

/**
 * @brief Read exactly as many bytes as the vector holds.
 *
 * The caller allocates the buffers and keeps them (and the vector) valid
 * until the request completes. An empty vector is EINVAL, more than 1024
 * entries EMSGSIZE, a second outstanding readv EBUSY.
 */
struct tevent_req *tstream_readv_send(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tstream_context *stream,
				      struct iovec *vector,
				      size_t count);

/**
 * @brief Receive the result of tstream_readv_send().
 * @return The number of bytes read (never 0), or -1 with *perrno set;
 *         EPIPE when the peer closed the stream.
 */
int tstream_readv_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Write all bytes of the vector.
 *
 * The vector is copied; the buffers must stay valid until completion.
 * An empty vector is EINVAL, more than 1024 entries EMSGSIZE, a second
 * outstanding writev EBUSY.
 */
struct tevent_req *tstream_writev_send(TALLOC_CTX *mem_ctx,
				       struct tevent_context *ev,
				       struct tstream_context *stream,
				       const struct iovec *vector,
				       size_t count);

/**
 * @brief Receive the result of tstream_writev_send().
 * @return The number of bytes written (never 0), or -1 with *perrno set.
 */
int tstream_writev_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Shut a stream down (both directions).
 *
 * Fails with EBUSY while a readv or writev is outstanding; any I/O after
 * it fails with ENOTCONN.
 */
struct tevent_req *tstream_disconnect_send(TALLOC_CTX *mem_ctx,
					   struct tevent_context *ev,
					   struct tstream_context *stream);

/**
 * @brief Receive the result of tstream_disconnect_send().
 * @return 0, or -1 with *perrno set.
 */
int tstream_disconnect_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Half-close: finish the writing direction, keep reading.
 *
 * tsgate extension (not in Samba). Waits for an outstanding writev to be
 * absent (EBUSY otherwise), then ends the writing side the way the stream
 * type does it: shutdown(SHUT_WR) on a socket, close_notify on TLS, the
 * authenticated EOF on GSSAPI. Reading goes on; a later writev fails with
 * EPIPE. Stream types that cannot half-close fail with EOPNOTSUPP.
 */
struct tevent_req *tstream_shutdown_send(TALLOC_CTX *mem_ctx,
					 struct tevent_context *ev,
					 struct tstream_context *stream);

/**
 * @brief Receive the result of tstream_shutdown_send().
 * @return 0, or -1 with *perrno set.
 */
int tstream_shutdown_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Make the end of a failed connection look like a failure.
 *
 * tsgate extension (not in Samba). Once called, freeing the stream ends
 * its connection with a reset (TCP RST: SO_LINGER with a zero timeout)
 * instead of an orderly close, and whatever is still queued to the peer
 * is dropped; a tunnel (TLS, GSSAPI) passes the call to its plain stream
 * and sends no end marker when it is freed. For a relay whose other side
 * failed: a peer that sees a FIN takes a cut-short reply for a complete
 * one. Meant for a stream about to be freed: a shutdown or disconnect
 * after it still ends the stream the usual way first.
 *
 * @return 0, or -1 with errno: EOPNOTSUPP (the type cannot reset, e.g. a
 *         pipe), ENOTCONN (already disconnected), EINVAL (NULL).
 */
int tstream_reset(struct tstream_context *stream);

/**
 * @brief Wait until a readv would not have to wait, without reading.
 *
 * tsgate extension (not in Samba), like poll(2) for POLLIN: the request
 * completes when the stream has bytes to hand out, has reached its end,
 * or has failed; the readv that follows then returns the bytes, EPIPE or
 * the error. It holds no buffer: an idle connection waits with it
 * instead of keeping a readv (and its buffers) outstanding. It takes the
 * read slot: EBUSY while a readv (or another wait) is outstanding, and a
 * readv or disconnect is EBUSY while it waits; ENOTCONN after (or
 * during) a disconnect. Freeing it while it waits cancels it. A tunnel
 * stream may complete it for bytes that carry no data (a TLS record
 * without application data), so the readv may still wait. It is a small
 * request over the stream's readable handler (the readiness that
 * tstream_set_readable_handler() waits for), so both see the same
 * events; a stream type without a readable handler completes it at once.
 */
struct tevent_req *tstream_wait_readable_send(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tstream_context *stream);

/**
 * @brief Receive the result of tstream_wait_readable_send().
 * @return 0 (a readv may go ahead), or -1 with *perrno set (EBUSY,
 *         ENOTCONN, ENOMEM, or what the stream type could not wait for).
 */
int tstream_wait_readable_recv(struct tevent_req *req, int *perrno);

/**
 * @brief Called once when a readv on stream would not wait.
 * @see tstream_set_readable_handler()
 */
typedef void (*tstream_readable_handler_t)(struct tstream_context *stream,
					   void *private_data);

/**
 * @brief Have handler called once a readv would not have to wait.
 *
 * tsgate extension (not in Samba): tstream_wait_readable_send() without
 * a request, for a connection that waits for hours. The handler is
 * called once, always from the event loop (never from inside this
 * call), when the stream has bytes to hand out, has reached its end or
 * has failed, and is cleared before it runs; set it again to wait
 * again. Setting a handler replaces the one set before. It follows the
 * rules of a wait: EBUSY while a readv (or a wait) is outstanding,
 * ENOTCONN after (or during) a disconnect. A readv, readv_pdu, wait or
 * disconnect started while it is set clears it, so does freeing the
 * stream; the handler is then not called. Whoever owns private_data
 * clears the handler (or frees the stream) before freeing it. A tunnel
 * stream may call it for bytes that carry no data (see
 * tstream_wait_readable_send()).
 *
 * @param stream  The stream to watch.
 * @param ev      The event loop the handler is called from.
 * @param handler The handler, or NULL to clear (always succeeds).
 * @param private_data Handed to the handler.
 * @return 0, or -1 with errno set: EBUSY, ENOTCONN, EINVAL (no ev),
 *         ENOMEM, ENOSYS (a stream type without the operation), or what
 *         the stream type could not wait for.
 */
int tstream_set_readable_handler(struct tstream_context *stream,
				 struct tevent_context *ev,
				 tstream_readable_handler_t handler,
				 void *private_data);

/** @} */

/**
 * @defgroup tsocket_bsd BSD sockets: ipv4, ipv6 and unix
 * @{
 */

/**
 * @brief Whether addr is an inet address of family fam.
 * @param fam  "ipv4", "ipv6" or "ip" (either).
 */
bool tsocket_address_is_inet(const struct tsocket_address *addr,
			     const char *fam);

/**
 * @brief Make an ipv4/ipv6 address from strings.
 *
 * @param mem_ctx      The talloc parent of the address.
 * @param fam          "ipv4", "ipv6" or "ip" (autodetect from addr);
 *                     another family is EAFNOSUPPORT, as in Samba.
 * @param addr         A numeric address; DNS names are refused (EINVAL);
 *                     NULL means any ("0.0.0.0" or "::"; "0.0.0.0" for "ip").
 * @param port         The port.
 * @param _addr        The new address.
 * @param location     Caller location for talloc debugging.
 * @return 0, or -1 with errno set.
 */
int _tsocket_address_inet_from_strings(TALLOC_CTX *mem_ctx,
				       const char *fam,
				       const char *addr,
				       uint16_t port,
				       struct tsocket_address **_addr,
				       const char *location);
/** @brief See _tsocket_address_inet_from_strings(). */
#define tsocket_address_inet_from_strings(mem_ctx, fam, addr, port, _addr)  \
	_tsocket_address_inet_from_strings(mem_ctx, fam, addr, port, _addr, \
					   __location__)

/**
 * @brief The address of an inet address as a string (IPv6 canonical,
 *        RFC 5952).
 * @return The string, or NULL with errno = EINVAL for a non-inet address.
 */
char *tsocket_address_inet_addr_string(const struct tsocket_address *addr,
				       TALLOC_CTX *mem_ctx);

/**
 * @brief The port of an inet address.
 * @return The port, or 0 with errno = EINVAL for a non-inet address.
 */
uint16_t tsocket_address_inet_port(const struct tsocket_address *addr);

/**
 * @brief Change the port of an inet address.
 * @return 0, or -1 with errno = EINVAL for a non-inet address.
 */
int tsocket_address_inet_set_port(struct tsocket_address *addr, uint16_t port);

/** @brief Whether addr is a unix domain address. */
bool tsocket_address_is_unix(const struct tsocket_address *addr);

/**
 * @brief Make a unix domain address.
 * @param path  The file system path; NULL means "".
 * @return 0, or -1 with errno set (ENAMETOOLONG beyond sun_path).
 */
int _tsocket_address_unix_from_path(TALLOC_CTX *mem_ctx,
				    const char *path,
				    struct tsocket_address **_addr,
				    const char *location);
/** @brief See _tsocket_address_unix_from_path(). */
#define tsocket_address_unix_from_path(mem_ctx, path, _addr) \
	_tsocket_address_unix_from_path(mem_ctx, path, _addr, __location__)

/**
 * @brief The path of a unix address.
 * @return The path, or NULL with errno = EINVAL for a non-unix address.
 */
char *tsocket_address_unix_path(const struct tsocket_address *addr,
				TALLOC_CTX *mem_ctx);

/**
 * @brief Wrap an existing datagram socket fd (non-blocking; ownership
 *        passes to the context, which closes it).
 */
int _tdgram_bsd_existing_socket(TALLOC_CTX *mem_ctx,
				int fd,
				struct tdgram_context **_dgram,
				const char *location);
/** @brief See _tdgram_bsd_existing_socket(). */
#define tdgram_bsd_existing_socket(mem_ctx, fd, dgram) \
	_tdgram_bsd_existing_socket(mem_ctx, fd, dgram, __location__)

/**
 * @brief A UDP socket bound to local, connected to remote if not NULL.
 * @return 0, or -1 with errno set.
 */
int _tdgram_inet_udp_socket(const struct tsocket_address *local,
			    const struct tsocket_address *remote,
			    TALLOC_CTX *mem_ctx,
			    struct tdgram_context **dgram,
			    const char *location);
/** @brief See _tdgram_inet_udp_socket(). */
#define tdgram_inet_udp_socket(local, remote, mem_ctx, dgram) \
	_tdgram_inet_udp_socket(local, remote, mem_ctx, dgram, __location__)

/**
 * @brief An IPv4 UDP socket bound to local with SO_BROADCAST set.
 * @return 0, or -1 with errno set.
 */
int _tdgram_inet_udp_broadcast_socket(const struct tsocket_address *local,
				      TALLOC_CTX *mem_ctx,
				      struct tdgram_context **dgram,
				      const char *location);
/** @brief See _tdgram_inet_udp_broadcast_socket(). */
#define tdgram_inet_udp_broadcast_socket(local, mem_ctx, dgram) \
	_tdgram_inet_udp_broadcast_socket(local, mem_ctx, dgram, __location__)

/**
 * @brief A unix datagram socket bound to local, connected to remote if
 *        not NULL.
 * @return 0, or -1 with errno set.
 */
int _tdgram_unix_socket(const struct tsocket_address *local,
			const struct tsocket_address *remote,
			TALLOC_CTX *mem_ctx,
			struct tdgram_context **dgram,
			const char *location);
/** @brief See _tdgram_unix_socket(). */
#define tdgram_unix_socket(local, remote, mem_ctx, dgram) \
	_tdgram_unix_socket(local, remote, mem_ctx, dgram, __location__)

/**
 * @brief Connect a TCP stream (ipv4 or ipv6) from local to remote.
 *
 * Connection errors (ECONNREFUSED, ENETUNREACH, ...) are reported as the
 * kernel gives them.
 */
struct tevent_req *tstream_inet_tcp_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote);

/**
 * @brief Receive the connected stream of tstream_inet_tcp_connect_send().
 *
 * This is the seed's form; unlike Samba there is no local-address
 * out-parameter (use getsockname via tsocket_address_bsd_* if needed).
 *
 * @return 0, or -1 with *perrno set.
 */
int _tstream_inet_tcp_connect_recv(struct tevent_req *req,
				   int *perrno,
				   TALLOC_CTX *mem_ctx,
				   struct tstream_context **stream,
				   const char *location);
/** @brief See _tstream_inet_tcp_connect_recv(). */
#define tstream_inet_tcp_connect_recv(req, perrno, mem_ctx, stream)  \
	_tstream_inet_tcp_connect_recv(req, perrno, mem_ctx, stream, \
				       __location__)

/**
 * @brief Connect a unix domain stream from local to remote.
 *
 * A missing socket file is ENOENT, a socket nobody listens on
 * ECONNREFUSED, as the kernel says.
 */
struct tevent_req *tstream_unix_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote);

/**
 * @brief Receive the connected stream of tstream_unix_connect_send().
 *
 * May be called with or without the trailing location argument (the seed
 * document shows it without).
 *
 * @return 0, or -1 with *perrno set.
 */
int _tstream_unix_connect_recv(struct tevent_req *req,
			       int *perrno,
			       TALLOC_CTX *mem_ctx,
			       struct tstream_context **stream,
			       const char *location);
#define _tstream_unix_connect_recv(...)                              \
	_TSOCKET_ARG6(__VA_ARGS__, _TSOCKET_CALL5, _TSOCKET_CALL4, ) \
	(_tstream_unix_connect_recv, __VA_ARGS__)
/** @brief See _tstream_unix_connect_recv(). */
#define tstream_unix_connect_recv(req, perrno, mem_ctx, stream) \
	_TSOCKET_CALL4(_tstream_unix_connect_recv, req, perrno, mem_ctx, stream)

/**
 * @brief Two connected unix streams (socketpair(2)).
 * @return 0, or -1 with errno set.
 */
int _tstream_unix_socketpair(TALLOC_CTX *mem_ctx1,
			     struct tstream_context **_stream1,
			     TALLOC_CTX *mem_ctx2,
			     struct tstream_context **_stream2,
			     const char *location);
/** @brief See _tstream_unix_socketpair(). */
#define tstream_unix_socketpair(mem_ctx1, stream1, mem_ctx2, stream2)  \
	_tstream_unix_socketpair(mem_ctx1, stream1, mem_ctx2, stream2, \
				 __location__)

/**
 * @brief Make an address from a struct sockaddr.
 *
 * Only AF_INET, AF_INET6 and AF_UNIX: another family is EAFNOSUPPORT, a
 * sa_socklen too short for the family EINVAL.
 */
int _tsocket_address_bsd_from_sockaddr(TALLOC_CTX *mem_ctx,
				       const struct sockaddr *sa,
				       socklen_t sa_socklen,
				       struct tsocket_address **_addr,
				       const char *location);
/** @brief See _tsocket_address_bsd_from_sockaddr(). */
#define tsocket_address_bsd_from_sockaddr(mem_ctx, sa, sa_socklen, _addr)  \
	_tsocket_address_bsd_from_sockaddr(mem_ctx, sa, sa_socklen, _addr, \
					   __location__)

/**
 * @brief Fill a struct sockaddr from an address.
 *
 * @return The length of the sockaddr written, or -1 with errno set
 *         (EINVAL for a buffer too short, for a non-BSD address).
 */
ssize_t tsocket_address_bsd_sockaddr(const struct tsocket_address *addr,
				     struct sockaddr *sa,
				     socklen_t sa_socklen);

/**
 * @brief Wrap an existing connected stream socket fd.
 *
 * The fd must already be non-blocking. On success the stream owns it and
 * closes it when freed; on failure the caller still owns it.
 */
int _tstream_bsd_existing_socket(TALLOC_CTX *mem_ctx,
				 int fd,
				 struct tstream_context **_stream,
				 const char *location);
/** @brief See _tstream_bsd_existing_socket(). */
#define tstream_bsd_existing_socket(mem_ctx, fd, stream) \
	_tstream_bsd_existing_socket(mem_ctx, fd, stream, __location__)

/**
 * @brief TCP keepalive on a BSD stream socket (an extension).
 *
 * on: SO_KEEPALIVE with the first probe after idle_s seconds without
 * traffic, then one every interval_s, the connection failing (ETIMEDOUT)
 * after count unanswered ones; a 0 keeps the system's value. !on: off.
 *
 * @return 0, or -1 with errno (EINVAL: not a BSD stream; a unix socket
 *         fails with the kernel's EOPNOTSUPP for the TCP options).
 */
int tstream_bsd_set_keepalive(struct tstream_context *stream,
			      bool on,
			      unsigned idle_s,
			      unsigned interval_s,
			      unsigned count);

/**
 * @brief Turn Nagle's algorithm off (on = true) or on for a TCP stream
 *        (tsgate extension): for a writer that sends whole messages, so a
 *        small one never waits for the peer's delayed ACK.
 *
 * @return 0, or -1 with errno: EINVAL (not a BSD stream), EOPNOTSUPP or
 *         ENOPROTOOPT (not TCP, e.g. a unix socket).
 */
int tstream_bsd_set_nodelay(struct tstream_context *stream, bool on);

/** @} */

/**
 * @defgroup tsocket_helpers PDU and queue helpers
 * @{
 */

/**
 * @brief Callback of tstream_readv_pdu_send(): give the next vector.
 *
 * Called first before any byte is read, then each time the previous
 * vector has been filled. Set *count to 0 when the PDU is complete.
 * Return 0, or -1 with errno set to fail the PDU read with that errno.
 *
 * @param stream   The stream being read.
 * @param private_data  The next_vector_private given to the send call.
 * @param mem_ctx  A context for the vector (freed after the read).
 * @param vector   The next vector.
 * @param count    Its number of entries; 0 when the PDU is complete.
 */
typedef int (*tstream_readv_pdu_next_vector_t)(struct tstream_context *stream,
					       void *private_data,
					       TALLOC_CTX *mem_ctx,
					       struct iovec **vector,
					       size_t *count);

/**
 * @brief Read one PDU, vector by vector, as next_vector_fn asks.
 *
 * A PDU cut off by the end of the stream fails with EPIPE; next_vector_fn
 * errors pass through unchanged.
 */
struct tevent_req *tstream_readv_pdu_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    tstream_readv_pdu_next_vector_t next_vector_fn,
    void *next_vector_private);

/**
 * @brief Receive the result of tstream_readv_pdu_send().
 * @return The number of bytes read, or -1 with *perrno set.
 */
int tstream_readv_pdu_recv(struct tevent_req *req, int *perrno);

/**
 * @brief tstream_readv_pdu_send() serialized through a tevent_queue.
 *
 * Requests on one queue run in submission order; freeing a waiting one
 * removes it without disturbing the others.
 */
struct tevent_req *tstream_readv_pdu_queue_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct tevent_queue *queue,
    tstream_readv_pdu_next_vector_t next_vector_fn,
    void *next_vector_private);

/** @brief Receive the result of tstream_readv_pdu_queue_send(). */
int tstream_readv_pdu_queue_recv(struct tevent_req *req, int *perrno);

/**
 * @brief tstream_writev_send() serialized through a tevent_queue.
 *
 * The vector is copied; the buffers must stay valid until completion.
 */
struct tevent_req *tstream_writev_queue_send(TALLOC_CTX *mem_ctx,
					     struct tevent_context *ev,
					     struct tstream_context *stream,
					     struct tevent_queue *queue,
					     const struct iovec *vector,
					     size_t count);

/** @brief Receive the result of tstream_writev_queue_send(). */
int tstream_writev_queue_recv(struct tevent_req *req, int *perrno);

/**
 * @brief tdgram_sendto_send() serialized through a tevent_queue.
 */
struct tevent_req *tdgram_sendto_queue_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tdgram_context *dgram,
					    struct tevent_queue *queue,
					    const uint8_t *buf,
					    size_t len,
					    struct tsocket_address *dst);

/** @brief Receive the result of tdgram_sendto_queue_send(). */
ssize_t tdgram_sendto_queue_recv(struct tevent_req *req, int *perrno);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* _TSOCKET_H */
