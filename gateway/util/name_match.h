/* SPDX-License-Identifier: MIT */
/*
 * Allow-list patterns for names: DNS names (sni, client_san "DNS:"),
 * email, URI and IP SANs, Kerberos principals and subject DNs
 * (client_subject). A pattern must mean what an operator reads, so a '*'
 * never crosses the boundary of the part it is written in: one DNS label,
 * one RDN attribute value, the local part of an email address, one URI
 * path segment, one IP octet or group, one principal component.
 */
#ifndef TSGATE_NAME_MATCH_H
#define TSGATE_NAME_MATCH_H

#include <stdbool.h>
#include <talloc.h>

/**
 * @brief Whether a DNS name matches a DNS pattern (RFC 6125 6.4.3).
 *
 * ASCII case is ignored. A pattern "*" alone matches any name. Else a '*'
 * may only stand in the leftmost label: "*.example.com" matches exactly
 * one whole, non-empty label ("a.example.com", not "example.com" nor
 * "a.b.example.com"); "app-*.example.com" matches a leftmost label that
 * starts with "app-" (not an IDN A-label "xn--..."). A name with an
 * empty label or a '*' of its own (a wildcard certificate) matches no
 * pattern with a '*'.
 */
bool tsgate_name_dns_match(const char *pattern, const char *name);

/**
 * @brief Why a DNS pattern is not one, or NULL.
 */
const char *tsgate_name_dns_pattern_error(const char *pattern);

/**
 * @brief Whether an email address matches a pattern: exact, and a '*'
 *        does not match an '@' ("*@example.com" is one local part).
 */
bool tsgate_name_email_match(const char *pattern, const char *address);

/**
 * @brief Whether a URI matches a pattern: exact, and a '*' matches within
 *        one path segment ('/', '?' and '#' end it): a pattern ending
 *        in "/prod/" and a '*' is not ".../prod/x/admin" nor
 *        ".../prod/../admin".
 */
bool tsgate_name_uri_match(const char *pattern, const char *uri);

/**
 * @brief Whether a Kerberos principal (as gss_display_name shows it,
 *        "alice@EXAMPLE.COM", "HTTP/gw.example.com@EXAMPLE.COM") matches a
 *        pattern: exact and case-sensitive, and a '*' matches within one
 *        name component or the realm: '/' and '@' end it, so
 *        "*@EXAMPLE.COM" is any one-component (user) principal of that
 *        realm, never "alice/admin@EXAMPLE.COM" nor
 *        "host/evil.example.com@EXAMPLE.COM".
 */
bool tsgate_name_principal_match(const char *pattern, const char *principal);

/**
 * @brief Whether an IP address SAN (canonical text, "10.0.0.7",
 *        "2001:db8::1") matches a pattern: exact, a '*' matches within one
 *        IPv4 octet or IPv6 group ('.' and ':' end it).
 */
bool tsgate_name_ip_match(const char *pattern, const char *address);

/**
 * @brief Whether a subject DN (RFC 4514, as GnuTLS prints it) matches a
 *        DN pattern.
 *
 * Both are parsed into their RDN sequence (escapes "\," "\=" "\2C",
 * multi-valued RDNs joined by '+'), so "O=CN\=root" is one O attribute
 * and never a CN. They match when they have the same number of RDNs, each
 * RDN the same attributes in the same order, types equal ignoring ASCII
 * case, and each value matches exactly, where an unescaped '*' in the
 * pattern's value matches any run of characters of that one value ("\2A"
 * is a literal '*'). A subject that does not parse, or holds a NUL,
 * matches nothing.
 */
bool tsgate_name_dn_match(const char *pattern, const char *subject);

/**
 * @brief Why a DN pattern is not one, or NULL (message on mem_ctx).
 */
const char *tsgate_name_dn_pattern_error(TALLOC_CTX *mem_ctx,
					 const char *pattern);

#endif /* TSGATE_NAME_MATCH_H */
