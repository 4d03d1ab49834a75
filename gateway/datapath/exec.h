/* SPDX-License-Identifier: MIT */
/*
 * Program backends (backend: "exec:/path"): one program per connection,
 * the plaintext on its stdin and stdout (exec_stream.h), its stderr in
 * the log line by line, the client's identity in its environment (knc's
 * KNC_* variables and tsgate's TSGATE_* ones) and, when the client
 * delegated, KRB5CCNAME naming a private ccache with the delegated
 * credentials, removed when the connection ends.
 *
 * A process's programs are watched by one struct tsgate_execs: SIGCHLD
 * through tevent_add_signal, a waitpid() for each of its own children
 * only (never waitpid(-1), which could take a worker from the
 * supervisor), an exit line in the log, the per-route count of programs
 * running (max_connections).
 */
#ifndef TSGATE_EXEC_H
#define TSGATE_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"
#include "peer_info.h"

struct tsgate_log;
struct tsgate_relay;
struct tstream_context;
struct tsgate_execs;

/** @brief The programs of this process (one per process). */
struct tsgate_execs *tsgate_execs_new(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tsgate_log *log);

/**
 * @brief Remove the ccaches a process that is gone left behind (crash,
 *        kill -9) in the ccache directories of cfg's exec routes.
 * @return How many were removed.
 */
unsigned tsgate_execs_clean_stale(const struct tsgate_config *cfg);

/** @brief The ccache directory of an exec route (its own or the default). */
const char *tsgate_exec_ccache_dir(TALLOC_CTX *mem_ctx,
				   const struct tsgate_config_route *route);

struct tsgate_exec_spawn {
	const char *listener;
	const struct tsgate_config_route *route;
	uint64_t conn_id;
	const struct tsgate_peer_info *info;
	/* the accepted client stream: delegated credentials come from it */
	struct tstream_context *client;
};

/**
 * @brief Start the route's program for one connection.
 *
 * @param mem_ctx  Owner of the stream (the connection). Freeing the
 *                 stream closes the program's stdin and stdout, removes
 *                 the ccache and, if the program still runs 2 s later,
 *                 sends it SIGTERM (SIGKILL 5 s after that).
 * @param pstream  The program's stdin/stdout as one stream.
 * @param preason  On failure, why (on mem_ctx).
 * @return 0; EAGAIN when the route's max_connections programs run;
 *         another errno (fork, exec set-up, ccache) with *preason.
 */
int tsgate_exec_start(TALLOC_CTX *mem_ctx,
		      struct tsgate_execs *execs,
		      const struct tsgate_exec_spawn *spawn,
		      struct tstream_context **pstream,
		      char **preason);

/**
 * @brief The relay of an exec stream: when the program exits, the relay
 *        ends once the program's output has reached the client (see
 *        tsgate_relay_backend_gone()). NULL before the relay is freed.
 */
void tsgate_exec_set_relay(struct tstream_context *stream,
			   struct tsgate_relay *relay);

/** @brief The program's pid (0 when stream is not an exec stream). */
int tsgate_exec_pid(struct tstream_context *stream);

#endif
