/* SPDX-License-Identifier: MIT */
/*
 * A program linked against tsgate's libtsocket that also loads Samba's
 * tsocket library (libsamba-sockets-samba4.so.0, the same function names)
 * with dlopen(). Each side must keep calling its own: our calls go to
 * our libtsocket, Samba's functions (and the calls they make inside
 * Samba) to Samba's. Shown by dladdr() on the functions as this program
 * binds them and by behaviour: an address made and printed by each
 * library. test_symbol_clash.sh runs it plainly, with Samba's library
 * preloaded ahead of ours, and under LD_DEBUG=bindings.
 *
 * usage: symbol_clash SAMBA_LIBRARY
 * Exit 0 when every check passed, 1 otherwise, 2 on a usage error.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <talloc.h>
#include <tsocket.h>

typedef int (*from_strings_fn)(TALLOC_CTX *,
			       const char *,
			       const char *,
			       uint16_t,
			       struct tsocket_address **,
			       const char *);
typedef char *(*string_fn)(const struct tsocket_address *, TALLOC_CTX *);

static int failures;

static void check(int ok, const char *what, const char *detail)
{
	printf("%s - %s%s%s\n", ok ? "ok" : "not ok", what,
	       detail != NULL ? ": " : "", detail != NULL ? detail : "");
	if (!ok) {
		failures++;
	}
}

/* the file that defines the function at addr, as the loader sees it */
static const char *defining_file(const void *addr)
{
	Dl_info info;

	if (dladdr(addr, &info) == 0 || info.dli_fname == NULL) {
		return "(unknown)";
	}
	return info.dli_fname;
}

static int from_file(const void *addr, const char *name)
{
	return strstr(defining_file(addr), name) != NULL;
}

/* make "ipv4:127.0.0.1:1234" with one library's two functions */
static int round_trip(TALLOC_CTX *mem, from_strings_fn from, string_fn str)
{
	struct tsocket_address *addr = NULL;
	char *s;

	if (from(mem, "ip", "127.0.0.1", 1234, &addr, __location__) != 0) {
		return 0;
	}
	s = str(addr, mem);
	return s != NULL && strcmp(s, "ipv4:127.0.0.1:1234") == 0;
}

/* our calls: bound to our libtsocket, working as ours */
static void check_ours(TALLOC_CTX *mem, const char *when)
{
	char what[128];

	snprintf(what, sizeof(what), "%s: tsocket_address_string is ours",
		 when);
	check(from_file((const void *)tsocket_address_string, "libtsocket.so"),
	      what, defining_file((const void *)tsocket_address_string));
	snprintf(what, sizeof(what),
		 "%s: _tsocket_address_inet_from_strings is ours", when);
	check(from_file((const void *)_tsocket_address_inet_from_strings,
			"libtsocket.so"),
	      what,
	      defining_file((const void *)_tsocket_address_inet_from_strings));
	snprintf(what, sizeof(what), "%s: our address round trip", when);
	check(round_trip(mem, _tsocket_address_inet_from_strings,
			 tsocket_address_string),
	      what, NULL);
}

int main(int argc, char **argv)
{
	TALLOC_CTX *mem;
	void *samba;
	from_strings_fn samba_from;
	string_fn samba_string;

	if (argc != 2) {
		fprintf(stderr, "usage: %s SAMBA_LIBRARY\n", argv[0]);
		return 2;
	}
	mem = talloc_new(NULL);
	if (mem == NULL) {
		return 1;
	}
	check_ours(mem, "before dlopen");

	samba = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	check(samba != NULL, "dlopen Samba's tsocket library",
	      samba == NULL ? dlerror() : argv[1]);
	if (samba == NULL) {
		talloc_free(mem);
		return 1;
	}
	samba_from =
	    (from_strings_fn)dlsym(samba, "_tsocket_address_inet_from_strings");
	samba_string = (string_fn)dlsym(samba, "tsocket_address_string");
	check(samba_from != NULL && samba_string != NULL,
	      "Samba's library has the same names", NULL);
	if (samba_from == NULL || samba_string == NULL) {
		talloc_free(mem);
		return 1;
	}
	check(from_file((const void *)samba_string, "samba"),
	      "Samba's tsocket_address_string is Samba's",
	      defining_file((const void *)samba_string));
	check(samba_from != (from_strings_fn)_tsocket_address_inet_from_strings,
	      "the two libraries' functions are distinct", NULL);
	/* Samba's function calls _tsocket_address_create inside Samba */
	check(round_trip(mem, samba_from, samba_string),
	      "Samba's address round trip (Samba's internal calls)", NULL);

	check_ours(mem, "after dlopen");

	/* the libraries' objects stay apart; free Samba's before closing */
	talloc_free(mem);
	dlclose(samba);
	printf("%d failure%s\n", failures, failures == 1 ? "" : "s");
	return failures == 0 ? 0 : 1;
}
