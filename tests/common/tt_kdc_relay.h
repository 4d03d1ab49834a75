/* SPDX-License-Identifier: MIT */
/*
 * A slow KDC for tests: a TCP relay in front of a tt_kdc that holds each
 * KDC reply for a settable time before passing it on. It runs in a
 * child process (its own process group, killed when the struct is
 * freed), so a caller that blocks on the KDC cannot stall the relay.
 *
 * relay->krb5_conf is the KDC's krb5.conf with the realm's KDC replaced
 * by the relay (TCP only): point KRB5_CONFIG at it (tt_kdc_relay_setenv)
 * for the code under test, while the tt_kdc helpers (kinit, kadmin)
 * keep talking to the KDC directly.
 */
#ifndef TT_KDC_RELAY_H
#define TT_KDC_RELAY_H

#include <stdint.h>
#include <sys/types.h>
#include <talloc.h>

#include "tt_kdc.h"

struct tt_kdc_relay {
	pid_t pid;
	uint16_t port;    /* on 127.0.0.1 */
	char *dir;        /* removed on free */
	char *krb5_conf;  /* KRB5_CONFIG for clients of the relay */
	char *delay_file; /* the hold time in ms, read per reply */
	char *count_file; /* one byte appended per reply held */
};

/* Start a relay holding replies delay_ms; NULL (and why on stderr). */
struct tt_kdc_relay *tt_kdc_relay_start(TALLOC_CTX *mem_ctx,
					const struct tt_kdc *kdc,
					unsigned delay_ms);

/* Replies from now on are held delay_ms (0: passed on at once). */
void tt_kdc_relay_set_delay(struct tt_kdc_relay *relay, unsigned delay_ms);

/* How many replies the relay has started holding so far. */
unsigned tt_kdc_relay_held(const struct tt_kdc_relay *relay);

/* setenv KRB5_CONFIG to the relay's krb5.conf. */
void tt_kdc_relay_setenv(const struct tt_kdc_relay *relay);

#endif
