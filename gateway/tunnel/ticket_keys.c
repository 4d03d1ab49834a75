/* SPDX-License-Identifier: MIT */
/*
 * Ticket key secrets: the daemon's random one, HAProxy-style key files,
 * and the per-listener master derived from either (see ticket_keys.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "ticket_keys.h"

/* A key file is a few lines; anything bigger is not one. */
#define TICKET_FILE_MAX (64 * 1024)

static int tsgate_ticket_secret_destructor(struct tsgate_ticket_secret *s)
{
	gnutls_memset(s->key, 0, sizeof(s->key));
	return 0;
}

static struct tsgate_ticket_secret *tsgate_ticket_secret_new(
    TALLOC_CTX *mem_ctx)
{
	struct tsgate_ticket_secret *s =
	    talloc_zero(mem_ctx, struct tsgate_ticket_secret);

	if (s != NULL) {
		talloc_set_destructor(s, tsgate_ticket_secret_destructor);
	}
	return s;
}

struct tsgate_ticket_secret *tsgate_ticket_secret_random(TALLOC_CTX *mem_ctx)
{
	struct tsgate_ticket_secret *s = tsgate_ticket_secret_new(mem_ctx);

	if (s == NULL) {
		return NULL;
	}
	s->len = 64;
	if (gnutls_rnd(GNUTLS_RND_KEY, s->key, s->len) != 0) {
		talloc_free(s);
		return NULL;
	}
	return s;
}

/* One line: the key, or a message (no key bytes in it). */
static const char *tsgate_ticket_line(const char *line,
				      size_t len,
				      struct tsgate_ticket_secret *out)
{
	gnutls_datum_t b64 = {(unsigned char *)line, (unsigned)len};
	gnutls_datum_t raw = {NULL, 0};
	const char *problem = NULL;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' ||
		      c == '=')) {
			return "not base64 (one key a line)";
		}
	}
	if (gnutls_base64_decode2(&b64, &raw) < 0) {
		return "not base64 (one key a line)";
	}
	if (raw.size != TSGATE_TICKET_FILE_KEY_MIN &&
	    raw.size != TSGATE_TICKET_FILE_KEY_MAX) {
		problem = "a key must be 48 or 80 bytes (openssl rand 80 | "
			  "openssl base64 -A)";
	} else if (out != NULL) {
		memcpy(out->key, raw.data, raw.size);
		out->len = raw.size;
	}
	gnutls_memset(raw.data, 0, raw.size);
	gnutls_free(raw.data);
	return problem;
}

int tsgate_ticket_keys_parse(TALLOC_CTX *mem_ctx,
			     const char *name,
			     const char *text,
			     size_t len,
			     struct tsgate_ticket_secret **psecret,
			     size_t *pnum,
			     char **error)
{
	struct tsgate_ticket_secret *s = tsgate_ticket_secret_new(mem_ctx);
	size_t pos = 0;
	size_t num = 0;
	unsigned line = 0;

	*error = NULL;
	if (s == NULL) {
		return ENOMEM;
	}
	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
		const char *problem;

		pos += n + (nl != NULL ? 1 : 0);
		line++;
		while (n > 0 && (start[n - 1] == '\r' || start[n - 1] == ' ' ||
				 start[n - 1] == '\t')) {
			n--;
		}
		while (n > 0 && (*start == ' ' || *start == '\t')) {
			start++;
			n--;
		}
		if (n == 0 || *start == '#') {
			continue;
		}
		if (memchr(start, '\0', n) != NULL) {
			problem = "holds a NUL byte";
		} else {
			problem =
			    tsgate_ticket_line(start, n, num == 0 ? s : NULL);
		}
		if (problem != NULL) {
			*error = talloc_asprintf(mem_ctx, "%s:%u: %s", name,
						 line, problem);
			talloc_free(s);
			return *error == NULL ? ENOMEM : EINVAL;
		}
		num++;
	}
	if (num == 0) {
		*error = talloc_asprintf(mem_ctx, "%s: holds no key", name);
		talloc_free(s);
		return *error == NULL ? ENOMEM : EINVAL;
	}
	*psecret = s;
	if (pnum != NULL) {
		*pnum = num;
	}
	return 0;
}

int tsgate_ticket_keys_read(TALLOC_CTX *mem_ctx,
			    const char *path,
			    struct tsgate_ticket_secret **psecret,
			    size_t *pnum,
			    char **error)
{
	char buf[TICKET_FILE_MAX + 1];
	size_t done = 0;
	struct stat st;
	int fd;
	int err;

	*error = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1 || fstat(fd, &st) != 0) {
		err = errno;
		if (fd != -1) {
			close(fd);
		}
		*error =
		    talloc_asprintf(mem_ctx, "%s: %s", path, strerror(err));
		return *error == NULL ? ENOMEM : err;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > TICKET_FILE_MAX) {
		close(fd);
		*error = talloc_asprintf(mem_ctx, "%s: %s", path,
					 S_ISREG(st.st_mode)
					     ? "too large for a key file"
					     : "not a regular file");
		return *error == NULL ? ENOMEM : EINVAL;
	}
	while (done < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + done, sizeof(buf) - 1 - done);

		if (n == -1 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	err = tsgate_ticket_keys_parse(mem_ctx, path, buf, done, psecret, pnum,
				       error);
	gnutls_memset(buf, 0, done);
	return err;
}

int tsgate_ticket_master(const struct tsgate_ticket_secret *secret,
			 const char *listener,
			 enum tsgate_config_verify_client verify,
			 uint8_t master[64])
{
	static const char salt_text[] = "tsgate ticket master v1";
	static const char *const verify_names[] = {"none", "optional",
						   "require"};
	gnutls_datum_t ikm = {(unsigned char *)secret->key,
			      (unsigned)secret->len};
	gnutls_datum_t salt = {(unsigned char *)salt_text,
			       sizeof(salt_text) - 1};
	uint8_t prk[32];
	gnutls_datum_t prk_d = {prk, sizeof(prk)};
	char info[1024];
	gnutls_datum_t info_d;
	size_t nlen = strlen(listener);
	const char *v;
	int ret;

	if ((unsigned)verify >=
		sizeof(verify_names) / sizeof(verify_names[0]) ||
	    nlen + 16 > sizeof(info) || secret->len == 0) {
		return EINVAL;
	}
	v = verify_names[verify];
	memcpy(info, listener, nlen);
	info[nlen] = '\0';
	memcpy(info + nlen + 1, v, strlen(v));
	info_d.data = (unsigned char *)info;
	info_d.size = (unsigned)(nlen + 1 + strlen(v));
	ret = gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, prk);
	if (ret == 0) {
		ret = gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &prk_d, &info_d,
					 master, 64);
	}
	gnutls_memset(prk, 0, sizeof(prk));
	return ret == 0 ? 0 : EINVAL;
}
