/* SPDX-License-Identifier: MIT */
/*
 * tsgate command line: load the configuration, then either report on it
 * (--check-config) or run the daemon in the foreground.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <talloc.h>

#include "config_tunnels.h"
#include "daemon.h"
#include "health.h"
#include "log.h"
#include "version.h"

#define TSGATE_DEFAULT_CONFIG "/etc/tsgate/tsgate.yaml"

/* Exit codes: 0 success, 1 bad configuration or failed run, 2 usage. */
#define EXIT_USAGE 2

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: tsgate [--config FILE] [--log-level LEVEL]\n"
		"       tsgate --check-config [--config FILE]\n"
		"       tsgate --health [--config FILE]\n"
		"       tsgate --version [--verbose] | -vv | --help\n"
		"\n"
		"TLS/GSSAPI tunnel gateway. Runs in the foreground and logs "
		"to stderr.\n"
		"\n"
		"  -c, --config FILE   configuration file (default "
		"%s)\n"
		"  -t, --check-config  validate the configuration, including "
		"its\n"
		"                      certificates, keys and keytabs; print "
		"every\n"
		"                      error as FILE:LINE:COLUMN: message and "
		"exit\n"
		"                      0 when it is good, 1 when it is not\n"
		"  -l, --log-level LEVEL\n"
		"                      debug, info, warning or error; "
		"overrides\n"
		"                      TSGATE_LOG_LEVEL, which overrides "
		"log.level\n"
		"  -H, --health        ask the running daemon's metrics "
		"listener for\n"
		"                      GET /healthz; exit 0 on 200 (or when "
		"no metrics\n"
		"                      listener is configured), 1 otherwise\n"
		"  -V, --version       print the version and exit\n"
		"  -v, --verbose       with --version (or as -vv): also the "
		"libraries\n"
		"                      (running and built with), build "
		"options and\n"
		"                      built-in features\n"
		"  -h, --help          print this help and exit\n"
		"\n"
		"Relative paths in the configuration are relative to the "
		"directory of\n"
		"the configuration file. See docs/configuration.md.\n",
		TSGATE_DEFAULT_CONFIG);
}

static void print_errors(const struct tsgate_config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->num_errors; i++) {
		char *line = tsgate_config_error_string(NULL, &errs->errors[i]);

		if (line == NULL) {
			fprintf(stderr, "tsgate: out of memory\n");
			return;
		}
		fprintf(stderr, "%s\n", line);
		talloc_free(line);
	}
}

/* Load path; prints every error. Returns the config or NULL. */
static struct tsgate_config *load(TALLOC_CTX *mem_ctx,
				  const char *path,
				  unsigned flags)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	int ret;

	ret = tsgate_config_load(mem_ctx, path, flags, &cfg, &errs);
	if (ret == EINVAL) {
		print_errors(errs);
		fprintf(stderr, "%s: %zu error%s\n", path, errs->num_errors,
			errs->num_errors == 1 ? "" : "s");
		talloc_free(errs);
		/*
		 * There is no built-in configuration (and the container image
		 * ships none, so a forgotten mount cannot expose anything):
		 * say where the file goes.
		 */
		if (access(path, F_OK) != 0 && errno == ENOENT) {
			fprintf(stderr,
				"tsgate: no configuration at %s, and tsgate "
				"has no default: write one (see "
				"docs/configuration.md and etc/examples/) and "
				"give it with --config FILE, or in a container "
				"mount it at %s (e.g. -v "
				"./tsgate.yaml:%s:ro)\n",
				path, path, path);
		}
		return NULL;
	}
	if (ret != 0) {
		fprintf(stderr, "%s: cannot load: %s\n", path, strerror(ret));
		return NULL;
	}
	return cfg;
}

/*
 * A relayed 64 KiB chunk passes through a few short-lived buffers of up
 * to 64 KiB each (ciphertext, GnuTLS's decrypted records, the relay's
 * chunk). With glibc's default trim threshold (128 KiB) freeing them
 * together at the top of the heap gives the pages back with brk(), and
 * the next chunk takes them again, page faults included: about one brk
 * per chunk and a fifth more CPU per GiB. Keep up to 512 KiB of free
 * heap top per process instead (glibc raises the threshold to 2x its
 * largest freed mmap chunk on its own anyway; this only fixes it).
 */
static void tune_malloc(void)
{
#ifdef __GLIBC__
	(void)mallopt(M_TRIM_THRESHOLD, 512 * 1024);
#endif
}

static int run(TALLOC_CTX *mem_ctx, const char *path, struct tsgate_config *cfg)
{
	char cwd[PATH_MAX];

	tune_malloc();

	/* A reload reads the file again, maybe after a chdir(): give the
	 * daemon a path that does not depend on the working directory. */
	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
		path = talloc_asprintf(mem_ctx, "%s/%s", cwd, path);
		if (path == NULL) {
			fprintf(stderr, "tsgate: out of memory\n");
			return 1;
		}
	}
	return tsgate_daemon_run(mem_ctx, path, cfg);
}

/*
 * --log-level LEVEL: passed on as TSGATE_LOG_LEVEL, so the supervisor,
 * every worker and every reload see the same override.
 */
static int set_log_level(const char *name)
{
	enum tsgate_config_log_level level;

	if (tsgate_config_log_level_parse(name, &level) != 0) {
		fprintf(stderr,
			"tsgate: --log-level: unknown level '%s' (expected "
			"one of debug, info, warning, error)\n",
			name);
		return -1;
	}
	if (setenv(TSGATE_LOG_LEVEL_ENV, name, 1) != 0) {
		fprintf(stderr, "tsgate: out of memory\n");
		return -1;
	}
	return 0;
}

/* A TSGATE_LOG_LEVEL that names no level is refused, not ignored. */
static int check_log_level_env(void)
{
	const char *name = getenv(TSGATE_LOG_LEVEL_ENV);
	enum tsgate_config_log_level level;

	if (name == NULL || tsgate_config_log_level_parse(name, &level) == 0) {
		return 0;
	}
	fprintf(stderr,
		"tsgate: %s: unknown level '%s' (expected one of debug, "
		"info, warning, error)\n",
		TSGATE_LOG_LEVEL_ENV, name);
	return -1;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 't'},
	    {"health", no_argument, NULL, 'H'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"version", no_argument, NULL, 'V'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = TSGATE_DEFAULT_CONFIG;
	bool check = false;
	bool health = false;
	bool version = false;
	int verbose = 0;
	TALLOC_CTX *mem_ctx;
	struct tsgate_config *cfg;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "c:tHl:Vvh", options, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'H':
			health = true;
			break;
		case 'l':
			if (set_log_level(optarg) != 0) {
				return EXIT_USAGE;
			}
			break;
		case 'V':
			version = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	/* like haproxy: -v is the version, -vv the version in detail */
	if (version || verbose > 0) {
		tsgate_version_print(stdout,
				     verbose >= 2 || (version && verbose > 0));
		return 0;
	}
	if (optind < argc) {
		fprintf(stderr, "tsgate: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (check_log_level_env() != 0) {
		return 1;
	}
	mem_ctx = talloc_new(NULL);
	if (mem_ctx == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		return 1;
	}
	/* the health check runs every few seconds: skip loading keys */
	cfg = load(mem_ctx, path, health ? 0 : TSGATE_CONFIG_CHECK_CREDENTIALS);
	if (cfg == NULL) {
		talloc_free(mem_ctx);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK (%zu listener%s)\n", path,
		       cfg->num_listeners, cfg->num_listeners == 1 ? "" : "s");
		talloc_free(mem_ctx);
		return 0;
	}
	if (health) {
		/* 2 s: below the image's HEALTHCHECK --timeout=3s */
		ret = tsgate_health_probe(cfg, 2000) == 0 ? 0 : 1;
		if (ret != 0) {
			fprintf(stderr, "tsgate: health: %s: %s\n",
				cfg->metrics_listen->text, strerror(errno));
		}
		talloc_free(mem_ctx);
		return ret;
	}
	ret = run(mem_ctx, path, cfg);
	talloc_free(mem_ctx);
	return ret;
}
