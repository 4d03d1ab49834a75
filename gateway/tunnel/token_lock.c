/* SPDX-License-Identifier: MIT */
/*
 * One tsgate process at a time opens a PKCS#11 token. SoftHSM2's file
 * store, the token most deployments try first, races when processes read
 * it at once: three processes looking up one key together missed it in 8
 * of 45 tries here, so a worker failed to start now and then. The
 * supervisor makes the lock file before its workers fork; each process
 * takes it with a POSIX record lock, which belongs to the process (a
 * fork does not share it) and goes away if the process dies holding it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config_tunnels.h"

static int token_lock_fd = -1;

int tsgate_token_lock_setup(void)
{
	if (token_lock_fd != -1) {
		return 0;
	}
	token_lock_fd = memfd_create("tsgate-token-lock", MFD_CLOEXEC);
	return token_lock_fd == -1 ? errno : 0;
}

static void token_lock_op(short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	if (token_lock_fd == -1) {
		return;
	}
	while (fcntl(token_lock_fd, F_SETLKW, &fl) == -1 && errno == EINTR) {
	}
}

void tsgate_token_lock(void)
{
	token_lock_op(F_WRLCK);
}

void tsgate_token_unlock(void)
{
	token_lock_op(F_UNLCK);
}
