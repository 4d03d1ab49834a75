/* SPDX-License-Identifier: MIT */
/*
 * Value parsers of the tsgate config: durations, sizes, addresses,
 * wildcards and the names of enum values.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"

/* Largest duration we accept: 30 days (keeps ms arithmetic far from
 * overflow and catches typos such as 300000m). */
#define CFG_MAX_DURATION_MS (30ULL * 24 * 3600 * 1000)
/* Largest size we accept: 1 GiB, far more than a PDU should ever be. */
#define CFG_MAX_SIZE (1ULL << 30)

/*
 * Split "123unit" into number and unit. Returns false when there are no
 * digits, the number overflows, or anything but letters follows it.
 */
static bool cfg_split_number(const char *s, uint64_t *num, const char **unit)
{
	uint64_t v = 0;
	const char *c = s;

	if (!isdigit((unsigned char)*c)) {
		return false;
	}
	for (; isdigit((unsigned char)*c); c++) {
		unsigned d = (unsigned)(*c - '0');

		if (v > (UINT64_MAX - d) / 10) {
			return false;
		}
		v = v * 10 + d;
	}
	*unit = c;
	for (; *c != '\0'; c++) {
		if (!isalpha((unsigned char)*c)) {
			return false;
		}
	}
	*num = v;
	return true;
}

const char *tsgate_config_parse_duration(TALLOC_CTX *mem_ctx,
					 const char *s,
					 uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
	    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
	};
	uint64_t num;
	const char *unit;
	size_t i;

	if (!cfg_split_number(s, &num, &unit)) {
		return talloc_asprintf(mem_ctx,
				       "'%s' is not a duration (use a whole "
				       "number with ms, s, m or h, e.g. 10s)",
				       s);
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) != 0) {
			continue;
		}
		if (num > CFG_MAX_DURATION_MS / units[i].ms) {
			return talloc_asprintf(mem_ctx,
					       "duration '%s' is too long "
					       "(at most 30 days)",
					       s);
		}
		*ms = num * units[i].ms;
		return NULL;
	}
	return talloc_asprintf(mem_ctx,
			       "unknown unit '%s' in duration '%s' (use ms, s, "
			       "m or h)",
			       unit, s);
}

const char *tsgate_config_parse_size(TALLOC_CTX *mem_ctx,
				     const char *s,
				     uint64_t *bytes)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
	    {"", 1},
	    {"B", 1},
	    {"KiB", 1ULL << 10},
	    {"MiB", 1ULL << 20},
	    {"GiB", 1ULL << 30},
	};
	uint64_t num;
	const char *unit;
	size_t i;

	if (!cfg_split_number(s, &num, &unit)) {
		return talloc_asprintf(mem_ctx,
				       "'%s' is not a size (use a whole number "
				       "of bytes, KiB or MiB, e.g. 64KiB)",
				       s);
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) != 0) {
			continue;
		}
		if (num > CFG_MAX_SIZE / units[i].mult) {
			return talloc_asprintf(mem_ctx,
					       "size '%s' is too large "
					       "(at most 1GiB)",
					       s);
		}
		*bytes = num * units[i].mult;
		return NULL;
	}
	return talloc_asprintf(mem_ctx,
			       "unknown unit '%s' in size '%s' (use KiB, MiB "
			       "or GiB: powers of 1024)",
			       unit, s);
}

static bool cfg_add_ip(TALLOC_CTX *mem_ctx,
		       struct tsgate_config_addr *addr,
		       const char *ip)
{
	const char **ips;
	size_t i;

	for (i = 0; i < addr->num_ips; i++) {
		if (strcmp(addr->ips[i], ip) == 0) {
			return true;
		}
	}
	ips =
	    talloc_realloc(mem_ctx, addr->ips, const char *, addr->num_ips + 1);
	if (ips == NULL) {
		return false;
	}
	addr->ips = ips;
	ips[addr->num_ips] = talloc_strdup(ips, ip);
	if (ips[addr->num_ips] == NULL) {
		return false;
	}
	addr->num_ips += 1;
	return true;
}

/* Letters, digits, '-', '_' and '.'; labels of 1..63, at most 253. */
static bool cfg_valid_hostname(const char *host)
{
	size_t label = 0, len = strlen(host);
	const char *c;

	if (len == 0 || len > 253) {
		return false;
	}
	for (c = host; *c != '\0'; c++) {
		if (*c == '.') {
			if (label == 0) {
				return false;
			}
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
			return false;
		}
		if (++label > 63) {
			return false;
		}
	}
	return true;
}

/* Resolve host into addr->ips; returns an error message or NULL. */
static const char *cfg_resolve(TALLOC_CTX *mem_ctx,
			       const char *host,
			       bool bracketed,
			       unsigned flags,
			       struct tsgate_config_addr *addr)
{
	struct addrinfo hints = {
	    .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST,
	};
	struct addrinfo *res = NULL, *ai;
	int ret;

	ret = getaddrinfo(host, NULL, &hints, &res);
	if (ret != 0) {
		if (bracketed || strchr(host, ':') != NULL) {
			return talloc_asprintf(
			    mem_ctx, "'%s' is not an IPv6 address", host);
		}
		if (strspn(host, "0123456789.") == strlen(host)) {
			return talloc_asprintf(
			    mem_ctx, "'%s' is not an IPv4 address", host);
		}
		if (!cfg_valid_hostname(host)) {
			return talloc_asprintf(
			    mem_ctx, "'%s' is not a valid host name", host);
		}
		if ((flags & TSGATE_CONFIG_DEFER_RESOLVE) &&
		    !(flags & TSGATE_CONFIG_NO_RESOLVE)) {
			return NULL;
		}
		if (flags & TSGATE_CONFIG_NO_RESOLVE) {
			return talloc_asprintf(mem_ctx,
					       "host name '%s' not allowed "
					       "(name resolution is off)",
					       host);
		}
		hints.ai_flags = 0;
		ret = getaddrinfo(host, NULL, &hints, &res);
		if (ret != 0) {
			return talloc_asprintf(
			    mem_ctx, "cannot resolve host '%s': %s", host,
			    ret == EAI_SYSTEM ? strerror(errno)
					      : gai_strerror(ret));
		}
	} else if (bracketed && res->ai_family != AF_INET6) {
		freeaddrinfo(res);
		return talloc_asprintf(mem_ctx,
				       "'[%s]': only IPv6 addresses go in "
				       "brackets",
				       host);
	}

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char buf[NI_MAXHOST];

		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) {
			continue;
		}
		ret = getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof(buf),
				  NULL, 0, NI_NUMERICHOST);
		if (ret != 0) {
			continue;
		}
		if (!cfg_add_ip(mem_ctx, addr, buf)) {
			freeaddrinfo(res);
			return talloc_strdup(mem_ctx, "out of memory");
		}
	}
	freeaddrinfo(res);
	if (addr->num_ips == 0) {
		return talloc_asprintf(
		    mem_ctx, "host '%s' has no IPv4 or IPv6 address", host);
	}
	addr->ip = addr->ips[0];
	return NULL;
}

static const char *cfg_parse_tcp(TALLOC_CTX *mem_ctx,
				 const char *s,
				 const char *hostport,
				 unsigned flags,
				 struct tsgate_config_addr *addr)
{
	const char *colon, *portstr;
	char *host;
	bool bracketed = false;
	uint64_t port = 0;
	const char *c;

	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');

		if (end == NULL) {
			return talloc_asprintf(mem_ctx,
					       "missing ']' after the IPv6 "
					       "address");
		}
		host =
		    talloc_strndup(mem_ctx, hostport + 1, end - hostport - 1);
		colon = end + 1;
		if (*colon != ':') {
			return talloc_asprintf(mem_ctx, "missing ':PORT' (use "
							"tcp://[IPv6]:PORT)");
		}
		bracketed = true;
	} else {
		colon = strrchr(hostport, ':');
		if (colon == NULL) {
			return talloc_asprintf(mem_ctx, "missing ':PORT' (use "
							"tcp://HOST:PORT)");
		}
		host = talloc_strndup(mem_ctx, hostport, colon - hostport);
		if (host != NULL && strchr(host, ':') != NULL) {
			return talloc_asprintf(mem_ctx,
					       "an IPv6 address must be in "
					       "brackets, e.g. "
					       "tcp://[::1]:8443");
		}
	}
	if (host == NULL) {
		return talloc_strdup(mem_ctx, "out of memory");
	}
	if (host[0] == '\0') {
		return talloc_strdup(mem_ctx, "missing host");
	}
	if (strchr(host, '/') != NULL) {
		return talloc_strdup(mem_ctx, "'/' in host name");
	}
	portstr = colon + 1;
	if (*portstr == '\0') {
		return talloc_strdup(mem_ctx, "missing port");
	}
	for (c = portstr; *c != '\0'; c++) {
		if (!isdigit((unsigned char)*c)) {
			return talloc_asprintf(
			    mem_ctx, "port '%s' is not a number", portstr);
		}
		port = port * 10 + (uint64_t)(*c - '0');
		if (port > 65535) {
			break;
		}
	}
	if (port < 1 || port > 65535) {
		return talloc_asprintf(
		    mem_ctx, "port %s is out of range (1-65535)", portstr);
	}
	addr->kind = TSGATE_CONFIG_ADDR_TCP;
	addr->host = host;
	addr->port = (uint16_t)port;
	return cfg_resolve(mem_ctx, host, bracketed, flags, addr);
}

const char *tsgate_config_resolve_address(TALLOC_CTX *mem_ctx,
					  unsigned flags,
					  struct tsgate_config_addr *addr)
{
	if (addr->kind != TSGATE_CONFIG_ADDR_TCP || addr->host == NULL ||
	    addr->num_ips > 0) {
		return NULL;
	}
	return cfg_resolve(mem_ctx, addr->host, false,
			   flags & ~TSGATE_CONFIG_DEFER_RESOLVE, addr);
}

const char *tsgate_config_parse_address(TALLOC_CTX *mem_ctx,
					const char *s,
					const char *base_dir,
					unsigned flags,
					struct tsgate_config_addr *addr)
{
	struct sockaddr_un sun;
	const char *path;
	char *abs;

	addr->text = talloc_strdup(mem_ctx, s);
	addr->host = NULL;
	addr->ip = NULL;
	addr->ips = NULL;
	addr->num_ips = 0;
	addr->port = 0;
	addr->path = NULL;
	if (addr->text == NULL) {
		return "out of memory";
	}

	if (strncmp(s, "tcp://", 6) == 0) {
		return cfg_parse_tcp(mem_ctx, s, s + 6, flags, addr);
	}
	if (strncmp(s, "unix:", 5) != 0) {
		return talloc_asprintf(mem_ctx,
				       "'%s' is not an address (use "
				       "tcp://HOST:PORT or unix:/path)",
				       s);
	}
	path = s + 5;
	if (strncmp(path, "//", 2) == 0) {
		/* unix:///run/x.sock: accept the URL spelling too */
		path += 2;
	}
	if (*path == '\0') {
		return talloc_strdup(mem_ctx, "missing socket path");
	}
	if (path[0] == '/' || base_dir == NULL) {
		abs = talloc_strdup(mem_ctx, path);
	} else {
		const char *rel = path;

		while (strncmp(rel, "./", 2) == 0) {
			rel += 2;
		}
		abs = talloc_asprintf(mem_ctx, "%s/%s", base_dir, rel);
	}
	if (abs == NULL) {
		return "out of memory";
	}
	if (strlen(abs) >= sizeof(sun.sun_path)) {
		return talloc_asprintf(mem_ctx,
				       "unix socket path is too long "
				       "(%zu bytes, at most %zu)",
				       strlen(abs), sizeof(sun.sun_path) - 1);
	}
	addr->kind = TSGATE_CONFIG_ADDR_UNIX;
	addr->path = abs;
	return NULL;
}

bool tsgate_config_wildcard_match(const char *pattern,
				  const char *value,
				  bool nocase)
{
	const char *star_p = NULL, *star_v = NULL;

	while (*value != '\0') {
		if (*pattern == '*') {
			star_p = pattern++;
			star_v = value;
			continue;
		}
		if (*pattern != '\0' &&
		    (nocase ? tolower((unsigned char)*pattern) ==
				  tolower((unsigned char)*value)
			    : *pattern == *value)) {
			pattern++;
			value++;
			continue;
		}
		if (star_p == NULL) {
			return false;
		}
		pattern = star_p + 1;
		value = ++star_v;
	}
	while (*pattern == '*') {
		pattern++;
	}
	return *pattern == '\0';
}

const char *tsgate_config_accept_name(enum tsgate_config_accept a)
{
	switch (a) {
	case TSGATE_CONFIG_ACCEPT_PLAIN:
		return "plain";
	case TSGATE_CONFIG_ACCEPT_TLS:
		return "tls";
	case TSGATE_CONFIG_ACCEPT_GSSAPI:
		return "gssapi";
	case TSGATE_CONFIG_ACCEPT_TLS_GSSAPI:
		return "tls-gssapi";
	}
	return "?";
}

const char *tsgate_config_connect_name(enum tsgate_config_connect c)
{
	switch (c) {
	case TSGATE_CONFIG_CONNECT_PLAIN:
		return "plain";
	case TSGATE_CONFIG_CONNECT_TLS:
		return "tls";
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		return "gssapi";
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		return "tls-gssapi";
	}
	return "?";
}

const char *tsgate_config_framing_name(enum tsgate_config_framing f)
{
	switch (f) {
	case TSGATE_CONFIG_FRAMING_RAW:
		return "raw";
	case TSGATE_CONFIG_FRAMING_LENGTH32:
		return "length32";
	case TSGATE_CONFIG_FRAMING_NBT:
		return "nbt";
	case TSGATE_CONFIG_FRAMING_NCACN:
		return "ncacn";
	}
	return "?";
}

uint64_t tsgate_config_framing_default_max_pdu(enum tsgate_config_framing f)
{
	switch (f) {
	case TSGATE_CONFIG_FRAMING_NBT:
		return TSGATE_CONFIG_MAX_PDU_NBT;
	case TSGATE_CONFIG_FRAMING_NCACN:
		return TSGATE_CONFIG_MAX_PDU_NCACN;
	case TSGATE_CONFIG_FRAMING_LENGTH32:
	case TSGATE_CONFIG_FRAMING_RAW:
		break;
	}
	return TSGATE_CONFIG_MAX_PDU_LENGTH32;
}

const char *tsgate_config_identity_name(enum tsgate_config_identity i)
{
	switch (i) {
	case TSGATE_CONFIG_IDENTITY_NONE:
		return "none";
	case TSGATE_CONFIG_IDENTITY_PROXY_V2:
		return "proxy-v2";
	case TSGATE_CONFIG_IDENTITY_KNC:
		return "knc";
	}
	return "?";
}
