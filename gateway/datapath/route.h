/* SPDX-License-Identifier: MIT */
/*
 * Route selection: the first route of a listener whose match holds for
 * a connection.
 */
#ifndef TSGATE_ROUTE_H
#define TSGATE_ROUTE_H

#include <stdbool.h>

#include "config.h"
#include "identity.h"

/**
 * @brief Whether every key given in m holds for the connection.
 *
 * A key given as a list holds when any value matches. A key the
 * connection has no value for (no SNI sent, no verified client
 * certificate, no Kerberos principal) never holds, not even for "*":
 * client_subject and client_san only look at a certificate that
 * verified (with verify_client: optional an unverified one is ignored). Case:
 * sni and DNS SANs ignore case; alpn, client_subject, principal and the other
 * SAN types compare exactly. A match without keys holds for everything.
 */
bool tsgate_route_matches(const struct tsgate_config_match *m,
			  const struct tsgate_peer_info *info);

/**
 * @brief The first route of the listener that matches, or NULL.
 */
const struct tsgate_config_route *tsgate_route_select(
    const struct tsgate_config_listener *listener,
    const struct tsgate_peer_info *info);

#endif /* TSGATE_ROUTE_H */
