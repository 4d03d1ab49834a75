/* SPDX-License-Identifier: MIT */
/*
 * A tstream over a program's stdin and stdout, two separate socket pairs:
 * reads come from its stdout, writes go to its stdin, and a half-close
 * closes its stdin only. With one socket on both (as knc does) a program
 * that closes its stdout would not be seen to end its output while its
 * stdin stays open.
 */
#ifndef TSGATE_EXEC_STREAM_H
#define TSGATE_EXEC_STREAM_H

#include <stdbool.h>
#include <talloc.h>

struct tstream_context;

/**
 * @brief Make the stream from our ends of the two pairs.
 *
 * @param mem_ctx   Owner.
 * @param stdout_fd Our end of the program's stdout (we read it).
 * @param stdin_fd  Our end of the program's stdin (we write it).
 * @param pstream   The stream; it owns both fds (also on failure they
 *                  are closed).
 * @return 0 or an errno.
 */
int tsgate_exec_stream_new(TALLOC_CTX *mem_ctx,
			   int stdout_fd,
			   int stdin_fd,
			   struct tstream_context **pstream);

/** @brief Data the owner hangs on the stream (NULL until set). */
void *tsgate_exec_stream_data(struct tstream_context *stream);
void tsgate_exec_stream_set_data(struct tstream_context *stream, void *data);

/** @brief Whether stream is one of these. */
bool tsgate_exec_stream_is(struct tstream_context *stream);

#endif
