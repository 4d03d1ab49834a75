/* SPDX-License-Identifier: MIT */
/*
 * Control of the talloc allocation-failure shim (talloc_failinject.c)
 * for a test program linked with it.
 */
#ifndef TALLOC_FAILINJECT_H
#define TALLOC_FAILINJECT_H

#include <stdint.h>

/*
 * From now on, after skip more allocations, fail one talloc allocation
 * in rate (1: every one; 0: none), chosen by a generator seeded with seed.
 */
void talloc_failinject_set(unsigned rate, uint64_t seed, uint64_t skip);

/* Fail exactly the k-th talloc allocation from now, no other (0: none). */
void talloc_failinject_only(uint64_t k);

/* How many allocations were failed so far. */
uint64_t talloc_failinject_failed(void);

#endif /* TALLOC_FAILINJECT_H */
