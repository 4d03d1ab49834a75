/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi internals shared by its source files (not installed).
 *
 *  tstream_gssapi_util.c       error texts, errno mapping, names, OIDs
 *  tstream_gssapi_params.c     params, credentials
 *  tstream_gssapi_handshake.c  context establishment (accept/connect)
 *  tstream_gssapi.c            the established stream: framing, wrap/
 *                              unwrap, authenticated close, getters
 *  tstream_gssapi_pool.c       threads for the calls that can block
 */
#ifndef TSTREAM_GSSAPI_PRIVATE_H
#define TSTREAM_GSSAPI_PRIVATE_H

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <gssapi/gssapi_ext.h>

#include "tstream_gssapi.h"

/* knc 1.x handshake and frame header: 4-byte big-endian length. */
#define GSSAPI_LEN_SIZE 4

struct tstream_gssapi_params {
	bool acceptor;

	/* acceptor */
	char *keytab;
	char *principal;
	gss_cred_id_t acceptor_cred; /* only while checking the keytab */

	/* initiator */
	char *target;
	char *ccache;
	char *client_keytab;
	char *client_principal;
	bool own_ccache; /* ccache is our private MEMORY: cache */
	bool delegate;

	/* both */
	uint32_t handshake_timeout_ms;
	bool strict_eof;
	uint32_t required_flags;
	struct tstream_gssapi_pool *pool; /* not owned; NULL: inline */

	/*
	 * Set only on a request's private copy by tstream_gssapi_auth_send():
	 * the channel's binding bytes (application_data of the bindings
	 * struct) and that the context authenticates a channel carrying the
	 * data itself (no wrap, see tstream_gssapi_auth.c).
	 */
	uint8_t *cb_data;
	size_t cb_len;
	bool auth_only;
};

enum tstream_gssapi_job_state {
	TSTREAM_GSSAPI_JOB_IDLE,
	TSTREAM_GSSAPI_JOB_QUEUED,
	TSTREAM_GSSAPI_JOB_RUNNING,
	TSTREAM_GSSAPI_JOB_DONE,
};

/*
 * One blocking call for the pool, embedded in its owner's struct.
 * work runs in a worker thread and may touch only what the job owns
 * (no event loop, no talloc hierarchy another thread uses); done runs on
 * the pool's loop with the result; discard frees a cancelled job there.
 */
struct tstream_gssapi_job {
	struct tstream_gssapi_job *next;
	void (*work)(struct tstream_gssapi_job *job);
	void (*done)(struct tstream_gssapi_job *job);
	void (*discard)(struct tstream_gssapi_job *job);
	/* the pool's (under its lock) */
	struct tstream_gssapi_pool *pool;
	enum tstream_gssapi_job_state state;
	bool cancelled;
};

/*
 * Queue job. 0, or EAGAIN when max_queue jobs already wait, ECANCELED
 * while the pool stops, or pthread_create's error when it has no thread.
 */
int tstream_gssapi_pool_submit(struct tstream_gssapi_pool *pool,
			       struct tstream_gssapi_job *job);

/*
 * The owner gives the job up: its done will not be called. A queued or
 * finished job is discarded at once; a running one when its thread
 * returns it to the loop.
 */
void tstream_gssapi_pool_cancel(struct tstream_gssapi_job *job);

/* Whether calls of a request on ev go through pool (else: inline). */
bool tstream_gssapi_pool_usable(struct tstream_gssapi_pool *pool,
				struct tevent_context *ev);

/*
 * "what: major text: minor text" from gss_display_status, on mem_ctx.
 */
char *tstream_gssapi_status_string(TALLOC_CTX *mem_ctx,
				   const char *what,
				   OM_uint32 major,
				   OM_uint32 minor);

/* An OID as a dotted string ("1.2.840.113554.1.2.2"), on mem_ctx. */
char *tstream_gssapi_oid_string(TALLOC_CTX *mem_ctx, const gss_OID oid);

/*
 * errno for a failed GSSAPI call. handshake: the call was part of
 * context establishment or credential acquisition (authentication
 * failures become EACCES), else a data-path call (EPROTO).
 */
int tstream_gssapi_map_error(OM_uint32 major, OM_uint32 minor, bool handshake);

/*
 * Parse a name for the given role: a '/' in it means a krb5 principal,
 * otherwise a host-based service.
 */
OM_uint32 tstream_gssapi_import_name(OM_uint32 *minor,
				     const char *str,
				     gss_name_t *name);

/*
 * Split a krb5 principal display string into unescaped components (a
 * NULL-terminated array on mem_ctx) and realm ("" when none). 0, EINVAL
 * for a malformed name, or ENOMEM.
 */
int tstream_gssapi_parse_principal(TALLOC_CTX *mem_ctx,
				   const char *name,
				   char ***_components,
				   size_t *_num,
				   char **_realm);

/* Acquire a fresh credential as the params say (one per handshake). */
int tstream_gssapi_acquire_cred(TALLOC_CTX *mem_ctx,
				const struct tstream_gssapi_params *params,
				gss_cred_id_t *cred,
				char **reason);

/*
 * A private copy for a running request, so the owner may free or replace
 * the params at any time.
 */
struct tstream_gssapi_params *tstream_gssapi_params_copy(
    TALLOC_CTX *mem_ctx, const struct tstream_gssapi_params *params);

/*
 * Make the established stream around an open context (which it takes
 * over: on success and on failure *ctx is GSS_C_NO_CONTEXT afterwards).
 * plain_stream is not stolen here (see tstream_gssapi_adopt_plain).
 */
int tstream_gssapi_stream_create(TALLOC_CTX *mem_ctx,
				 struct tstream_context *plain_stream,
				 gss_ctx_id_t *ctx,
				 const struct tstream_gssapi_params *params,
				 struct tstream_context **_stream,
				 char **reason);

/*
 * The channel bindings of params (address types 0, addresses empty,
 * application_data = cb_data) filled into *buf, or GSS_C_NO_CHANNEL_BINDINGS
 * when it has none.
 */
gss_channel_bindings_t tstream_gssapi_channel_bindings(
    const struct tstream_gssapi_params *params,
    struct gss_channel_bindings_struct *buf);

/*
 * Give the established stream the credentials the client delegated (the
 * stream takes them over: *cred is GSS_C_NO_CREDENTIAL afterwards; kept
 * only when the context has the delegation flag).
 */
void tstream_gssapi_set_delegated(struct tstream_context *stream,
				  gss_cred_id_t *cred);

/* Make stream the talloc parent of its plain stream. */
void tstream_gssapi_adopt_plain(struct tstream_context *stream);

/*
 * The failure half of a _recv that reports why: true when req failed,
 * with *perrno and *_reason (reason, or strerror when the request kept
 * none) set and the request received. Either output may be NULL.
 */
bool tstream_gssapi_recv_failed(struct tevent_req *req,
				int *perrno,
				TALLOC_CTX *mem_ctx,
				const char *reason,
				char **_reason);

#endif
