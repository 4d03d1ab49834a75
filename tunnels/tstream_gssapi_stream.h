/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi's established stream, shared by its files: the record
 * I/O (tstream_gssapi.c), the authenticated close (tstream_gssapi_close.c)
 * and the getters (tstream_gssapi_getters.c). Not installed.
 */
#ifndef TSTREAM_GSSAPI_STREAM_H
#define TSTREAM_GSSAPI_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "tsocket_internal.h"
#include "tstream_gssapi_private.h"

/* Frames wrapped into one writev of the plain stream. */
#define GSSAPI_WRITE_BATCH_FRAMES 8

/*
 * A write buffer bigger than this (a batch of several frames) is given
 * back when its writev finishes, so idle streams keep at most about one
 * frame's worth.
 */
#define GSSAPI_WRITE_KEEP (2 * (TSTREAM_GSSAPI_MAX_TOKEN + GSSAPI_LEN_SIZE))

/*
 * After the peer's end marker, what it still sends is read and dropped
 * (gssapi_drain_next) in reads of at most GSSAPI_DRAIN_BUF bytes, up to
 * GSSAPI_DRAIN_MAX bytes in all.
 */
#define GSSAPI_DRAIN_BUF 4096
#define GSSAPI_DRAIN_MAX (1024 * 1024)

/* The private state of an established GSSAPI stream. */
struct tstream_gssapi {
	struct tstream_context *plain_stream;
	/* the readable handler, waiting on the plain stream's */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	struct tstream_context *readable_stream; /* this stream */
	struct tevent_context *readable_ev;
	/* made only when an error of ours must call it (gssapi_wake_reader) */
	struct tevent_immediate *readable_im;
	gss_ctx_id_t ctx;
	gss_name_t client_name;
	/* acceptor: the client's delegated credentials, if it delegated */
	gss_cred_id_t deleg_cred;
	bool initiator;
	bool strict_eof;
	uint32_t flags;
	time_t expiry;
	size_t max_chunk;

	char *client_display;
	char *client_realm;
	char **components;
	size_t num_components;
	char *server_display;
	uint8_t *exported;
	size_t exported_len;
	char *mech_oid;

	/* sticky: the first error fails every later request */
	int error;
	char *error_reason;

	struct {
		uint8_t hdr[GSSAPI_LEN_SIZE];
		uint8_t *buf; /* frame buffer, grows, kept */
		size_t size;
		uint8_t *plain; /* unread plaintext inside buf */
		size_t plain_len;
		int eof_err; /* end of stream seen: EPIPE or ECONNABORTED */
	} read;

	/* bytes after the peer's end marker, read and dropped */
	struct {
		struct tevent_context *ev;
		struct tevent_req *req; /* readv of the plain stream */
		uint8_t *buf;
		struct iovec iov;
		size_t total;
	} drain;

	/* the authenticated close went out (or was tried) */
	bool write_shut;

	struct {
		uint8_t *buf; /* batch of frames, grows, kept */
		size_t size;
	} write;
};

/* The first error is sticky; reason (talloc, may be NULL) is taken over. */
void gssapi_set_error(struct tstream_gssapi *g, int err, char *reason);
void gssapi_set_gss_error(struct tstream_gssapi *g,
			  const char *what,
			  OM_uint32 major,
			  OM_uint32 minor);
/* Context lifetime is ours to enforce: MIT keeps wrapping after it. */
bool gssapi_expired(struct tstream_gssapi *g);
/* Stop reading and dropping what the peer sends after its end marker. */
void gssapi_drain_stop(struct tstream_gssapi *g);

/* the authenticated close: the ops of tstream_gssapi_close.c */
struct tevent_req *tstream_gssapi_shutdown_send(TALLOC_CTX *mem_ctx,
						struct tevent_context *ev,
						struct tstream_context *stream);
struct tevent_req *tstream_gssapi_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream);
int tstream_gssapi_close_recv(struct tevent_req *req, int *perrno);

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#endif /* TSTREAM_GSSAPI_STREAM_H */
