/* sync: fsync of many fds at once. One fsync of a small file costs a journal
 * commit (about 4-5 ms on this project's test disk); fsyncs issued together
 * from several threads share commits (ext4's jbd2 batches them), which is
 * what lets one archive keep up with 200 sentinels (docs/benchmarks.md).
 * Workers are created once; the writer thread hands them a list and waits. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "archive.h"

#define SYNC_THREADS_MAX 16

struct archive_sync {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	pthread_t threads[SYNC_THREADS_MAX];
	unsigned n_threads;
	const int *fds;
	int *errs;
	size_t n, next, finished;
	uint64_t round;
	bool quit;
};

static void *
sync_main(void *arg)
{
	struct archive_sync *sy = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&sy->mu);
	for (;;) {
		while (!sy->quit && (sy->round == seen || sy->next >= sy->n))
			pthread_cond_wait(&sy->work, &sy->mu);
		if (sy->quit)
			break;
		while (sy->next < sy->n) {
			size_t i = sy->next++;
			int r;

			pthread_mutex_unlock(&sy->mu);
			r = fsync(sy->fds[i]) < 0 ? -errno : 0;
			pthread_mutex_lock(&sy->mu);
			sy->errs[i] = r;
			if (++sy->finished == sy->n)
				pthread_cond_signal(&sy->done);
		}
		seen = sy->round;
	}
	pthread_mutex_unlock(&sy->mu);
	return NULL;
}

struct archive_sync *
archive_sync_new(unsigned threads)
{
	struct archive_sync *sy = calloc(1, sizeof(*sy));

	if (sy == NULL)
		return NULL;
	pthread_mutex_init(&sy->mu, NULL);
	pthread_cond_init(&sy->work, NULL);
	pthread_cond_init(&sy->done, NULL);
	if (threads > SYNC_THREADS_MAX)
		threads = SYNC_THREADS_MAX;
	for (unsigned i = 0; i < threads; i++) {
		int r = pthread_create(&sy->threads[i], NULL, sync_main, sy);

		if (r != 0) {
			archive_sync_free(sy);
			errno = r;
			return NULL;
		}
		sy->n_threads++;
	}
	return sy;
}

void
archive_sync_free(struct archive_sync *sy)
{
	if (sy == NULL)
		return;
	pthread_mutex_lock(&sy->mu);
	sy->quit = true;
	pthread_cond_broadcast(&sy->work);
	pthread_mutex_unlock(&sy->mu);
	for (unsigned i = 0; i < sy->n_threads; i++)
		pthread_join(sy->threads[i], NULL);
	pthread_cond_destroy(&sy->done);
	pthread_cond_destroy(&sy->work);
	pthread_mutex_destroy(&sy->mu);
	free(sy);
}

int
archive_sync_all(struct archive_sync *sy, const int *fds, size_t n, int *ret_err)
{
	int first = 0;

	if (n == 0)
		return 0;
	if (n == 1 || sy->n_threads == 0) {
		for (size_t i = 0; i < n; i++) {
			ret_err[i] = fsync(fds[i]) < 0 ? -errno : 0;
			if (ret_err[i] < 0 && first == 0)
				first = ret_err[i];
		}
		return first;
	}
	pthread_mutex_lock(&sy->mu);
	sy->fds = fds;
	sy->errs = ret_err;
	sy->n = n;
	sy->next = 0;
	sy->finished = 0;
	sy->round++;
	pthread_cond_broadcast(&sy->work);
	while (sy->finished < sy->n)
		pthread_cond_wait(&sy->done, &sy->mu);
	sy->n = 0;
	pthread_mutex_unlock(&sy->mu);
	for (size_t i = 0; i < n; i++) {
		if (ret_err[i] < 0 && first == 0)
			first = ret_err[i];
	}
	return first;
}
