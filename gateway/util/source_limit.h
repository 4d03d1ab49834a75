/* SPDX-License-Identifier: MIT */
/*
 * Connections per client source address, for
 * limits.max_connections_per_source.
 *
 * A source is an IPv4 address, or an IPv6 address cut to a prefix (one
 * host usually owns a whole /64, so an exact-address limit could be
 * dodged by rotating through it). An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) counts as its IPv4 address. Unix-socket clients have
 * no source and are never counted.
 *
 * The table holds one entry per source with connections open: a
 * connection takes a slot (a talloc object it owns) and freeing the slot
 * gives it back, so a connection's teardown needs no code of its own.
 */
#ifndef TSGATE_SOURCE_LIMIT_H
#define TSGATE_SOURCE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <talloc.h>

struct tsgate_source_limit;
struct tsgate_source_slot;

/* A client's source, as counted. */
struct tsgate_source_key {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix; /* IPv6: bits kept (the rest are zero); IPv4: 32 */
	uint8_t addr[16];
};

/**
 * @brief The source of a peer address.
 *
 * @param sa           The peer address (getpeername()).
 * @param len          Its length.
 * @param ipv6_prefix  Bits of an IPv6 address that make its source
 *                     (1..128; 128 = the exact address).
 * @param key          Filled on success.
 * @return Whether the address has a source (false for unix sockets).
 */
bool tsgate_source_key_from_sockaddr(const struct sockaddr *sa,
				     socklen_t len,
				     unsigned ipv6_prefix,
				     struct tsgate_source_key *key);

/**
 * @brief The source as text for logs: "192.0.2.1" or "2001:db8::/64"
 *        (the exact IPv6 address when the prefix is 128).
 */
char *tsgate_source_key_string(TALLOC_CTX *mem_ctx,
			       const struct tsgate_source_key *key);

/** @brief An empty table. */
struct tsgate_source_limit *tsgate_source_limit_new(TALLOC_CTX *mem_ctx);

/**
 * @brief Take one of a source's max slots.
 *
 * @param mem_ctx  Owner of the slot (the connection); freeing it gives
 *                 the slot back. The table must outlive it.
 * @param sl       The table.
 * @param key      The source.
 * @param max      Connections allowed from it at once (0: no limit, the
 *                 connection is still counted).
 * @param pslot    The slot on success.
 * @return 0, EAGAIN when the source already has max connections, ENOMEM.
 */
int tsgate_source_limit_take(TALLOC_CTX *mem_ctx,
			     struct tsgate_source_limit *sl,
			     const struct tsgate_source_key *key,
			     uint32_t max,
			     struct tsgate_source_slot **pslot);

/** @brief Connections a source has open now (for tests). */
uint32_t tsgate_source_limit_count(const struct tsgate_source_limit *sl,
				   const struct tsgate_source_key *key);

/** @brief Sources with at least one connection open now. */
size_t tsgate_source_limit_num_sources(const struct tsgate_source_limit *sl);

#endif /* TSGATE_SOURCE_LIMIT_H */
