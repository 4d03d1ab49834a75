/* SPDX-License-Identifier: MIT */
/*
 * Connections per client source: see source_limit.h.
 *
 * A chained hash table of entries, keyed with a random seed so a client
 * cannot choose addresses that all land in one chain. It grows with the
 * number of sources (at most one per connection) and never shrinks; an
 * entry is freed with its source's last slot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <talloc.h>

#include "source_limit.h"

#define SOURCE_LIMIT_MIN_BUCKETS 256

struct source_entry {
	struct source_entry *next; /* in its bucket */
	struct tsgate_source_limit *sl;
	struct tsgate_source_key key;
	uint32_t hash;
	uint32_t count;
};

struct tsgate_source_limit {
	struct source_entry **buckets;
	size_t num_buckets; /* a power of two */
	size_t num_entries;
	uint64_t seed;
};

struct tsgate_source_slot {
	struct source_entry *entry;
};

bool tsgate_source_key_from_sockaddr(const struct sockaddr *sa,
				     socklen_t len,
				     unsigned ipv6_prefix,
				     struct tsgate_source_key *key)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
					     0, 0, 0, 0, 0xff, 0xff};
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	unsigned i;

	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET && len >= sizeof(*sin)) {
		sin = (const struct sockaddr_in *)sa;
		key->family = AF_INET;
		key->prefix = 32;
		memcpy(key->addr, &sin->sin_addr, 4);
		return true;
	}
	if (sa->sa_family != AF_INET6 || len < sizeof(*sin6)) {
		return false;
	}
	sin6 = (const struct sockaddr_in6 *)sa;
	if (memcmp(sin6->sin6_addr.s6_addr, v4mapped, sizeof(v4mapped)) == 0) {
		/* a dual-stack socket's IPv4 client is that IPv4 source */
		key->family = AF_INET;
		key->prefix = 32;
		memcpy(key->addr, sin6->sin6_addr.s6_addr + 12, 4);
		return true;
	}
	if (ipv6_prefix == 0 || ipv6_prefix > 128) {
		ipv6_prefix = 128;
	}
	key->family = AF_INET6;
	key->prefix = (uint8_t)ipv6_prefix;
	for (i = 0; i < 16; i++) {
		unsigned bits = ipv6_prefix > i * 8 ? ipv6_prefix - i * 8 : 0;
		uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

		key->addr[i] = sin6->sin6_addr.s6_addr[i] & mask;
	}
	return true;
}

char *tsgate_source_key_string(TALLOC_CTX *mem_ctx,
			       const struct tsgate_source_key *key)
{
	char buf[INET6_ADDRSTRLEN];

	if (inet_ntop(key->family, key->addr, buf, sizeof(buf)) == NULL) {
		return talloc_strdup(mem_ctx, "?");
	}
	if (key->family == AF_INET6 && key->prefix < 128) {
		return talloc_asprintf(mem_ctx, "%s/%u", buf,
				       (unsigned)key->prefix);
	}
	return talloc_strdup(mem_ctx, buf);
}

/* FNV-1a over the seed and the key. */
static uint32_t source_hash(const struct tsgate_source_limit *sl,
			    const struct tsgate_source_key *key)
{
	const uint8_t *p = (const uint8_t *)key;
	uint64_t h = 14695981039346656037ULL ^ sl->seed;
	size_t i;

	for (i = 0; i < sizeof(*key); i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return (uint32_t)(h ^ (h >> 32));
}

struct tsgate_source_limit *tsgate_source_limit_new(TALLOC_CTX *mem_ctx)
{
	struct tsgate_source_limit *sl =
	    talloc_zero(mem_ctx, struct tsgate_source_limit);

	if (sl == NULL) {
		return NULL;
	}
	sl->num_buckets = SOURCE_LIMIT_MIN_BUCKETS;
	sl->buckets =
	    talloc_zero_array(sl, struct source_entry *, sl->num_buckets);
	if (sl->buckets == NULL) {
		talloc_free(sl);
		return NULL;
	}
	if (getrandom(&sl->seed, sizeof(sl->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(sl->seed)) {
		/* no entropy yet: the chains still work, only less evenly */
		sl->seed = (uint64_t)(uintptr_t)sl;
	}
	return sl;
}

static struct source_entry *source_find(const struct tsgate_source_limit *sl,
					const struct tsgate_source_key *key,
					uint32_t hash)
{
	struct source_entry *e;

	for (e = sl->buckets[hash & (sl->num_buckets - 1)]; e != NULL;
	     e = e->next) {
		if (e->hash == hash &&
		    memcmp(&e->key, key, sizeof(*key)) == 0) {
			return e;
		}
	}
	return NULL;
}

/* Twice the buckets once there are more sources than buckets. */
static void source_grow(struct tsgate_source_limit *sl)
{
	size_t n = sl->num_buckets * 2;
	struct source_entry **b;
	struct source_entry *e, *next;
	size_t i;

	b = talloc_zero_array(sl, struct source_entry *, n);
	if (b == NULL) {
		return; /* longer chains, still correct */
	}
	for (i = 0; i < sl->num_buckets; i++) {
		for (e = sl->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	talloc_free(sl->buckets);
	sl->buckets = b;
	sl->num_buckets = n;
}

static int source_slot_destructor(struct tsgate_source_slot *slot)
{
	struct source_entry *e = slot->entry;
	struct tsgate_source_limit *sl = e->sl;
	struct source_entry **pp;

	if (--e->count > 0) {
		return 0;
	}
	for (pp = &sl->buckets[e->hash & (sl->num_buckets - 1)]; *pp != e;
	     pp = &(*pp)->next) {
	}
	*pp = e->next;
	sl->num_entries--;
	talloc_free(e);
	return 0;
}

int tsgate_source_limit_take(TALLOC_CTX *mem_ctx,
			     struct tsgate_source_limit *sl,
			     const struct tsgate_source_key *key,
			     uint32_t max,
			     struct tsgate_source_slot **pslot)
{
	uint32_t hash = source_hash(sl, key);
	struct source_entry *e = source_find(sl, key, hash);
	struct tsgate_source_slot *slot;
	size_t b;

	if (e != NULL && max > 0 && e->count >= max) {
		return EAGAIN;
	}
	slot = talloc_zero(mem_ctx, struct tsgate_source_slot);
	if (slot == NULL) {
		return ENOMEM;
	}
	if (e == NULL) {
		e = talloc_zero(sl, struct source_entry);
		if (e == NULL) {
			talloc_free(slot);
			return ENOMEM;
		}
		e->sl = sl;
		e->key = *key;
		e->hash = hash;
		b = hash & (sl->num_buckets - 1);
		e->next = sl->buckets[b];
		sl->buckets[b] = e;
		sl->num_entries++;
		if (sl->num_entries > sl->num_buckets) {
			source_grow(sl);
		}
	}
	e->count++;
	slot->entry = e;
	talloc_set_destructor(slot, source_slot_destructor);
	*pslot = slot;
	return 0;
}

uint32_t tsgate_source_limit_count(const struct tsgate_source_limit *sl,
				   const struct tsgate_source_key *key)
{
	struct source_entry *e = source_find(sl, key, source_hash(sl, key));

	return e != NULL ? e->count : 0;
}

size_t tsgate_source_limit_num_sources(const struct tsgate_source_limit *sl)
{
	return sl->num_entries;
}
