/* SPDX-License-Identifier: MIT */
/*
 * Checks across fields, on the walked config: what no single key can be
 * judged on alone (names and addresses unique, routes that can never
 * match, plaintext on a public address, key permissions against the user
 * we run as...). Each is reported where the walk recorded the value at
 * fault; the structs may be partial where the walk found errors.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"

/*
 * Private keys and keytabs, as ssh and PostgreSQL judge them: owned by
 * root, by the user we run as or by the one we drop to; no access for
 * others; group read only when root owns the file (a root-owned 0640 key
 * with an ssl-cert style group, or a Kubernetes secret with fsGroup and
 * defaultMode 0440). allow_insecure_key_permissions: true turns this off.
 */
static void cfg_check_secrets(struct cfg_parser *p)
{
	const char *fix = "; chmod 0600 it (0640 or 0440 if root owns it), "
			  "or set allow_insecure_key_permissions: true";
	uid_t me = geteuid();
	size_t i;

	if (!(p->flags & TSGATE_CONFIG_CHECK_CREDENTIALS) ||
	    p->cfg->allow_insecure_key_permissions) {
		return;
	}
	for (i = 0; i < p->num_secrets; i++) {
		const struct cfg_secret *s = &p->secrets[i];
		unsigned mode = (unsigned)(s->mode & 07777);

		if (s->uid != 0 && s->uid != me &&
		    (p->cfg->user == NULL || s->uid != p->cfg->uid)) {
			cfg_error_at(
			    p, s->at.mark,
			    "'%s': '%s' is owned by uid %u, not by root "
			    "or the user tsgate runs as; chown it, or "
			    "set allow_insecure_key_permissions: true",
			    s->what, s->at.text, (unsigned)s->uid);
		} else if ((mode & S_IRWXO) != 0) {
			cfg_error_at(p, s->at.mark,
				     "'%s': '%s' is accessible by others (mode "
				     "%04o)%s",
				     s->what, s->at.text, mode, fix);
		} else if ((mode & S_IRWXG) != 0 &&
			   (s->uid != 0 || (mode & S_IRWXG) != S_IRGRP)) {
			cfg_error_at(p, s->at.mark,
				     "'%s': '%s' is accessible by its group "
				     "(mode %04o)%s",
				     s->what, s->at.text, mode, fix);
		}
	}
}

static bool cfg_same_addr(const struct tsgate_config_addr *a,
			  const struct tsgate_config_addr *b)
{
	if (a->kind != b->kind) {
		return false;
	}
	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return a->path != NULL && b->path != NULL &&
		       strcmp(a->path, b->path) == 0;
	}
	return a->ip != NULL && b->ip != NULL && a->port == b->port &&
	       strcmp(a->ip, b->ip) == 0;
}

/* Whether every address a TCP listen address resolved to is loopback. */
static bool cfg_addr_loopback(const struct tsgate_config_addr *a)
{
	struct in_addr in4;
	struct in6_addr in6;
	size_t i;

	for (i = 0; i < a->num_ips; i++) {
		if (inet_pton(AF_INET, a->ips[i], &in4) == 1) {
			if ((ntohl(in4.s_addr) >> 24) != 127) {
				return false;
			}
		} else if (inet_pton(AF_INET6, a->ips[i], &in6) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&in6) &&
			    !(IN6_IS_ADDR_V4MAPPED(&in6) &&
			      in6.s6_addr[12] == 127)) {
				return false;
			}
		} else {
			return false;
		}
	}
	return a->num_ips > 0;
}

/*
 * Nothing forwards plaintext from the network by accident: 'accept:
 * plain' on an address other than loopback needs 'allow_plain_public:
 * true' (an image or a copied example must not expose an application
 * without TLS because a real config was forgotten).
 */
static void cfg_check_plain_public(struct cfg_parser *p,
				   const struct tsgate_config_listener *l,
				   const struct cfg_listener_marks *lm)
{
	if (l->accept != TSGATE_CONFIG_ACCEPT_PLAIN) {
		if (lm->allow_plain_public.line != 0) {
			cfg_error_at(
			    p, lm->allow_plain_public,
			    "'allow_plain_public' is only used with "
			    "'accept: plain' (listener '%s' accepts %s)",
			    l->name, tsgate_config_accept_name(l->accept));
		}
		return;
	}
	if (lm->accept.line == 0 || l->allow_plain_public ||
	    l->listen.kind != TSGATE_CONFIG_ADDR_TCP || l->listen.ip == NULL ||
	    cfg_addr_loopback(&l->listen)) {
		return;
	}
	cfg_error_at(
	    p, lm->accept,
	    "'accept: plain' on %s forwards plaintext from the network: "
	    "listen on a loopback address or a unix socket, use "
	    "'accept: tls' or 'gssapi', or set 'allow_plain_public: "
	    "true' in listener '%s'",
	    l->listen.text != NULL ? l->listen.text : l->listen.ip, l->name);
}

/* Smallest PDU each framing can carry: its header. */
static uint64_t cfg_framing_header(enum tsgate_config_framing f)
{
	switch (f) {
	case TSGATE_CONFIG_FRAMING_LENGTH32:
	case TSGATE_CONFIG_FRAMING_NBT:
		return 4;
	case TSGATE_CONFIG_FRAMING_NCACN:
		return 16;
	case TSGATE_CONFIG_FRAMING_RAW:
		break;
	}
	return 1;
}

/* Match keys that can never hold on this listener. */
static void cfg_route_reachable(struct cfg_parser *p,
				const struct tsgate_config_listener *l,
				const struct tsgate_config_route *r,
				const struct cfg_route_marks *rm)
{
	size_t i;

	for (i = 0; i < CFG_M_COUNT; i++) {
		const char *why = NULL;

		if (rm->match[i].line == 0) {
			continue;
		}
		switch (l->accept) {
		case TSGATE_CONFIG_ACCEPT_PLAIN:
			why = "it accepts plain connections, which carry no "
			      "TLS or GSSAPI identity";
			break;
		case TSGATE_CONFIG_ACCEPT_GSSAPI:
			if (i != CFG_M_PRINCIPAL) {
				why = "it accepts gssapi, not tls";
			}
			break;
		case TSGATE_CONFIG_ACCEPT_TLS_GSSAPI:
			/* the principal and the certificate both count */
			if (i == CFG_M_PRINCIPAL) {
				break;
			}
			/* fall through */
		case TSGATE_CONFIG_ACCEPT_TLS:
			if (i == CFG_M_PRINCIPAL) {
				why = "it accepts tls; principals come from "
				      "gssapi";
			} else if ((i == CFG_M_SUBJECT || i == CFG_M_SAN) &&
				   l->tls != NULL &&
				   l->tls->verify_client ==
				       TSGATE_CONFIG_VERIFY_NONE) {
				why = "it asks for no client certificate "
				      "(verify_client: none)";
			} else if (i == CFG_M_ALPN && l->tls != NULL &&
				   l->tls->num_alpn == 0) {
				why = "it offers no ALPN protocols (tls.alpn)";
			}
			break;
		}
		if (why != NULL) {
			cfg_error_at(p, rm->match[i],
				     "route '%s' can never match: '%s' on "
				     "listener '%s', but %s",
				     r->name, cfg_match_keys[i].name, l->name,
				     why);
			continue;
		}
		if (i == CFG_M_ALPN && l->tls != NULL) {
			size_t a, b;

			for (a = 0; a < r->match.num_alpn; a++) {
				for (b = 0; b < l->tls->num_alpn; b++) {
					if (tsgate_config_wildcard_match(
						r->match.alpn[a],
						l->tls->alpn[b], false)) {
						break;
					}
				}
				if (b < l->tls->num_alpn) {
					break;
				}
			}
			if (a == r->match.num_alpn) {
				cfg_error_at(p, rm->match[i],
					     "route '%s' can never match: "
					     "listener '%s' offers none of "
					     "these ALPN protocols",
					     r->name, l->name);
			}
		}
	}
}

static void cfg_validate_routes(struct cfg_parser *p,
				const struct tsgate_config_listener *l,
				const struct cfg_listener_marks *lm)
{
	size_t idx, i;

	for (idx = 0; idx < l->num_routes; idx++) {
		const struct tsgate_config_route *r = &l->routes[idx];
		const struct cfg_route_marks *rm = &lm->routes[idx];
		uint64_t header = cfg_framing_header(r->framing);

		if (!rm->walked) {
			continue;
		}
		if (rm->max_pdu.text != NULL && r->max_pdu != 0 &&
		    r->max_pdu < header) {
			cfg_error_at(p, rm->max_pdu.mark,
				     "'max_pdu': %s is smaller than the %s "
				     "header (%llu bytes)",
				     rm->max_pdu.text,
				     tsgate_config_framing_name(r->framing),
				     (unsigned long long)header);
		}
		/* Routes are tried in order: an earlier catch-all hides
		 * this one. */
		for (i = 0; i < idx; i++) {
			if (!l->routes[i].match.has_match) {
				cfg_error_at(p, r->mark,
					     "route '%s' can never match: "
					     "route '%s' (line %u) before it "
					     "matches every connection",
					     r->name, l->routes[i].name,
					     l->routes[i].mark.line);
				break;
			}
		}
		if (lm->accept_known) {
			cfg_route_reachable(p, l, r, rm);
		}
	}
}

static void cfg_validate_listener(struct cfg_parser *p, size_t idx)
{
	const struct tsgate_config *cfg = p->cfg;
	const struct tsgate_config_listener *l = &cfg->listeners[idx];
	const struct cfg_listener_marks *lm = &p->listeners[idx];
	size_t i;

	/* l->name is NULL when copying it failed (p->oom) */
	if (lm->name.line != 0 && l->name != NULL) {
		for (i = 0; i < idx; i++) {
			if (cfg->listeners[i].name != NULL &&
			    strcmp(cfg->listeners[i].name, l->name) == 0) {
				cfg_error_at(p, lm->name,
					     "duplicate listener name '%s' "
					     "(first at line %u)",
					     l->name,
					     cfg->listeners[i].mark.line);
				break;
			}
		}
	}
	if (lm->listen.line != 0) {
		for (i = 0; i < idx; i++) {
			if (cfg_same_addr(&cfg->listeners[i].listen,
					  &l->listen)) {
				cfg_error_at(p, lm->listen,
					     "listener '%s' listens on the "
					     "same address as listener '%s'",
					     l->name, cfg->listeners[i].name);
				break;
			}
		}
	}
	if (lm->accept_known) {
		cfg_check_plain_public(p, l, lm);
	}
	if (lm->routes != NULL) {
		cfg_validate_routes(p, l, lm);
	}
}

/*
 * A program backend never runs as root: the daemon started as root
 * drops to 'user' before any connection, so it needs one (and not root).
 */
static void cfg_check_exec_user(struct cfg_parser *p)
{
	const struct tsgate_config *cfg = p->cfg;
	bool root = cfg->user != NULL ? cfg->uid == 0 : geteuid() == 0;

	if (!root) {
		return;
	}
	for (size_t i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->num_routes; j++) {
			if (l->routes[j].exec == NULL) {
				continue;
			}
			cfg_error_at(p, l->routes[j].backend.mark,
				     "route '%s': backend '%s' would run as "
				     "root: set 'user' to a user that is not "
				     "root (programs never run as root)",
				     l->routes[j].name,
				     l->routes[j].backend.text);
		}
	}
}

void cfg_validate(struct cfg_parser *p)
{
	const struct tsgate_config *cfg = p->cfg;
	size_t i;

	for (i = 0; i < cfg->num_listeners; i++) {
		cfg_validate_listener(p, i);
	}
	if (cfg->group != NULL && cfg->user == NULL) {
		cfg_error_at(p, p->group_at,
			     "'group' needs 'user' (the user to drop to)");
	}
	cfg_check_secrets(p);
	cfg_check_exec_user(p);
	if (cfg->metrics_listen != NULL) {
		for (i = 0; i < cfg->num_listeners; i++) {
			if (cfg_same_addr(cfg->metrics_listen,
					  &cfg->listeners[i].listen)) {
				cfg_error_at(p, p->metrics_at,
					     "metrics listen on the same "
					     "address as listener '%s'",
					     cfg->listeners[i].name);
			}
		}
	}
}
