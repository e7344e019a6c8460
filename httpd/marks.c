/* marks: GET and POST .../sessions/{sessionId}/marks (PROTOCOL.md sections 6
 * and 8, docs/httpd.md "Marks"). GET reads the session's marks.jsonl; POST
 * checks the body, asks archive to store the mark (mark.add) and answers 201
 * once archive says it is on disk and recorded (mark.added), or with the
 * status archive gave (400 at outside the session, 404, 409 deleted or full),
 * or 503 when archive does not answer within MARKS_WAIT_MS (it then stores
 * nothing: it is told the deadline). Loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive_read.h"
#include "beneath.h"
#include "forget.h"
#include "httpd.h"
#include "layout.h"
#include "log.h"
#include "marks.h"
#include "mp.h"
#include "proc.h"
#include "srv.h"
#include "server.h"

int
marks_read(struct httpd *h, const struct ar_sess *s, struct mark **ret, size_t *ret_n)
{
	char path[2 * ID_STR_LEN + sizeof(LAYOUT_MARKS) + 2];
	uint64_t end;
	int fd, r;

	*ret = NULL;
	*ret_n = 0;
	snprintf(path, sizeof(path), "%s/%s/%s", s->sentinel, s->session, LAYOUT_MARKS);
	fd = ar_data_fd(h) >= 0 ? beneath_open(ar_data_fd(h), path, O_RDONLY | O_NONBLOCK, 0)
				: -ENOENT;
	if (fd == -ENOENT)
		return 0; /* no mark yet (or no directory yet) */
	if (fd < 0)
		return fd;
	r = mark_file_read(fd, ret, ret_n, &end);
	close(fd);
	if (r == 0 && (r = mark_sort(*ret, *ret_n)) < 0) {
		free(*ret);
		*ret = NULL;
		*ret_n = 0;
	}
	return r;
}

json_t *
marks_json(const struct mark *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (json_array_append_new(arr, mark_json(&v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static void
marks_get(struct httpd *h, struct hreq *r, const struct ar_sess *s)
{
	struct mark *v;
	size_t n;
	int err;

	err = marks_read(h, s, &v, &n);
	if (err < 0) {
		hs_error(r, 500, "the marks of session %s cannot be read: %s", s->session,
			 strerror(-err));
		return;
	}
	hs_json(r, 200, marks_json(v, n));
	free(v);
}

/* The answer archive gave to the POST parked with ref. */
static void
marks_answer(struct httpd *h, struct hreq *r, int ref)
{
	char key[24];
	json_t *ans;
	int status;
	const char *why;

	snprintf(key, sizeof(key), "%d", ref);
	ans = json_object_get(h->marked, key);
	if (ans == NULL) {
		hs_retry_after(r, 1);
		hs_error(r, 503,
			 "the archive did not confirm the mark within %d s: it was not stored",
			 MARKS_WAIT_MS / 1000);
		return;
	}
	json_incref(ans);
	json_object_del(h->marked, key);
	status = (int)json_integer_value(json_object_get(ans, "status"));
	why = json_string_value(json_object_get(ans, "error"));
	if (status == 201)
		hs_json(r, 201, json_incref(json_object_get(ans, "mark")));
	else if (status == 400 || status == 404 || status == 409)
		hs_error(r, status, "%s", why != NULL ? why : "refused by the archive");
	else
		hs_error(r, status == 500 ? 500 : 503, "the mark was not stored: %s",
			 why != NULL ? why : "the archive failed");
	json_decref(ans);
}

/* The body's { at, kind?, note } into m: NULL, or what is wrong. */
static const char *
marks_body(const void *body, size_t len, struct mark *m, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j, *at, *kind, *note;
	const char *problem = NULL;

	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		snprintf(why, whylen, "the body is not JSON: %s", jerr.text);
		return why;
	}
	at = json_object_get(j, "at");
	kind = json_object_get(j, "kind");
	note = json_object_get(j, "note");
	m->kind = MARK_NOTE;
	if (!json_is_object(j))
		problem = "the body must be a JSON object { at, kind?, note }";
	else if (!json_is_integer(at))
		problem = "at must be an integer (unix ms)";
	else if (kind != NULL &&
		 (!json_is_string(kind) ||
		  mark_kind_parse(json_string_value(kind), json_string_length(kind), &m->kind) < 0))
		problem = MARK_KIND_PROBLEM;
	else if (!json_is_string(note))
		problem = "note must be a string";
	else
		problem = mark_note_problem(json_string_value(note), json_string_length(note));
	if (problem == NULL) {
		m->at = json_integer_value(at);
		memcpy(m->note, json_string_value(note), json_string_length(note) + 1);
	} else {
		snprintf(why, whylen, "%s", problem);
	}
	json_decref(j);
	return problem != NULL ? why : NULL;
}

/* mark.add { ref, mark, deadline, actor, role, remote } to archive. */
static int
marks_ask(struct httpd *h, struct hreq *r, const struct mark *m, int ref)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	const char *actor;
	enum cfg_role role;
	int err;

	if (hs_actor(r, &actor, &role) < 0) {
		actor = "";
		role = CFG_ROLE_COUNT;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	mp_pack_kv_int(&pk, "ref", ref);
	mp_pack_str(&pk, "mark");
	mark_pack(&pk, m);
	mp_pack_kv_int(&pk, "deadline", proc_now_ms() + MARKS_ARCHIVE_MS);
	mp_pack_kv_str(&pk, "actor", actor);
	mp_pack_kv_str(&pk, "role", role < CFG_ROLE_COUNT ? cfg_role_name(role) : "");
	mp_pack_kv_str(&pk, "remote", srv_conn_peer(r->sc));
	err = stage_send(h->st, "mark.add", "archive", sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return err;
}

static void
marks_post(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	const char *actor, *problem;
	enum cfg_role role;
	struct mark m = { 0 };
	struct ar_sess s;
	const void *body;
	char why[256];
	size_t len;
	int err, ref;

	if (hs_park_ref(r) >= 0) {
		marks_answer(h, r, hs_park_ref(r));
		return;
	}
	err = hs_body(r, MARKS_BODY_MAX, &body, &len);
	if (err == -EAGAIN)
		return; /* here again once it has come */
	if (err == -EFBIG) {
		hs_error(r, 413, "a mark's body is at most %u bytes", MARKS_BODY_MAX);
		return;
	}
	if (err == -ENOMEM) {
		hs_error(r, 500, "out of memory");
		return;
	}
	if (err < 0) {
		hs_error(r, 400, "malformed request body");
		return;
	}
	if (ar_forgotten(h, rt->session)) {
		hs_error(r, 409, "session %s was deleted", rt->session);
		return;
	}
	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	problem = marks_body(body, len, &m, why, sizeof(why));
	if (problem != NULL) {
		hs_error(r, 400, "%s", problem);
		return;
	}
	if (h->archive_down) {
		hs_retry_after(r, 5);
		hs_error(r, 503, "the archive is not running: the mark was not stored");
		return;
	}
	/* Whether at is inside the session is archive's to say: it holds the
	 * session's times as they are stored. */
	id_new(m.id);
	snprintf(m.sentinel, sizeof(m.sentinel), "%s", rt->sentinel);
	snprintf(m.session, sizeof(m.session), "%s", rt->session);
	if (hs_actor(r, &actor, &role) == 0)
		snprintf(m.by, sizeof(m.by), "%s", actor);
	ref = ++h->next_ref;
	err = marks_ask(h, r, &m, ref);
	if (err < 0) {
		hs_retry_after(r, 1);
		hs_error(r, 503, "the archive cannot be reached: the mark was not stored");
		return;
	}
	hs_park(r, HS_PARK_MARK, ref, MARKS_WAIT_MS);
}

void
marks_handle(struct httpd *h, struct hreq *r)
{
	const struct route *rt = hs_route(r);
	struct ar_sess s;

	if (r->method == ROUTE_POST) {
		marks_post(h, r);
		return;
	}
	if (ar_session(h, rt->sentinel, rt->session, &s) < 0) {
		hs_error(r, 404, "session %s of sentinel %s not found", rt->session, rt->sentinel);
		return;
	}
	marks_get(h, r, &s);
}

void
marks_added(struct httpd *h, const struct bus_msg *msg)
{
	int64_t ref = -1, status = 0;
	char who[BUS_NAME_MAX] = "", why[256] = "", key[24];
	struct mark m;
	json_t *ans;

	mp_get_strbuf(msg->body, "for", who, sizeof(who));
	if (strcmp(who, bus_stage_name(BUS_HTTPD)) != 0 || mp_get_int(msg->body, "ref", &ref) < 0 ||
	    mp_get_int(msg->body, "status", &status) < 0)
		return; /* another stage's mark (relay's): nobody here waits for it */
	mp_get_strbuf(msg->body, "error", why, sizeof(why));
	if (status == 201 && mark_from_mp(mp_map_get(msg->body, "mark"), &m) < 0)
		status = 500;
	ans = json_pack("{s:I, s:s, s:o*}", "status", (json_int_t)status, "error", why, "mark",
			status == 201 ? mark_json(&m) : NULL);
	if (ans == NULL)
		return;
	if (h->marked == NULL)
		h->marked = json_object();
	snprintf(key, sizeof(key), "%lld", (long long)ref);
	json_object_set_new(h->marked, key, ans);
	hs_unpark(h, HS_PARK_MARK, (int)ref);
	/* An answer nobody waits for any more (timed out) is dropped. */
	json_object_del(h->marked, key);
}
