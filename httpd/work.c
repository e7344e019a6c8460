/* work: a worker thread with a queue of jobs in and a list of jobs out
 * (work.h). The lock guards both lists and the stop flag; a job itself is
 * the thread's alone from work_submit until work_done hands it back. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "httpd.h"
#include "work.h"

struct work {
	struct httpd *h;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	/* FIFO lists: the thread takes from todo's head, appends to done. */
	struct work_job *todo, **todo_tail;
	struct work_job *done, **done_tail;
};

static void *
work_main(void *arg)
{
	struct work *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct work_job *j;

		while (!w->stop && w->todo == NULL)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		j = w->todo;
		w->todo = j->next;
		if (w->todo == NULL)
			w->todo_tail = &w->todo;
		pthread_mutex_unlock(&w->lock);
		j->run(j);
		pthread_mutex_lock(&w->lock);
		j->next = NULL;
		*w->done_tail = j;
		w->done_tail = &j->next;
		hs_wake(w->h);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct work *
work_new(struct httpd *h)
{
	struct work *w = calloc(1, sizeof(*w));
	int r;

	if (w == NULL)
		return NULL;
	w->h = h;
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	r = pthread_create(&w->thread, NULL, work_main, w);
	if (r != 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		free(w);
		errno = r;
		return NULL;
	}
	return w;
}

static void
work_free_list(struct work_job *j, work_free_fn free_job)
{
	while (j != NULL) {
		struct work_job *next = j->next;

		free_job(j);
		j = next;
	}
}

void
work_free(struct work *w, work_free_fn free_job)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	work_free_list(w->todo, free_job);
	work_free_list(w->done, free_job);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

void
work_submit(struct work *w, struct work_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->todo_tail = j;
	w->todo_tail = &j->next;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

struct work_job *
work_done(struct work *w)
{
	struct work_job *list;

	pthread_mutex_lock(&w->lock);
	list = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	pthread_mutex_unlock(&w->lock);
	return list;
}
