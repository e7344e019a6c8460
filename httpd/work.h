/* work: one worker thread and its queue, for what must not run in the loop
 * thread: export plans (xplan.c) and the audit log's check (aread.c) each
 * have their own. A job goes to the thread with work_submit and comes back,
 * in the loop thread, from work_done after the thread woke the loop
 * (hs_wake). While the thread runs a job, only the thread touches it. */
#ifndef VIGIL_HTTPD_WORK_H
#define VIGIL_HTTPD_WORK_H

struct httpd;

/* Embedded first in a job of one's own. */
struct work_job {
	struct work_job *next;
	void (*run)(struct work_job *j); /* runs in the worker thread */
};

typedef void (*work_free_fn)(struct work_job *j);

/* Starts the thread; NULL with errno when it could not be started. */
struct work *work_new(struct httpd *h);
/* Stops the thread once its job (if any) is done, then hands every job it
 * still holds (waiting or done and not taken) to free_job. NULL is fine. */
void work_free(struct work *w, work_free_fn free_job);
/* Loop thread: j runs after the jobs submitted before it. */
void work_submit(struct work *w, struct work_job *j);
/* Loop thread: the jobs done since the last call, in the order they ran
 * (linked by next), or NULL. */
struct work_job *work_done(struct work *w);

#endif
