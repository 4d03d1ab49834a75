/* SPDX-License-Identifier: MIT */
/*
 * A listening TCP or unix stream socket: the one way the gateway makes
 * one (connection listeners and the metrics/health HTTP endpoint).
 *
 * A unix socket path is checked whole before anything is touched: a path
 * that does not fit in sockaddr_un is refused (ENAMETOOLONG), never cut
 * short. A socket file left by a crash (nobody accepts on it) is
 * replaced; a live one (EADDRINUSE) or a file that is no socket (EEXIST)
 * is refused. The file is removed when the socket is freed, if it is
 * still the one made here.
 *
 * The socket is a talloc object: freeing it closes the descriptor, so
 * moving it to a new owner (talloc_steal) hands the socket over whole.
 */
#ifndef TSGATE_LISTEN_SOCKET_H
#define TSGATE_LISTEN_SOCKET_H

#include <stdbool.h>
#include <stdint.h>
#include <talloc.h>

struct tsgate_listen_socket;

/* Share the port with other processes (SO_REUSEPORT), for workers. */
#define TSGATE_LISTEN_SOCKET_REUSEPORT 0x1

/**
 * @brief Bind and listen on a TCP address.
 *
 * @param mem_ctx  Owner of the socket.
 * @param ip       A numeric IPv4 or IPv6 address.
 * @param port     The port (0: any free one, see
 *                 tsgate_listen_socket_port()).
 * @param flags    TSGATE_LISTEN_SOCKET_* flags.
 * @param backlog  The listen() backlog.
 * @param pls      The socket, on success.
 * @param pstep    On failure, the call that failed ("socket",
 *                 "SO_REUSEPORT", "bind" ...) for the message; may be NULL.
 * @return 0, or an errno value.
 */
int tsgate_listen_socket_tcp(TALLOC_CTX *mem_ctx,
			     const char *ip,
			     uint16_t port,
			     unsigned flags,
			     int backlog,
			     struct tsgate_listen_socket **pls,
			     const char **pstep);

/**
 * @brief Bind and listen on a unix socket path.
 *
 * @param mem_ctx  Owner of the socket.
 * @param path     The socket file; at most sizeof(sun_path) - 1 bytes.
 * @param backlog  The listen() backlog.
 * @param pls      The socket, on success.
 * @param pstep    As for tsgate_listen_socket_tcp(); may be NULL.
 * @return 0, or an errno value: ENAMETOOLONG for a path that does not fit,
 *         EADDRINUSE when a live socket has the path, EEXIST when the path
 *         is a file that is not a socket.
 */
int tsgate_listen_socket_unix(TALLOC_CTX *mem_ctx,
			      const char *path,
			      int backlog,
			      struct tsgate_listen_socket **pls,
			      const char **pstep);

/** @brief The listening descriptor (non-blocking, close-on-exec). */
int tsgate_listen_socket_fd(const struct tsgate_listen_socket *ls);

/** @brief The bound TCP port (the one picked for port 0); 0 for unix. */
uint16_t tsgate_listen_socket_port(const struct tsgate_listen_socket *ls);

/**
 * @brief TCP options for the connections a TCP listening socket accepts.
 *
 * Linux copies TCP_NODELAY, SO_KEEPALIVE and the keepalive timings of
 * the listening socket to every socket accept() returns: set once here,
 * they cost no system calls per connection.
 *
 * @param ls          A TCP listening socket.
 * @param nodelay     TCP_NODELAY on or off.
 * @param keepalive   SO_KEEPALIVE on or off.
 * @param idle_s      TCP_KEEPIDLE (0: the system's) when keepalive is on.
 * @param interval_s  TCP_KEEPINTVL (0: the system's).
 * @param count       TCP_KEEPCNT (0: the system's).
 * @return 0, or the errno value of the first option that failed.
 */
int tsgate_listen_socket_tcp_options(const struct tsgate_listen_socket *ls,
				     bool nodelay,
				     bool keepalive,
				     unsigned idle_s,
				     unsigned interval_s,
				     unsigned count);

#endif /* TSGATE_LISTEN_SOCKET_H */
