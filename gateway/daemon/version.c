/* SPDX-License-Identifier: MIT */
/*
 * tsgate --version [--verbose]. The running versions come from the
 * libraries where they can say (GnuTLS, libyaml, c-ares) and otherwise
 * from the file the loader mapped (libtevent.so.0.14.1 names its
 * release; talloc says only major.minor; MIT krb5 has no version call
 * and its file names only its ABI, libkrb5.so.3.3). The features are listed
 * from the configuration's own name tables, so the list cannot claim what the
 * parser does not accept.
 */
#include "version.h"

#include <ares.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <krb5.h>
#include <talloc.h>
#include <tevent.h>
#include <tsocket.h>
#include <tstream_gssapi.h>
#include <tstream_tls.h>
#include <yaml.h>

#include "config.h"

#ifndef TSGATE_VERSION
#define TSGATE_VERSION "unknown"
#endif

/* meson passes what it built against (pkg-config's versions) */
#ifndef TSGATE_BUILD_GNUTLS
#define TSGATE_BUILD_GNUTLS "unknown"
#endif
#ifndef TSGATE_BUILD_KRB5
#define TSGATE_BUILD_KRB5 "unknown"
#endif
#ifndef TSGATE_BUILD_TALLOC
#define TSGATE_BUILD_TALLOC "unknown"
#endif
#ifndef TSGATE_BUILD_TEVENT
#define TSGATE_BUILD_TEVENT "unknown"
#endif
#ifndef TSGATE_BUILD_YAML
#define TSGATE_BUILD_YAML "unknown"
#endif
#ifndef TSGATE_BUILD_CARES
#define TSGATE_BUILD_CARES "unknown"
#endif
#ifndef TSGATE_BUILD_COMPILER
#define TSGATE_BUILD_COMPILER "unknown"
#endif
#ifndef TSGATE_BUILD_TYPE
#define TSGATE_BUILD_TYPE "unknown"
#endif
#ifndef TSGATE_BUILD_SANITIZE
#define TSGATE_BUILD_SANITIZE "none"
#endif

/*
 * The real file behind the library that defines fn, e.g.
 * "libtevent.so.0.14.1", into buf; "?" when the loader cannot tell.
 */
static const char *library_file(const void *fn, char *buf, size_t len)
{
	char real[PATH_MAX];
	const char *base;
	Dl_info info;

	snprintf(buf, len, "?");
	if (dladdr(fn, &info) == 0 || info.dli_fname == NULL ||
	    realpath(info.dli_fname, real) == NULL) {
		return buf;
	}
	base = strrchr(real, '/');
	snprintf(buf, len, "%s", base != NULL ? base + 1 : real);
	return buf;
}

/* "0.14.1" out of "libtevent.so.0.14.1"; the file name when it has none */
static const char *file_version(const char *file)
{
	const char *v = strstr(file, ".so.");

	return v != NULL ? v + 4 : file;
}

static void print_library(FILE *out,
			  const char *name,
			  const char *running,
			  const char *built)
{
	fprintf(out, "  %-15s %-22s %s\n", name, running, built);
}

/* the release in the name of the file that defines fn */
static void print_library_file(FILE *out,
			       const char *name,
			       const void *fn,
			       const char *built)
{
	char file[PATH_MAX];

	print_library(out, name,
		      file_version(library_file(fn, file, sizeof(file))),
		      built);
}

static void print_libraries(FILE *out)
{
	char file[PATH_MAX];

	fprintf(out, "Libraries:\n");
	print_library(out, "", "running", "built with");
	print_library(out, "GnuTLS", gnutls_check_version(NULL),
		      TSGATE_BUILD_GNUTLS);
	/* libkrb5.so.3.3: the ABI, not the release */
	print_library(
	    out, "MIT krb5",
	    library_file((const void *)krb5_init_context, file, sizeof(file)),
	    TSGATE_BUILD_KRB5);
	print_library_file(out, "talloc", (const void *)talloc_version_major,
			   TSGATE_BUILD_TALLOC);
	print_library_file(out, "tevent", (const void *)tevent_context_init,
			   TSGATE_BUILD_TEVENT);
	print_library(out, "libyaml", yaml_get_version_string(),
		      TSGATE_BUILD_YAML);
	print_library(out, "c-ares", ares_version(NULL), TSGATE_BUILD_CARES);
	print_library_file(out, "tsocket", (const void *)tsocket_address_string,
			   TSGATE_VERSION);
	print_library_file(out, "tstream-tls",
			   (const void *)tstream_tls_connect_send,
			   TSGATE_VERSION);
	print_library_file(out, "tstream-gssapi",
			   (const void *)tstream_gssapi_connect_send,
			   TSGATE_VERSION);
}

/* every value of an enum whose name function answers "?" past the end */
static void print_names(FILE *out,
			const char *what,
			const char *(*name)(int value))
{
	int v;

	fprintf(out, "  %s:", what);
	for (v = 0; v < 16 && strcmp(name(v), "?") != 0; v++) {
		fprintf(out, " %s", name(v));
	}
	fprintf(out, "\n");
}

static const char *accept_name(int v)
{
	return tsgate_config_accept_name((enum tsgate_config_accept)v);
}

static const char *connect_name(int v)
{
	return tsgate_config_connect_name((enum tsgate_config_connect)v);
}

static const char *framing_name(int v)
{
	return tsgate_config_framing_name((enum tsgate_config_framing)v);
}

static const char *identity_name(int v)
{
	return tsgate_config_identity_name((enum tsgate_config_identity)v);
}

static void print_features(FILE *out)
{
	fprintf(out, "Built-in features:\n");
	print_names(out, "accept", accept_name);
	print_names(out, "connect", connect_name);
	print_names(out, "framing", framing_name);
	print_names(out, "identity", identity_name);
	fprintf(out, "  addresses: tcp unix\n");
	fprintf(out, "  metrics: prometheus /metrics /healthz /readyz\n");
}

void tsgate_version_print(FILE *out, bool verbose)
{
	fprintf(out, "tsgate %s\n", TSGATE_VERSION);
	if (!verbose) {
		return;
	}
	fprintf(out, "Copyright the tsgate authors; MIT licence\n\n");
	print_libraries(out);
	fprintf(out, "\nBuild options:\n");
	fprintf(out, "  compiler: %s\n", TSGATE_BUILD_COMPILER);
	fprintf(out, "  build type: %s\n", TSGATE_BUILD_TYPE);
	fprintf(out, "  sanitizers: %s\n\n", TSGATE_BUILD_SANITIZE);
	print_features(out);
}
