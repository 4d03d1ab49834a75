/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: the worker pool for GSSAPI calls that can block.
 *
 * gss_init_sec_context may ask the KDC for a service ticket (seconds on
 * a slow KDC), gss_acquire_cred_from reads keytabs and ccaches, and
 * gss_accept_sec_context writes the replay cache. Run on the event loop,
 * each of them stalls every other connection of the process. A pool runs
 * them in up to max_threads threads and hands the results back to its
 * loop through a pipe.
 *
 * Ownership: a job belongs to exactly one thread at a time. The loop
 * fills it and submits it; from then on only the worker thread that took
 * it touches its contents, until the loop takes it back from the done
 * list (the mutex is the hand-over). GSSAPI handles (context, credential,
 * names) travel inside the job, so one context is never used by two
 * threads at once. Cancelling a job that a thread already runs only marks
 * it: the call finishes in its thread and the loop discards the result.
 *
 * krb5 contexts: MIT's krb5 mechanism makes a krb5_context per GSSAPI
 * call, and this library makes none of its own in a job, so no
 * krb5_context is shared between threads.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "tsgate_export.h"
#include "tstream_gssapi_private.h"

struct tstream_gssapi_pool {
	struct tevent_context *ev;
	struct tevent_fd *fde;
	int pipe_fds[2];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t *threads;
	unsigned max_threads;
	unsigned max_queue;
	/* everything below is guarded by lock */
	unsigned num_threads;
	unsigned idle;
	bool stopping;
	struct tstream_gssapi_job *queue_head, *queue_tail;
	struct tstream_gssapi_job *done_head, *done_tail;
	struct tstream_gssapi_pool_stats stats;
};

static void job_append(struct tstream_gssapi_job **head,
		       struct tstream_gssapi_job **tail,
		       struct tstream_gssapi_job *job)
{
	job->next = NULL;
	if (*tail != NULL) {
		(*tail)->next = job;
	} else {
		*head = job;
	}
	*tail = job;
}

static struct tstream_gssapi_job *job_pop(struct tstream_gssapi_job **head,
					  struct tstream_gssapi_job **tail)
{
	struct tstream_gssapi_job *job = *head;

	if (job != NULL) {
		*head = job->next;
		if (*head == NULL) {
			*tail = NULL;
		}
		job->next = NULL;
	}
	return job;
}

static bool job_remove(struct tstream_gssapi_job **head,
		       struct tstream_gssapi_job **tail,
		       struct tstream_gssapi_job *job)
{
	struct tstream_gssapi_job *prev = NULL, *j;

	for (j = *head; j != NULL; prev = j, j = j->next) {
		if (j != job) {
			continue;
		}
		if (prev != NULL) {
			prev->next = j->next;
		} else {
			*head = j->next;
		}
		if (*tail == j) {
			*tail = prev;
		}
		j->next = NULL;
		return true;
	}
	return false;
}

static void *pool_thread(void *arg)
{
	struct tstream_gssapi_pool *pool = arg;
	struct tstream_gssapi_job *job;
	bool wake;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->queue_head == NULL && !pool->stopping) {
			pool->idle++;
			pthread_cond_wait(&pool->cond, &pool->lock);
			pool->idle--;
		}
		if (pool->stopping) {
			break;
		}
		job = job_pop(&pool->queue_head, &pool->queue_tail);
		pool->stats.queued--;
		pool->stats.running++;
		if (pool->stats.running > pool->stats.max_running) {
			pool->stats.max_running = pool->stats.running;
		}
		job->state = TSTREAM_GSSAPI_JOB_RUNNING;
		pthread_mutex_unlock(&pool->lock);

		job->work(job);

		pthread_mutex_lock(&pool->lock);
		pool->stats.running--;
		job->state = TSTREAM_GSSAPI_JOB_DONE;
		wake = pool->done_head == NULL;
		job_append(&pool->done_head, &pool->done_tail, job);
		if (wake) {
			/* a full pipe already has a byte waiting: fine */
			ssize_t n = write(pool->pipe_fds[1], "", 1);

			(void)n;
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* The loop's side: hand finished jobs back, one at a time. */
static void pool_readable(struct tevent_context *ev,
			  struct tevent_fd *fde,
			  uint16_t flags,
			  void *private_data)
{
	struct tstream_gssapi_pool *pool = private_data;
	struct tstream_gssapi_job *job;
	char buf[64];

	while (read(pool->pipe_fds[0], buf, sizeof(buf)) > 0) {
	}
	/*
	 * One job per lock: a done callback may cancel or submit other
	 * jobs. It must not free the pool (documented).
	 */
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		job = job_pop(&pool->done_head, &pool->done_tail);
		if (job != NULL) {
			job->state = TSTREAM_GSSAPI_JOB_IDLE;
			if (job->cancelled) {
				pool->stats.dropped++;
			} else {
				pool->stats.completed++;
			}
		}
		pthread_mutex_unlock(&pool->lock);
		if (job == NULL) {
			return;
		}
		if (job->cancelled) {
			job->discard(job);
		} else {
			job->done(job);
		}
	}
}

/* Start one more thread if every thread is busy and the cap allows. */
static int pool_grow(struct tstream_gssapi_pool *pool)
{
	sigset_t all, old;
	int ret;

	if (pool->idle > 0 || pool->num_threads >= pool->max_threads) {
		return 0;
	}
	/* signals belong to the loop's thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&pool->threads[pool->num_threads], NULL,
			     pool_thread, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		return ret;
	}
	pool->num_threads++;
	pool->stats.threads = pool->num_threads;
	return 0;
}

int tstream_gssapi_pool_submit(struct tstream_gssapi_pool *pool,
			       struct tstream_gssapi_job *job)
{
	int ret;

	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		pthread_mutex_unlock(&pool->lock);
		return ECANCELED;
	}
	if (pool->stats.queued >= pool->max_queue) {
		pool->stats.refused++;
		pthread_mutex_unlock(&pool->lock);
		return EAGAIN;
	}
	ret = pool_grow(pool);
	if (ret != 0 && pool->num_threads == 0) {
		pool->stats.refused++;
		pthread_mutex_unlock(&pool->lock);
		return ret;
	}
	job->cancelled = false;
	job->state = TSTREAM_GSSAPI_JOB_QUEUED;
	job->pool = pool;
	job_append(&pool->queue_head, &pool->queue_tail, job);
	pool->stats.queued++;
	if (pool->stats.queued > pool->stats.max_queued) {
		pool->stats.max_queued = pool->stats.queued;
	}
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

void tstream_gssapi_pool_cancel(struct tstream_gssapi_job *job)
{
	struct tstream_gssapi_pool *pool = job->pool;
	bool unqueued = false;

	if (pool == NULL) {
		/* never submitted, or its pool is gone */
		job->discard(job);
		return;
	}
	pthread_mutex_lock(&pool->lock);
	if (job->state == TSTREAM_GSSAPI_JOB_QUEUED) {
		unqueued =
		    job_remove(&pool->queue_head, &pool->queue_tail, job);
		if (unqueued) {
			pool->stats.queued--;
			pool->stats.dropped++;
			job->state = TSTREAM_GSSAPI_JOB_IDLE;
		}
	} else if (job->state == TSTREAM_GSSAPI_JOB_DONE) {
		unqueued = job_remove(&pool->done_head, &pool->done_tail, job);
		if (unqueued) {
			pool->stats.dropped++;
			job->state = TSTREAM_GSSAPI_JOB_IDLE;
		}
	}
	if (!unqueued) {
		/* a thread runs it: the loop discards it when it is done */
		job->cancelled = true;
	}
	pthread_mutex_unlock(&pool->lock);
	if (unqueued) {
		job->discard(job);
	}
}

bool tstream_gssapi_pool_usable(struct tstream_gssapi_pool *pool,
				struct tevent_context *ev)
{
	return pool != NULL && pool->ev == ev;
}

/*
 * Stop: running calls finish in their threads (joined here), then every
 * job still held is discarded; a job whose owner still waits for it is
 * orphaned (its owner's cancel then only discards it).
 */
static int pool_destructor(struct tstream_gssapi_pool *pool)
{
	struct tstream_gssapi_job *job;

	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->num_threads; i++) {
		pthread_join(pool->threads[i], NULL);
	}
	while ((job = job_pop(&pool->queue_head, &pool->queue_tail)) != NULL ||
	       (job = job_pop(&pool->done_head, &pool->done_tail)) != NULL) {
		job->pool = NULL;
		job->state = TSTREAM_GSSAPI_JOB_IDLE;
		if (job->cancelled) {
			job->discard(job);
		}
	}
	TALLOC_FREE(pool->fde);
	close(pool->pipe_fds[0]);
	close(pool->pipe_fds[1]);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	return 0;
}

_PUBLIC_ int tstream_gssapi_pool_create(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					unsigned max_threads,
					unsigned max_queue,
					struct tstream_gssapi_pool **_pool)
{
	struct tstream_gssapi_pool *pool;

	if (ev == NULL || _pool == NULL || max_threads == 0 ||
	    max_threads > TSTREAM_GSSAPI_POOL_MAX_THREADS || max_queue == 0) {
		return EINVAL;
	}
	pool = talloc_zero(mem_ctx, struct tstream_gssapi_pool);
	if (pool == NULL) {
		return ENOMEM;
	}
	pool->threads = talloc_zero_array(pool, pthread_t, max_threads);
	if (pool->threads == NULL) {
		talloc_free(pool);
		return ENOMEM;
	}
	if (pipe2(pool->pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
		int err = errno;

		talloc_free(pool);
		return err;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->ev = ev;
	pool->max_threads = max_threads;
	pool->max_queue = max_queue;
	talloc_set_destructor(pool, pool_destructor);
	pool->fde = tevent_add_fd(ev, pool, pool->pipe_fds[0], TEVENT_FD_READ,
				  pool_readable, pool);
	if (pool->fde == NULL) {
		talloc_free(pool);
		return ENOMEM;
	}
	*_pool = pool;
	return 0;
}

_PUBLIC_ void tstream_gssapi_pool_get_stats(
    struct tstream_gssapi_pool *pool, struct tstream_gssapi_pool_stats *stats)
{
	pthread_mutex_lock(&pool->lock);
	*stats = pool->stats;
	pthread_mutex_unlock(&pool->lock);
}

_PUBLIC_ void tstream_gssapi_params_set_pool(
    struct tstream_gssapi_params *params, struct tstream_gssapi_pool *pool)
{
	params->pool = pool;
}
