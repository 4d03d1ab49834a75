/* SPDX-License-Identifier: MIT */
/*
 * tsocket — interface for implementers of new address, datagram and
 * stream types (virtual sockets such as TLS or GSSAPI tunnels).
 *
 * Applications include <tsocket.h> only. A new stream type fills a
 * struct tstream_context_ops and calls tstream_context_create(); the
 * generic layer (tsocket*.c) then does the argument checks, the EBUSY and
 * ENOTCONN guards and the sticky bookkeeping before calling the ops, so an
 * implementation only sees well-formed calls:
 *  - readv_send/writev_send get 1..1024 entries with a non-zero total;
 *  - never two readv or two writev at once;
 *  - disconnect_send only with no readv/writev outstanding;
 *  - no call at all after a successful disconnect.
 * Ops table fields are set with designated initializers; fields added at
 * the end in later versions are optional (NULL = not supported).
 */

#ifndef _TSOCKET_INTERNAL_H
#define _TSOCKET_INTERNAL_H

#include <stdbool.h>
#include <sys/uio.h>
#include "tsocket.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Operations of an address type. */
struct tsocket_address_ops {
	const char *name;
	char *(*string)(const struct tsocket_address *addr,
			TALLOC_CTX *mem_ctx);
	struct tsocket_address *(*copy)(const struct tsocket_address *addr,
					TALLOC_CTX *mem_ctx,
					const char *location);
};

/** @brief An address: the ops and the type's private data. */
struct tsocket_address {
	const char *location;
	const struct tsocket_address_ops *ops;
	void *private_data;
};

/**
 * @brief Create an address of a new type.
 *
 * Allocates the address and, as its child, a zeroed private struct of
 * psize bytes named `type`, returned in *pstate.
 */
struct tsocket_address *_tsocket_address_create(TALLOC_CTX *mem_ctx,
					const struct tsocket_address_ops *ops,
					void *pstate,
					size_t psize,
					const char *type,
					const char *location);
#define tsocket_address_create(mem_ctx, ops, state, type, location) \
	_tsocket_address_create(mem_ctx, ops, state, sizeof(type), #type, \
				location)

/** @brief Operations of a datagram type. */
struct tdgram_context_ops {
	const char *name;

	struct tevent_req *(*recvfrom_send)(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tdgram_context *dgram);
	ssize_t (*recvfrom_recv)(struct tevent_req *req,
				 int *perrno,
				 TALLOC_CTX *mem_ctx,
				 uint8_t **buf,
				 struct tsocket_address **src);

	struct tevent_req *(*sendto_send)(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tdgram_context *dgram,
					  const uint8_t *buf, size_t len,
					  const struct tsocket_address *dst);
	ssize_t (*sendto_recv)(struct tevent_req *req,
			       int *perrno);

	struct tevent_req *(*disconnect_send)(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tdgram_context *dgram);
	int (*disconnect_recv)(struct tevent_req *req,
			       int *perrno);
};

/**
 * @brief Create a datagram context of a new type.
 *
 * *pstate receives a zeroed private struct of psize bytes, a talloc child
 * of the context; free the context to free it.
 */
struct tdgram_context *_tdgram_context_create(TALLOC_CTX *mem_ctx,
					const struct tdgram_context_ops *ops,
					void *pstate,
					size_t psize,
					const char *type,
					const char *location);
#define tdgram_context_create(mem_ctx, ops, state, type, location) \
	_tdgram_context_create(mem_ctx, ops, state, sizeof(type), #type, \
			       location)

/** @brief The private struct of a datagram context. */
void *_tdgram_context_data(struct tdgram_context *dgram);
#define tdgram_context_data(_dgram, _type) \
	talloc_get_type_abort(_tdgram_context_data(_dgram), _type)

/** @brief Operations of a stream type. */
struct tstream_context_ops {
	const char *name;

	ssize_t (*pending_bytes)(struct tstream_context *stream);

	struct tevent_req *(*readv_send)(TALLOC_CTX *mem_ctx,
					 struct tevent_context *ev,
					 struct tstream_context *stream,
					 struct iovec *vector,
					 size_t count);
	int (*readv_recv)(struct tevent_req *req,
			  int *perrno);

	struct tevent_req *(*writev_send)(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tstream_context *stream,
					  const struct iovec *vector,
					  size_t count);
	int (*writev_recv)(struct tevent_req *req,
			   int *perrno);

	struct tevent_req *(*disconnect_send)(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tstream_context *stream);
	int (*disconnect_recv)(struct tevent_req *req,
			       int *perrno);

	/*
	 * tsgate extension, optional: end the writing direction only
	 * (see tstream_shutdown_send()). Called with no writev outstanding.
	 * NULL makes tstream_shutdown_send() fail with EOPNOTSUPP.
	 */
	struct tevent_req *(*shutdown_send)(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tstream_context *stream);
	int (*shutdown_recv)(struct tevent_req *req,
			     int *perrno);

	/*
	 * tsgate extension, optional: the stream's one readiness op, behind
	 * both tstream_set_readable_handler() and tstream_wait_readable_send()
	 * (whose request the generic layer passes as private_data).
	 * With a handler: when a readv would not wait now, set *pready and
	 * keep nothing (the generic layer calls it from the loop);
	 * otherwise keep handler and private_data and call
	 * handler(stream, private_data) once, from the loop, when a readv
	 * would not wait, forgetting them before the call; or return an
	 * errno. With handler NULL (pready NULL too): forget them. Called
	 * with no readv outstanding, except to forget. NULL makes
	 * tstream_set_readable_handler() fail with ENOSYS and every
	 * tstream_wait_readable_send() complete at once.
	 */
	int (*set_readable_handler)(struct tstream_context *stream,
				    struct tevent_context *ev,
				    tstream_readable_handler_t handler,
				    void *private_data,
				    bool *pready);

	/*
	 * tsgate extension, optional: make freeing the stream reset its
	 * connection (see tstream_reset()); a tunnel passes it to its plain
	 * stream. NULL makes tstream_reset() fail with EOPNOTSUPP.
	 */
	int (*reset)(struct tstream_context *stream);
};

/**
 * @brief Create a stream context of a new type.
 *
 * *pstate receives a zeroed private struct of psize bytes, a talloc child
 * of the context; free the context to free it.
 */
struct tstream_context *_tstream_context_create(TALLOC_CTX *mem_ctx,
					const struct tstream_context_ops *ops,
					void *pstate,
					size_t psize,
					const char *type,
					const char *location);
#define tstream_context_create(mem_ctx, ops, state, type, location) \
	_tstream_context_create(mem_ctx, ops, state, sizeof(type), #type, \
				location)

/** @brief The private struct of a stream context. */
void *_tstream_context_data(struct tstream_context *stream);
#define tstream_context_data(_stream, _type) \
	talloc_get_type_abort(_tstream_context_data(_stream), _type)

/**
 * @brief The common _recv of a request with no result but success:
 *        0, or -1 with *perrno set from the request's error.
 *        Does not call tevent_req_received().
 */
int tsocket_simple_int_recv(struct tevent_req *req, int *perrno);

#ifdef __cplusplus
}
#endif

#endif /* _TSOCKET_INTERNAL_H */
