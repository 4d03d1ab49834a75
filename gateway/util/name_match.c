/* SPDX-License-Identifier: MIT */
/*
 * Name patterns of the allow-lists: DNS names, email addresses, URIs, IP
 * addresses, Kerberos principals and subject DNs matched on their
 * structure, not as flat strings.
 */
#include "name_match.h"

#include <string.h>
#include <strings.h>

/* ASCII only: DNS and attribute types are ASCII whatever the locale. */
static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Glob over [p, pe) against [v, ve): '*' matches any run of bytes none of
 * which is in `stops`; a backslash makes the next pattern byte literal.
 */
static bool glob_match(const char *p,
		       const char *pe,
		       const char *v,
		       const char *ve,
		       bool nocase,
		       const char *stops)
{
	const char *star_p = NULL, *star_v = NULL;

	while (v < ve) {
		if (p < pe && *p == '*') {
			star_p = p++;
			star_v = v;
			continue;
		}
		if (p < pe) {
			const char *lit = p;

			if (*lit == '\\' && lit + 1 < pe) {
				lit++;
			}
			if (nocase ? ascii_lower(*lit) == ascii_lower(*v)
				   : *lit == *v) {
				p = lit + 1;
				v++;
				continue;
			}
		}
		if (star_p == NULL || strchr(stops, *star_v) != NULL) {
			return false;
		}
		p = star_p + 1;
		v = ++star_v;
	}
	while (p < pe && *p == '*') {
		p++;
	}
	return p == pe;
}

/* DNS names */

const char *tsgate_name_dns_pattern_error(const char *pattern)
{
	const char *dot = strchr(pattern, '.');
	const char *star = strchr(pattern, '*');
	const char *p;

	if (*pattern == '\0') {
		return "a DNS pattern is empty";
	}
	if (strcmp(pattern, "*") == 0) {
		return NULL;
	}
	for (p = pattern; *p != '\0'; p++) {
		if (*p == '.' &&
		    (p == pattern || p[1] == '\0' || p[1] == '.')) {
			return "a DNS pattern has an empty label";
		}
	}
	if (star == NULL) {
		return NULL;
	}
	if (strchr(star + 1, '*') != NULL) {
		return "a DNS pattern may hold one '*' only";
	}
	if (dot == NULL || star > dot) {
		return "'*' in a DNS pattern may only stand in the leftmost "
		       "label of a name with more labels (RFC 6125 6.4.3)";
	}
	return NULL;
}

bool tsgate_name_dns_match(const char *pattern, const char *name)
{
	const char *pdot, *ndot, *p;

	if (pattern == NULL || name == NULL || *name == '\0') {
		return false;
	}
	for (p = name; *p != '\0'; p++) {
		if (*p == '.' && (p == name || p[1] == '\0' || p[1] == '.')) {
			return false; /* empty label */
		}
	}
	if (strchr(pattern, '*') == NULL) {
		return strcasecmp(pattern, name) == 0;
	}
	if (strchr(name, '*') != NULL) {
		/* a wildcard certificate names no one host */
		return false;
	}
	if (strcmp(pattern, "*") == 0) {
		return true;
	}
	if (tsgate_name_dns_pattern_error(pattern) != NULL) {
		return false;
	}
	pdot = strchr(pattern, '.');
	ndot = strchr(name, '.');
	if (ndot == NULL || strcasecmp(pdot, ndot) != 0) {
		return false;
	}
	/*
	 * A partial wildcard must not reach into an IDN A-label: "x*"
	 * matching "xn--..." would match names the operator cannot read
	 * (RFC 6125 6.4.3, point 3).
	 */
	if (pdot - pattern > 1 && strncasecmp(name, "xn--", 4) == 0) {
		return false;
	}
	return glob_match(pattern, pdot, name, ndot, true, ".");
}

/* email addresses */

bool tsgate_name_email_match(const char *pattern, const char *address)
{
	if (pattern == NULL || address == NULL) {
		return false;
	}
	return glob_match(pattern, pattern + strlen(pattern), address,
			  address + strlen(address), false, "@");
}

/* URIs */

bool tsgate_name_uri_match(const char *pattern, const char *uri)
{
	if (pattern == NULL || uri == NULL) {
		return false;
	}
	return glob_match(pattern, pattern + strlen(pattern), uri,
			  uri + strlen(uri), false, "/?#");
}

/* Kerberos principals */

bool tsgate_name_principal_match(const char *pattern, const char *principal)
{
	if (pattern == NULL || principal == NULL) {
		return false;
	}
	return glob_match(pattern, pattern + strlen(pattern), principal,
			  principal + strlen(principal), false, "/@");
}

/* IP addresses */

bool tsgate_name_ip_match(const char *pattern, const char *address)
{
	if (pattern == NULL || address == NULL) {
		return false;
	}
	return glob_match(pattern, pattern + strlen(pattern), address,
			  address + strlen(address), true, ".:");
}

/* subject DNs */

struct dn_ava {
	const char *type;
	char *value; /* a pattern's: glob form, literal '*' and '\' escaped */
	size_t value_len;
	bool hex; /* "#04..." (BER, not a string): no '*' matches it */
};

struct dn_rdn {
	struct dn_ava *avas;
	size_t num;
};

struct dn {
	struct dn_rdn *rdns;
	size_t num;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

static bool dn_append(char **buf, size_t *len, char c)
{
	char *b = talloc_realloc(NULL, *buf, char, *len + 2);

	if (b == NULL) {
		return false;
	}
	b[(*len)++] = c;
	b[*len] = '\0';
	*buf = b;
	return true;
}

/*
 * Parse an RFC 4514 string. With is_pattern, an unescaped '*' stays a
 * wildcard and an escaped '*' or '\' becomes "\*" / "\\" (glob form);
 * else values are plain bytes and a NUL in one is an error (the subject
 * would read differently to C string functions).
 */
static const char *dn_parse(TALLOC_CTX *mem_ctx,
			    const char *s,
			    bool is_pattern,
			    struct dn *out)
{
	struct dn_rdn *rdn = NULL;

	out->rdns = NULL;
	out->num = 0;
	if (*s == '\0') {
		return "a DN is empty";
	}
	for (;;) {
		struct dn_ava *ava;
		const char *t;
		char *value = talloc_strdup(mem_ctx, "");
		size_t vlen = 0;

		if (value == NULL) {
			return "out of memory";
		}
		if (rdn == NULL) {
			struct dn_rdn *r = talloc_realloc(
			    mem_ctx, out->rdns, struct dn_rdn, out->num + 1);

			if (r == NULL) {
				return "out of memory";
			}
			out->rdns = r;
			rdn = &r[out->num++];
			rdn->avas = NULL;
			rdn->num = 0;
		}
		while (*s == ' ') {
			s++;
		}
		for (t = s; *t != '=' && *t != '\0'; t++) {
			char c = ascii_lower(*t);

			if (!((c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '-')) {
				return "an attribute type is not a name or "
				       "an OID (a '*' may only stand in a "
				       "value)";
			}
		}
		if (*t != '=' || t == s) {
			return "an RDN is not TYPE=VALUE";
		}
		ava = talloc_realloc(mem_ctx, rdn->avas, struct dn_ava,
				     rdn->num + 1);
		if (ava == NULL) {
			return "out of memory";
		}
		rdn->avas = ava;
		ava = &ava[rdn->num++];
		ava->type = talloc_strndup(mem_ctx, s, t - s);
		if (ava->type == NULL) {
			return "out of memory";
		}
		s = t + 1;
		ava->hex = *s == '#';
		while (*s != '\0' && *s != ',' && *s != '+') {
			char c = *s++;
			bool escaped = false;

			if (c == '\\') {
				int hi = hexval(s[0]);
				int lo = hi >= 0 ? hexval(s[1]) : -1;

				if (hi >= 0 && lo >= 0) {
					c = (char)(hi * 16 + lo);
					s += 2;
				} else if (*s != '\0' && strchr(",+\"\\<>;=# *",
								*s) != NULL) {
					c = *s++;
				} else {
					return "a value has a bad '\\' escape";
				}
				escaped = true;
			}
			if (c == '\0') {
				return "a value holds a NUL byte";
			}
			if (is_pattern && escaped && (c == '*' || c == '\\') &&
			    !dn_append(&value, &vlen, '\\')) {
				return "out of memory";
			}
			if (is_pattern && !escaped && c == '\\') {
				return "a value has a bad '\\' escape";
			}
			if (!dn_append(&value, &vlen, c)) {
				return "out of memory";
			}
		}
		ava->value = talloc_steal(mem_ctx, value);
		ava->value_len = vlen;
		if (*s == '\0') {
			return NULL;
		}
		if (*s == ',') {
			rdn = NULL;
		}
		s++;
		if (*s == '\0') {
			return "a DN ends with a separator";
		}
	}
}

const char *tsgate_name_dn_pattern_error(TALLOC_CTX *mem_ctx,
					 const char *pattern)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	struct dn dn;
	const char *err;
	const char *msg = NULL;

	if (tmp == NULL) {
		return "out of memory";
	}
	err = dn_parse(tmp, pattern, true, &dn);
	if (err != NULL) {
		msg = talloc_strdup(mem_ctx, err);
		if (msg == NULL) {
			msg = "out of memory";
		}
	}
	talloc_free(tmp);
	return msg;
}

bool tsgate_name_dn_match(const char *pattern, const char *subject)
{
	TALLOC_CTX *tmp;
	struct dn p, s;
	bool ok = false;
	size_t i, j;

	if (pattern == NULL || subject == NULL) {
		return false;
	}
	tmp = talloc_new(NULL);
	if (tmp == NULL || dn_parse(tmp, pattern, true, &p) != NULL ||
	    dn_parse(tmp, subject, false, &s) != NULL || p.num != s.num) {
		goto out;
	}
	for (i = 0; i < p.num; i++) {
		const struct dn_rdn *pr = &p.rdns[i];
		const struct dn_rdn *sr = &s.rdns[i];

		if (pr->num != sr->num) {
			goto out;
		}
		for (j = 0; j < pr->num; j++) {
			const struct dn_ava *pa = &pr->avas[j];
			const struct dn_ava *sa = &sr->avas[j];

			/*
			 * A '*' matches neither an empty value (that names no
			 * one: the CN handed on would be none) nor one that is
			 * not a string.
			 */
			if (strcasecmp(pa->type, sa->type) != 0 ||
			    ((sa->value_len == 0 || sa->hex) &&
			     strchr(pa->value, '*') != NULL) ||
			    !glob_match(pa->value, pa->value + pa->value_len,
					sa->value, sa->value + sa->value_len,
					false, "")) {
				goto out;
			}
		}
	}
	ok = true;
out:
	talloc_free(tmp);
	return ok;
}
