/* audit: the outbox (audit.h). Records wait in arrival order in a singly
 * linked list; an ack takes a prefix of it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "audit.h"
#include "cfg.h"
#include "log.h"
#include "mp.h"
#include "proc.h"

#define AUDIT_RESEND_MS 2000 /* the oldest record waited this long: send again */
#define AUDIT_WINDOW    256  /* records sent and not yet acknowledged, at most */

struct audit_rec {
	struct audit_rec *next;
	uint64_t n;
	int64_t deadline_ms; /* mono: done gets -ETIMEDOUT then; 0: no waiter */
	audit_done_fn done;
	void *ctx;
	size_t len;
	char text[]; /* the record as JSON, NUL-terminated */
};

struct audit {
	char src[48]; /* "<who>.<boot>" */
	audit_send_fn send;
	void *send_ctx;
	struct audit_rec *head, **tail;
	struct audit_rec *unsent; /* first record not sent since the last (re)send */
	uint64_t next_n;
	int64_t sent_ms;   /* mono: when head was last sent */
	int64_t ticked_ms; /* mono: the last audit_tick that looked */
	struct audit_figures fig;
	int64_t warned_ms;
	int64_t refusal_sec; /* mono second of the refusals counted in refusals */
	unsigned refusals;
	uint64_t suppressed; /* refusals not recorded since the last that was */
};

void
audit_src_new(const char *who, char *buf, size_t size)
{
	uint32_t boot;

	/* Unique per process lifetime, so that a restarted stage's n = 1 is new. */
	if (getrandom(&boot, sizeof(boot), 0) != sizeof(boot))
		boot = (uint32_t)proc_now_ms() ^ (uint32_t)getpid() << 16;
	snprintf(buf, size, "%.31s.%08" PRIx32, who, boot);
}

struct audit *
audit_new(const char *who, audit_send_fn send, void *send_ctx)
{
	struct audit *a;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	audit_src_new(who, a->src, sizeof(a->src));
	a->send = send;
	a->send_ctx = send_ctx;
	a->tail = &a->head;
	a->next_n = 1;
	return a;
}

void
audit_free(struct audit *a)
{
	struct audit_rec *r, *next;

	if (a == NULL)
		return;
	if (a->head != NULL)
		log_warn(0, "audit: %" PRIu64 " record%s not confirmed by the writer at exit",
			 a->fig.queued, a->fig.queued == 1 ? " was" : "s were");
	for (r = a->head; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	free(a);
}

json_t *
audit_record_as(const char *action, const char *actor, const char *role, const char *remote)
{
	/* The key order is the record's (docs/audit.md): jansson keeps insertion
	 * order. s? packs null for NULL: the key is there either way. */
	return json_pack("{s:I, s:s?, s:s?, s:s?, s:s}", "time", (json_int_t)proc_now_ms(), "actor",
			 actor, "role", role, "remote", remote, "action", action);
}

json_t *
audit_record(const char *action, const struct tok_info *info, const char *remote)
{
	/* A token the configuration does not know: actor and role null. */
	return audit_record_as(action, info != NULL ? info->name : NULL,
			       info != NULL ? cfg_role_name(info->role) : NULL, remote);
}

void
audit_mask(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach(j, key, v)
		{
			if (strcmp(key, "token") == 0 && json_is_string(v))
				json_object_set_new(j, key, json_string("***"));
			else
				audit_mask(v);
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) audit_mask(v);
	}
}

static int
audit_send_one(struct audit *a, const struct audit_rec *r)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int ret;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	mp_pack_kv_str(&pk, "src", a->src);
	mp_pack_kv_int(&pk, "n", (int64_t)r->n);
	mp_pack_kv_int(&pk, "base", (int64_t)a->head->n);
	mp_pack_kv_str(&pk, "record", r->text);
	ret = a->send(a->send_ctx, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return ret;
}

/* Sends from a->unsent on until the bus refuses one (then later) or the
 * window is full: a writer that is away costs a few packets, not the queue. */
static void
audit_push(struct audit *a)
{
	while (a->unsent != NULL && a->unsent->n < a->head->n + AUDIT_WINDOW) {
		if (a->unsent == a->head)
			a->sent_ms = proc_mono_ms();
		if (audit_send_one(a, a->unsent) < 0)
			return;
		a->unsent = a->unsent->next;
	}
}

int
audit_emit(struct audit *a, json_t *rec, int wait_ms, audit_done_fn done, void *ctx)
{
	struct audit_rec *r = NULL;
	char id[80];
	char *text = NULL;
	size_t len;
	int ret;

	if (rec == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(id, sizeof(id), "%s.%" PRIu64, a->src, a->next_n);
	if (json_object_set_new(rec, "id", json_string(id)) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	text = json_dumps(rec, JSON_COMPACT);
	if (text == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	len = strlen(text);
	if (a->fig.bytes + len > AUDIT_QUEUE_MAX_BYTES || len > BUS_MSG_MAX / 2) {
		a->fig.dropped++;
		/* Loud, but not a line per record while it lasts. */
		if (proc_mono_ms() - a->warned_ms >= 1000) {
			a->warned_ms = proc_mono_ms();
			log_error(0,
				  "audit: the writer confirms nothing: %" PRIu64
				  " records dropped so far, %" PRIu64 " waiting",
				  a->fig.dropped, a->fig.queued);
		}
		ret = -ENOBUFS;
		goto out;
	}
	r = malloc(sizeof(*r) + len + 1);
	if (r == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(r->text, text, len + 1);
	r->len = len;
	r->next = NULL;
	r->n = a->next_n++;
	r->done = done;
	r->ctx = ctx;
	r->deadline_ms = done != NULL ? proc_mono_ms() + wait_ms : 0;
	*a->tail = r;
	a->tail = &r->next;
	if (a->unsent == NULL)
		a->unsent = r;
	a->fig.queued++;
	a->fig.bytes += len;
	audit_push(a);
	ret = 0;
out:
	free(text);
	json_decref(rec);
	if (ret < 0 && done != NULL)
		done(ctx, ret);
	return ret;
}

int
audit_emit_refusal(struct audit *a, json_t *rec)
{
	int64_t sec = proc_mono_ms() / 1000;

	if (sec != a->refusal_sec) {
		a->refusal_sec = sec;
		a->refusals = 0;
	}
	if (a->refusals >= AUDIT_REFUSALS_PER_S) {
		a->suppressed++;
		json_decref(rec);
		return 0;
	}
	a->refusals++;
	if (rec != NULL && a->suppressed > 0 &&
	    json_object_set_new(rec, "suppressed", json_integer((json_int_t)a->suppressed)) == 0)
		a->suppressed = 0;
	return audit_emit(a, rec, 0, NULL, NULL);
}

void
audit_forget(struct audit *a, void *ctx)
{
	for (struct audit_rec *r = a->head; r != NULL; r = r->next) {
		if (r->ctx == ctx)
			r->done = NULL;
	}
}

/* Calls every waiter (of fn, NULL: any) whose deadline is at or before
 * until_ms with status. */
static void
audit_end_waits(struct audit *a, int64_t until_ms, int status, audit_done_fn fn)
{
	for (struct audit_rec *r = a->head; r != NULL; r = r->next) {
		if (r->done != NULL && until_ms >= r->deadline_ms &&
		    (fn == NULL || r->done == fn)) {
			audit_done_fn done = r->done;

			r->done = NULL;
			done(r->ctx, status);
		}
	}
}

static void
audit_ack(struct audit *a, uint64_t n)
{
	struct audit_rec *r;

	while (a->head != NULL && a->head->n <= n) {
		r = a->head;
		a->head = r->next;
		if (a->unsent == r)
			a->unsent = r->next;
		a->fig.queued--;
		a->fig.bytes -= r->len;
		a->fig.acked++;
		if (r->done != NULL)
			r->done(r->ctx, 0);
		free(r);
	}
	if (a->head == NULL)
		a->tail = &a->head;
	a->sent_ms = proc_mono_ms();
	audit_push(a);
}

bool
audit_on_msg(struct audit *a, const struct bus_msg *msg)
{
	char src[sizeof(a->src)];
	int64_t n;

	if (strcmp(msg->type, "audit.ready") == 0) {
		a->unsent = a->head;
		audit_push(a);
		return true;
	}
	if (strcmp(msg->type, "audit.ack") != 0)
		return false;
	if (mp_get_strbuf(msg->body, "src", src, sizeof(src)) < 0 || strcmp(src, a->src) != 0 ||
	    mp_get_int(msg->body, "n", &n) < 0 || n < 0)
		return true; /* another process's, or this one's before a restart */
	audit_ack(a, (uint64_t)n);
	return true;
}

void
audit_tick(struct audit *a)
{
	int64_t now = proc_mono_ms();

	/* Called on every round of a busy loop: look ten times a second. */
	if (now - a->ticked_ms < 100)
		return;
	a->ticked_ms = now;
	/* A flood that ended: its count goes out without waiting for the next. */
	if (a->suppressed > 0 && now / 1000 != a->refusal_sec) {
		json_t *rec = audit_record_as("auth.failed", NULL, NULL, NULL);

		if (rec != NULL)
			json_object_set_new(rec, "reason",
					    json_string("refusals over the record rate"));
		audit_emit_refusal(a, rec);
	}
	audit_end_waits(a, now, -ETIMEDOUT, NULL);
	/* No ack for a while: a packet may have been dropped, or the writer is
	 * away (then this costs one refused send per interval). */
	if (a->head != NULL && now - a->sent_ms >= AUDIT_RESEND_MS)
		a->unsent = a->head;
	audit_push(a);
}

void
audit_release_waiters(struct audit *a, int status)
{
	if (a != NULL)
		audit_end_waits(a, INT64_MAX, status, NULL);
}

void
audit_release_fn(struct audit *a, audit_done_fn done, int status)
{
	if (a != NULL)
		audit_end_waits(a, INT64_MAX, status, done);
}

bool
audit_idle(const struct audit *a)
{
	return a->head == NULL;
}

void
audit_figures(const struct audit *a, struct audit_figures *ret)
{
	*ret = a->fig;
}
