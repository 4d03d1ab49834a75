/* SPDX-License-Identifier: MIT */
/*
 * Route selection: first match wins.
 */
#include "route.h"
#include "name_match.h"

#include <string.h>
#include <strings.h>

typedef bool (*name_match_fn)(const char *pattern, const char *value);

static bool exact_match(const char *pattern, const char *value)
{
	return tsgate_config_wildcard_match(pattern, value, false);
}

static bool any_matches(const char **patterns,
			size_t n,
			const char *value,
			name_match_fn match)
{
	size_t i;

	if (value == NULL) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (match(patterns[i], value)) {
			return true;
		}
	}
	return false;
}

static const char *san_prefix(enum tsgate_config_san_type type)
{
	switch (type) {
	case TSGATE_CONFIG_SAN_DNS:
		return "DNS:";
	case TSGATE_CONFIG_SAN_IP:
		return "IP:";
	case TSGATE_CONFIG_SAN_URI:
		return "URI:";
	case TSGATE_CONFIG_SAN_EMAIL:
		return "email:";
	}
	return NULL;
}

/* Does one of the peer's SANs ("DNS:x", ...) match one pattern? */
static bool san_matches(const struct tsgate_config_san *pattern,
			const struct tsgate_peer_info *info)
{
	const char *prefix = san_prefix(pattern->type);
	bool ok = false;
	size_t plen;
	size_t i;

	if (prefix == NULL) {
		return false;
	}
	plen = strlen(prefix);
	for (i = 0; i < info->num_client_sans; i++) {
		const char *san = info->client_sans[i];

		if (san == NULL || strncasecmp(san, prefix, plen) != 0) {
			continue;
		}
		switch (pattern->type) {
		case TSGATE_CONFIG_SAN_DNS:
			ok = tsgate_name_dns_match(pattern->value, san + plen);
			break;
		case TSGATE_CONFIG_SAN_EMAIL:
			ok =
			    tsgate_name_email_match(pattern->value, san + plen);
			break;
		case TSGATE_CONFIG_SAN_URI:
			ok = tsgate_name_uri_match(pattern->value, san + plen);
			break;
		case TSGATE_CONFIG_SAN_IP:
			ok = tsgate_name_ip_match(pattern->value, san + plen);
			break;
		}
		if (ok) {
			return true;
		}
	}
	return false;
}

bool tsgate_route_matches(const struct tsgate_config_match *m,
			  const struct tsgate_peer_info *info)
{
	size_t i;
	bool ok, names_ok;

	if (!m->has_match) {
		return true;
	}
	if (m->num_sni > 0 && !any_matches(m->sni, m->num_sni, info->sni,
					   tsgate_name_dns_match)) {
		return false;
	}
	if (m->num_alpn > 0 &&
	    !any_matches(m->alpn, m->num_alpn, info->alpn, exact_match)) {
		return false;
	}
	/*
	 * Certificate names count only once the certificate verified: with
	 * verify_client: optional anyone can present a self-made
	 * "CN=admin". And never when one of its names cannot be a name (a
	 * NUL in a SAN): then none of them is trusted.
	 */
	names_ok = info->cert_verified && info->client_name_error == NULL;
	if (m->num_client_subject > 0) {
		const char *subject = names_ok ? info->client_subject : NULL;

		if (!any_matches(m->client_subject, m->num_client_subject,
				 subject, tsgate_name_dn_match)) {
			return false;
		}
	}
	if (m->num_client_san > 0) {
		ok = false;
		for (i = 0; i < m->num_client_san && !ok; i++) {
			ok = names_ok && san_matches(&m->client_san[i], info);
		}
		if (!ok) {
			return false;
		}
	}
	if (m->num_principal > 0 &&
	    !any_matches(m->principal, m->num_principal,
			 info->gssapi ? info->principal : NULL,
			 tsgate_name_principal_match)) {
		return false;
	}
	return true;
}

const struct tsgate_config_route *tsgate_route_select(
    const struct tsgate_config_listener *listener,
    const struct tsgate_peer_info *info)
{
	size_t i;

	for (i = 0; i < listener->num_routes; i++) {
		if (tsgate_route_matches(&listener->routes[i].match, info)) {
			return &listener->routes[i];
		}
	}
	return NULL;
}
