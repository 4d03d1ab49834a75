/* SPDX-License-Identifier: MIT */
/*
 * Session ticket keys of the TLS listeners. One secret per process tree,
 * made in the daemon before the workers fork (so a session resumes on
 * whichever worker the kernel picks), or the first key of a listener's
 * tls.ticket_keys_file (so instances sharing the file resume each other's
 * sessions). Each listener's 64-byte ticket master is derived from that
 * secret with HKDF-SHA256 and the listener's name and client-certificate
 * policy, so no ticket resumes on a listener it was not issued by.
 * GnuTLS derives every rotation period's key from the master.
 *
 * Key bytes are never logged; error messages name the file and line only.
 */
#ifndef TSGATE_TICKET_KEYS_H
#define TSGATE_TICKET_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <talloc.h>

#include "config.h"

/* The keys HAProxy's tls-ticket-keys files hold: 48 or 80 bytes. */
#define TSGATE_TICKET_FILE_KEY_MIN 48
#define TSGATE_TICKET_FILE_KEY_MAX 80
/* Lines of a key file at most (HAProxy keeps 3; room for comments). */
#define TSGATE_TICKET_FILE_MAX_LINES 1024

/* A secret ticket masters are derived from (wiped when freed). */
struct tsgate_ticket_secret {
	uint8_t key[TSGATE_TICKET_FILE_KEY_MAX];
	size_t len;
};

/**
 * @brief Make a random secret (the daemon's, before the workers fork).
 * @return The secret on mem_ctx, or NULL (ENOMEM, or no randomness).
 */
struct tsgate_ticket_secret *tsgate_ticket_secret_random(TALLOC_CTX *mem_ctx);

/**
 * @brief Read a ticket key file: one base64 key of 48 or 80 bytes a line,
 * newest first (the first one encrypts); blank lines and lines starting
 * with '#' are skipped.
 *
 * @param psecret Receives the first key (on mem_ctx).
 * @param pnum    If not NULL, receives the number of keys in the file.
 * @param error   On failure, "PATH:LINE: what is wrong" (on mem_ctx).
 * @return 0, or an errno: ENOENT/EACCES (unreadable), EINVAL (malformed),
 *         ENOMEM.
 */
int tsgate_ticket_keys_read(TALLOC_CTX *mem_ctx,
			    const char *path,
			    struct tsgate_ticket_secret **psecret,
			    size_t *pnum,
			    char **error);

/**
 * @brief Parse the text of a ticket key file (what tsgate_ticket_keys_read
 * does after reading it; also the fuzz target's entry point).
 */
int tsgate_ticket_keys_parse(TALLOC_CTX *mem_ctx,
			     const char *name,
			     const char *text,
			     size_t len,
			     struct tsgate_ticket_secret **psecret,
			     size_t *pnum,
			     char **error);

/**
 * @brief A listener's 64-byte ticket master: HKDF-SHA256 with the secret
 * as input key, the salt "tsgate ticket master v1" and the info
 * "<listener name>\0<verify_client>" (none, optional, require).
 * @return 0, or EINVAL/ENOMEM.
 */
int tsgate_ticket_master(const struct tsgate_ticket_secret *secret,
			 const char *listener,
			 enum tsgate_config_verify_client verify,
			 uint8_t master[64]);

#endif
