/* SPDX-License-Identifier: MIT */
/*
 * talloc allocation-failure injection for tests (docs/hardening.md,
 * "Allocation failures").
 *
 * Loaded with LD_PRELOAD (the daemon under test) or linked ahead of
 * libtalloc (a unit test), it interposes every talloc entry point that
 * allocates and that tsgate, libtevent and libtalloc itself call through
 * the PLT (checked with nm -u / nm -D), fails some of the calls and hands
 * the others to the real talloc found with dlsym(RTLD_NEXT). Only talloc
 * is interposed: GnuTLS, krb5 and libc allocate with malloc and are never
 * failed here (GnuTLS's bignum code, GMP, aborts on a failed allocation).
 *
 * Configured from the environment when loaded:
 *   TSGATE_FAILINJECT_RATE=N     fail one call in N at random (1: every call)
 *   TSGATE_FAILINJECT_SEED=S     seed of the random choice (default 1)
 *   TSGATE_FAILINJECT_SKIP=K     let the first K calls pass (a warm-up)
 *   TSGATE_FAILINJECT_ONLY=K     fail exactly the K-th call (1-based), no
 *                                other (for sweeping a start-up path); with
 *                                an arm file, the K-th call once armed (for
 *                                sweeping what follows, e.g. a reload)
 *   TSGATE_FAILINJECT_ARM_FILE=P inject only once the file P exists (the
 *                                test creates it when the daemon is ready)
 *   TSGATE_FAILINJECT_REPORT=P   at exit, append "pid calls failed
 *                                armed_calls" to P
 *   TSGATE_FAILINJECT_TRACE=P    append the stack of every failed call to P
 *                                (to find the call site behind a finding)
 * and from a test linked with it, with talloc_failinject_set().
 */
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <talloc.h>

#include "talloc_failinject.h"

static struct {
	unsigned rate;
	uint64_t skip;
	uint64_t only;
	uint64_t prng;
	const char *arm_file;
	bool armed;
	uint64_t calls;
	uint64_t armed_calls; /* calls since armed: what ONLY counts */
	uint64_t failed;
	const void *pooled; /* the last _talloc_pooled_object() */
	int trace_fd;
} fi = {.prng = 1, .trace_fd = -1};

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : dflt;
}

__attribute__((constructor)) static void fi_init(void)
{
	fi.rate = (unsigned)env_u64("TSGATE_FAILINJECT_RATE", 0);
	fi.skip = env_u64("TSGATE_FAILINJECT_SKIP", 0);
	fi.only = env_u64("TSGATE_FAILINJECT_ONLY", 0);
	fi.prng = env_u64("TSGATE_FAILINJECT_SEED", 1) | 1;
	fi.arm_file = getenv("TSGATE_FAILINJECT_ARM_FILE");
	fi.armed = fi.arm_file == NULL || *fi.arm_file == '\0';
	if (getenv("TSGATE_FAILINJECT_TRACE") != NULL) {
		fi.trace_fd =
		    open(getenv("TSGATE_FAILINJECT_TRACE"),
			 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
}

static void fi_trace(void)
{
	void *frames[32];
	char head[64];
	int n;

	if (fi.trace_fd < 0) {
		return;
	}
	n = snprintf(head, sizeof(head), "# %ld %llu\n", (long)getpid(),
		     (unsigned long long)fi.calls);
	if (write(fi.trace_fd, head, (size_t)n) < 0) {
		return;
	}
	n = backtrace(frames, 32);
	backtrace_symbols_fd(frames, n, fi.trace_fd);
}

__attribute__((destructor)) static void fi_report(void)
{
	const char *path = getenv("TSGATE_FAILINJECT_REPORT");
	char line[96];
	int fd;
	int n;

	if (path == NULL || *path == '\0') {
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		return;
	}
	n = snprintf(line, sizeof(line), "%ld %llu %llu %llu\n", (long)getpid(),
		     (unsigned long long)fi.calls,
		     (unsigned long long)fi.failed,
		     (unsigned long long)fi.armed_calls);
	if (write(fd, line, (size_t)n) < 0) {
		/* nothing to do: the test sees no report */
	}
	close(fd);
}

void talloc_failinject_set(unsigned rate, uint64_t seed, uint64_t skip)
{
	fi.rate = rate;
	fi.prng = seed | 1;
	fi.skip = fi.calls + skip;
	fi.only = 0;
	fi.armed = true;
}

void talloc_failinject_only(uint64_t k)
{
	fi.rate = 0;
	fi.only = k != 0 ? fi.armed_calls + k : 0;
	fi.armed = true;
}

uint64_t talloc_failinject_failed(void)
{
	return fi.failed;
}

/* Whether this allocation fails. */
static bool fi_fail(void)
{
	uint64_t x;

	fi.calls++;
	if (!fi.armed) {
		if (access(fi.arm_file, F_OK) != 0) {
			return false;
		}
		fi.armed = true;
	}
	fi.armed_calls++;
	if (fi.only != 0) {
		if (fi.armed_calls != fi.only) {
			return false;
		}
		fi.failed++;
		fi_trace();
		return true;
	}
	if (fi.rate == 0 || fi.calls <= fi.skip) {
		return false;
	}
	/* xorshift64: reproducible for a seed, no libc state touched */
	x = fi.prng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	fi.prng = x;
	if (fi.rate > 1 && x % fi.rate != 0) {
		return false;
	}
	fi.failed++;
	fi_trace();
	return true;
}

/*
 * An allocation inside a talloc pooled object that has room cannot fail
 * in real talloc, and tevent relies on it: _tevent_req_create() does not
 * check the state it allocates in the request's pool. Failing that one
 * would be a defect of the shim, not of the code under test; so children
 * of the last pooled object pass.
 */
static bool fi_fail_in(const void *ctx)
{
	if (ctx != NULL && ctx == fi.pooled) {
		return false;
	}
	return fi_fail();
}

/* The real function, looked up once. */
#define REAL(name)                                                         \
	static __typeof__(name) *real_##name;                              \
	if (real_##name == NULL) {                                         \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
		if (real_##name == NULL) {                                 \
			abort();                                           \
		}                                                          \
	}

void *_talloc(const void *context, size_t size)
{
	REAL(_talloc);
	return fi_fail_in(context) ? NULL : real__talloc(context, size);
}

void *talloc_named_const(const void *context, size_t size, const char *name)
{
	REAL(talloc_named_const);
	return fi_fail_in(context)
		   ? NULL
		   : real_talloc_named_const(context, size, name);
}

void *talloc_named(const void *context, size_t size, const char *fmt, ...)
{
	va_list ap;
	char *name = NULL;
	void *p;

	REAL(talloc_named_const);
	if (fi_fail()) {
		return NULL;
	}
	p = real_talloc_named_const(context, size, "");
	va_start(ap, fmt);
	if (p != NULL && vasprintf(&name, fmt, ap) >= 0) {
		talloc_set_name(p, "%s", name);
		free(name);
	}
	va_end(ap);
	return p;
}

void *_talloc_zero(const void *ctx, size_t size, const char *name)
{
	REAL(_talloc_zero);
	return fi_fail_in(ctx) ? NULL : real__talloc_zero(ctx, size, name);
}

void *_talloc_array(const void *ctx,
		    size_t el_size,
		    unsigned count,
		    const char *name)
{
	REAL(_talloc_array);
	return fi_fail_in(ctx) ? NULL
			       : real__talloc_array(ctx, el_size, count, name);
}

void *_talloc_zero_array(const void *ctx,
			 size_t el_size,
			 unsigned count,
			 const char *name)
{
	REAL(_talloc_zero_array);
	return fi_fail_in(ctx)
		   ? NULL
		   : real__talloc_zero_array(ctx, el_size, count, name);
}

void *_talloc_realloc(const void *context,
		      void *ptr,
		      size_t size,
		      const char *name)
{
	REAL(_talloc_realloc);
	/* size 0 frees: that never fails */
	if (size != 0 && fi_fail()) {
		return NULL;
	}
	return real__talloc_realloc(context, ptr, size, name);
}

void *_talloc_realloc_array(const void *ctx,
			    void *ptr,
			    size_t el_size,
			    unsigned count,
			    const char *name)
{
	REAL(_talloc_realloc_array);
	if (count != 0 && el_size != 0 && fi_fail()) {
		return NULL;
	}
	return real__talloc_realloc_array(ctx, ptr, el_size, count, name);
}

void *_talloc_memdup(const void *t,
		     const void *p,
		     size_t size,
		     const char *name)
{
	REAL(_talloc_memdup);
	return fi_fail() ? NULL : real__talloc_memdup(t, p, size, name);
}

void *talloc_pool(const void *context, size_t size)
{
	REAL(talloc_pool);
	return fi_fail() ? NULL : real_talloc_pool(context, size);
}

void *_talloc_pooled_object(const void *ctx,
			    size_t type_size,
			    const char *type_name,
			    unsigned num_subobjects,
			    size_t total_subobjects_size)
{
	void *p;

	REAL(_talloc_pooled_object);
	if (fi_fail()) {
		return NULL;
	}
	p = real__talloc_pooled_object(ctx, type_size, type_name,
				       num_subobjects, total_subobjects_size);
	fi.pooled = p;
	return p;
}

void *_talloc_reference_loc(const void *context,
			    const void *ptr,
			    const char *location)
{
	REAL(_talloc_reference_loc);
	if (ptr != NULL && fi_fail()) {
		return NULL;
	}
	return real__talloc_reference_loc(context, ptr, location);
}

char *talloc_strdup(const void *t, const char *p)
{
	REAL(talloc_strdup);
	return fi_fail() ? NULL : real_talloc_strdup(t, p);
}

char *talloc_strndup(const void *t, const char *p, size_t n)
{
	REAL(talloc_strndup);
	return fi_fail() ? NULL : real_talloc_strndup(t, p, n);
}

/*
 * The _append calls keep talloc's contract on failure: NULL comes back
 * and the string passed in is left as it was (talloc_realloc failed).
 */
char *talloc_strdup_append(char *s, const char *a)
{
	REAL(talloc_strdup_append);
	return fi_fail() ? NULL : real_talloc_strdup_append(s, a);
}

char *talloc_strdup_append_buffer(char *s, const char *a)
{
	REAL(talloc_strdup_append_buffer);
	return fi_fail() ? NULL : real_talloc_strdup_append_buffer(s, a);
}

char *talloc_strndup_append(char *s, const char *a, size_t n)
{
	REAL(talloc_strndup_append);
	return fi_fail() ? NULL : real_talloc_strndup_append(s, a, n);
}

char *talloc_strndup_append_buffer(char *s, const char *a, size_t n)
{
	REAL(talloc_strndup_append_buffer);
	return fi_fail() ? NULL : real_talloc_strndup_append_buffer(s, a, n);
}

char *talloc_vasprintf(const void *t, const char *fmt, va_list ap)
{
	REAL(talloc_vasprintf);
	return fi_fail() ? NULL : real_talloc_vasprintf(t, fmt, ap);
}

char *talloc_vasprintf_append(char *s, const char *fmt, va_list ap)
{
	REAL(talloc_vasprintf_append);
	return fi_fail() ? NULL : real_talloc_vasprintf_append(s, fmt, ap);
}

char *talloc_vasprintf_append_buffer(char *s, const char *fmt, va_list ap)
{
	REAL(talloc_vasprintf_append_buffer);
	return fi_fail() ? NULL
			 : real_talloc_vasprintf_append_buffer(s, fmt, ap);
}

char *talloc_asprintf(const void *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = talloc_vasprintf(t, fmt, ap);
	va_end(ap);
	return s;
}

char *talloc_asprintf_append(char *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s = talloc_vasprintf_append(s, fmt, ap);
	va_end(ap);
	return s;
}

char *talloc_asprintf_append_buffer(char *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	s = talloc_vasprintf_append_buffer(s, fmt, ap);
	va_end(ap);
	return s;
}

/* talloc's contract: on failure *ps is freed and set to NULL. */
void talloc_asprintf_addbuf(char **ps, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (*ps == NULL) {
		return;
	}
	va_start(ap, fmt);
	s = talloc_vasprintf_append_buffer(*ps, fmt, ap);
	va_end(ap);
	if (s == NULL) {
		TALLOC_FREE(*ps);
		return;
	}
	*ps = s;
}
