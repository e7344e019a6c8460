/* console_log: the stages' log lines for operators: operator.logs (the
 * last lines of a stage, from vigild's buffer, sent as the operator's send
 * queue makes room) and operator.console (every new line of the stages and
 * levels asked for, as vigild forwards them; a line that finds the queue
 * full is counted, and the count said once there is room again). Loop
 * thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_internal.h"
#include "mp.h"
#include "proc.h"

static const char *const con_levels[CON_N_LEVELS] = { "debug", "info", "warn", "error" };

static int
con_level_parse(const char *s)
{
	for (int i = 0; i < CON_N_LEVELS; i++) {
		if (strcmp(s, con_levels[i]) == 0)
			return i;
	}
	return -1;
}

/* A stage name: its bit in con_sess.follow, or -1. (vigild's own lines are
 * in its journal, not in the buffers it keeps of the stages'.) */
static int
con_stage_bit(const char *name)
{
	return bus_stage_parse(name);
}

static void
con_pack_line(struct wss_msg *m, const char *stage, const char *level, int64_t time_ms,
	      const char *line, size_t len)
{
	wss_msg_begin(m, "server.console", 4);
	mp_pack_kv_str(&m->pk, "stage", stage);
	mp_pack_kv_str(&m->pk, "level", level);
	mp_pack_kv_int(&m->pk, "time", time_ms);
	mp_pack_str(&m->pk, "line");
	msgpack_pack_str(&m->pk, len);
	msgpack_pack_str_body(&m->pk, line, len);
}

/* One line of vigild's buffer as the bus carries it: its fields, false when
 * it is not a line. */
static bool
con_line_fields(const msgpack_object *o, char stage[16], char level[8], int64_t *time_ms,
		const char **line, size_t *len)
{
	return o->type == MSGPACK_OBJECT_MAP && mp_get_strbuf(o, "stage", stage, 16) == 0 &&
	       mp_get_strbuf(o, "level", level, 8) == 0 && mp_get_int(o, "time", time_ms) == 0 &&
	       mp_get_str(o, "line", line, len) == 0;
}

static bool
con_backlog_add(struct con_sess *s, struct wss_msg *m)
{
	if (s->n_backlog == s->cap_backlog) {
		size_t cap = s->cap_backlog ? s->cap_backlog * 2 : 64;
		struct con_out *v = realloc(s->backlog, cap * sizeof(*v));

		if (v == NULL) {
			msgpack_sbuffer_destroy(&m->sb);
			return false;
		}
		s->backlog = v;
		s->cap_backlog = cap;
	}
	s->backlog[s->n_backlog++] = (struct con_out){ m->sb.data, m->sb.size };
	return true; /* the buffer is the backlog's now */
}

void
con_backlog_free(struct con_sess *s)
{
	for (size_t i = s->sent_backlog; i < s->n_backlog; i++)
		free(s->backlog[i].data);
	free(s->backlog);
	s->backlog = NULL;
	s->n_backlog = s->cap_backlog = s->sent_backlog = 0;
}

/* operator.logs' answer leaves as the send queue makes room. */
void
con_backlog_pump(struct wss_conn *c)
{
	struct con_sess *s = con_sess(c);

	while (s->sent_backlog < s->n_backlog) {
		struct con_out *o = &s->backlog[s->sent_backlog];

		if (wss_conn_send(c, o->data, o->len) == -ENOBUFS)
			return;
		free(o->data);
		s->sent_backlog++;
	}
	con_backlog_free(s);
}

void
con_logs(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "operator.logs";
	struct con_pending *pd;
	char stage[16];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int64_t lines = 100;
	int r;

	if (mp_get_strbuf(p, "stage", stage, sizeof(stage)) < 0 || con_stage_bit(stage) < 0) {
		con_error(c, ref, "stage must be one of ingest, relay, archive, httpd");
		return;
	}
	r = mp_get_int(p, "lines", &lines);
	if ((r < 0 && r != -ENOENT) || lines < 1 || lines > CON_LINES_MAX) {
		con_error(c, ref, "lines must be an integer from 1 to %d", CON_LINES_MAX);
		return;
	}
	if (con_sess(c)->n_backlog > 0) {
		con_error(c, ref, "the last operator.logs is still being sent");
		return;
	}
	pd = con_pending_new(con_of(h), c, CON_K_LOGS, ref);
	if (pd == NULL)
		return;
	con_bus_begin(&sb, &pk, "logs.request", pd->ref, 2);
	mp_pack_kv_str(&pk, "stage", stage);
	mp_pack_kv_int(&pk, "lines", lines);
	if (!con_bus_send(h, c, ref, &sb))
		pd->ref = 0;
}

/* A packet of log.lines: into the operator's backlog; the last one ends it
 * with the request's result. */
void
con_logs_answer(struct con_pending *pd, const msgpack_object *body)
{
	struct con_sess *s = con_sess(pd->c);
	const msgpack_object *arr;
	struct wss_msg m;
	bool more = false;
	char err[256];

	if (mp_get_strbuf(body, "error", err, sizeof(err)) == 0) {
		con_error(pd->c, "operator.logs", "%s", err);
		pd->ref = 0;
		return;
	}
	if (mp_get_array(body, "lines", &arr) == 0) {
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			char stage[16], level[8];
			const char *line;
			size_t len;
			int64_t t;

			if (!con_line_fields(&arr->via.array.ptr[i], stage, level, &t, &line, &len))
				continue;
			con_pack_line(&m, stage, level, t, line, len);
			if (con_backlog_add(s, &m))
				pd->lines++;
		}
	}
	mp_get_bool(body, "more", &more);
	if (more) {
		pd->deadline_ms = proc_mono_ms() + CON_RESULT_MS;
		return;
	}
	con_result_ok(&m, "operator.logs", 1);
	mp_pack_kv_int(&m.pk, "lines", pd->lines);
	con_backlog_add(s, &m);
	pd->ref = 0;
	con_backlog_pump(pd->c);
}

/* vigild follows every stage's log for the console while one operator asks. */
void
con_follow_update(struct httpd *h)
{
	struct console *con = con_of(h);
	bool want = false;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	for (struct wss_conn *c = wss_first(con->wss); c != NULL && !want; c = wss_next(c))
		want = con_sess(c)->authed && con_sess(c)->follow != 0 && !wss_conn_closing(c);
	if (want == con->following)
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "logs.follow", "httpd", "vigild");
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_bool(&pk, "on", want);
	if (stage_send(h->st, NULL, "vigild", sb.data, sb.size) == 0)
		con->following = want;
	msgpack_sbuffer_destroy(&sb);
}

void
con_console(struct httpd *h, struct wss_conn *c, const msgpack_object *p)
{
	const char *ref = "operator.console";
	struct con_sess *s = con_sess(c);
	const msgpack_object *arr;
	uint32_t follow = 0;
	char level[16];
	int lv = CON_INFO, r;

	r = mp_get_array(p, "stages", &arr);
	if (r == -ENOENT) {
		follow = (1u << BUS_N_STAGES) - 1;
	} else if (r < 0) {
		con_error(c, ref, "stages must be an array of stage names");
		return;
	} else {
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			const msgpack_object *o = &arr->via.array.ptr[i];
			char name[16];
			int bit = -1;

			if (o->type == MSGPACK_OBJECT_STR && o->via.str.size < sizeof(name)) {
				memcpy(name, o->via.str.ptr, o->via.str.size);
				name[o->via.str.size] = '\0';
				bit = con_stage_bit(name);
			}
			if (bit < 0) {
				con_error(c, ref, "stages holds ingest, relay, archive or httpd");
				return;
			}
			follow |= 1u << bit;
		}
	}
	r = mp_get_strbuf(p, "level", level, sizeof(level));
	if (r == 0)
		lv = con_level_parse(level);
	if ((r < 0 && r != -ENOENT) || lv < 0) {
		con_error(c, ref, "level must be one of debug, info, warn, error");
		return;
	}
	s->follow = follow;
	s->level = (enum con_level)lv;
	s->dropped = 0;
	con_follow_update(h);
	{
		struct wss_msg m;

		con_result_ok(&m, ref, 0);
		wss_msg_send(c, &m);
	}
}

bool
con_dropped_notice(struct wss_conn *c)
{
	struct con_sess *s = con_sess(c);
	struct wss_msg m;
	char text[96];
	int n;

	if (s->dropped == 0)
		return true;
	n = snprintf(text, sizeof(text), "%llu lines dropped: this console did not keep up",
		     (unsigned long long)s->dropped);
	con_pack_line(&m, "httpd", "warn", proc_now_ms(), text, (size_t)n);
	if (wss_msg_send(c, &m) == -ENOBUFS)
		return false;
	s->dropped = 0;
	return true;
}

/* A new line from vigild: to every operator who follows its stage. */
void
con_line(struct console *con, const msgpack_object *body)
{
	char stage[16], level[8];
	const char *line;
	size_t len;
	int64_t t;
	int bit, lv;

	int64_t lost = 0;

	if (!con_line_fields(body, stage, level, &t, &line, &len) ||
	    (bit = con_stage_bit(stage)) < 0 || (lv = con_level_parse(level)) < 0)
		return;
	/* Lines the bus could not take before this one are lost for everybody. */
	if (mp_get_int(body, "dropped", &lost) < 0 || lost < 0)
		lost = 0;
	for (struct wss_conn *c = wss_first(con->wss); c != NULL; c = wss_next(c)) {
		struct con_sess *s = con_sess(c);
		struct wss_msg m;

		if (s->authed && s->follow != 0)
			s->dropped += (uint64_t)lost;
		if (!s->authed || !(s->follow & (1u << bit)) || lv < (int)s->level ||
		    wss_conn_closing(c))
			continue;
		if (!con_dropped_notice(c)) {
			s->dropped++;
			continue;
		}
		con_pack_line(&m, stage, level, t, line, len);
		if (wss_msg_send(c, &m) == -ENOBUFS)
			s->dropped++;
	}
}
