/* mark: a mark's fields, its JSON and msgpack forms and the session's
 * marks.jsonl (see mark.h). jansson writes and reads every JSON form, so the
 * line archive appends and the object relay and httpd send are one text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "layout.h"
#include "mark.h"
#include "mp.h"

static const char *const mark_kinds[MARK_N_KINDS] = { "note", "suspicious", "incident" };

const char *
mark_kind_name(enum mark_kind kind)
{
	return kind < MARK_N_KINDS ? mark_kinds[kind] : "note";
}

int
mark_kind_parse(const char *s, size_t len, enum mark_kind *ret)
{
	for (int i = 0; i < MARK_N_KINDS; i++) {
		if (strlen(mark_kinds[i]) == len && memcmp(mark_kinds[i], s, len) == 0) {
			*ret = (enum mark_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
mark_note_problem(const char *s, size_t len)
{
	if (len > MARK_NOTE_MAX)
		return "note is over 500 bytes";
	if (memchr(s, '\0', len) != NULL)
		return "note holds a NUL character";
	if (!mp_utf8_valid(s, len))
		return "note is not UTF-8";
	return NULL;
}

json_t *
mark_json(const struct mark *m)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "markId", m->id, "sentinelId",
			 m->sentinel, "sessionId", m->session, "at", (json_int_t)m->at, "by", m->by,
			 "kind", mark_kind_name(m->kind), "note", m->note);
}

/* A UUID string into out in lower case. */
static int
mark_uuid(const json_t *j, const char *key, char out[ID_STR_LEN])
{
	const char *s = json_string_value(json_object_get(j, key));
	uint8_t id[16];

	if (s == NULL || id_parse(s, id) < 0)
		return -EINVAL;
	id_format(id, out);
	return 0;
}

int
mark_from_json(const json_t *j, struct mark *ret)
{
	const json_t *at = json_object_get(j, "at"), *by = json_object_get(j, "by");
	const json_t *kind = json_object_get(j, "kind"), *note = json_object_get(j, "note");
	struct mark m;

	if (!json_is_object(j) || mark_uuid(j, "markId", m.id) < 0 ||
	    mark_uuid(j, "sentinelId", m.sentinel) < 0 ||
	    mark_uuid(j, "sessionId", m.session) < 0 || !json_is_integer(at) ||
	    !json_is_string(by) || json_string_length(by) >= MARK_BY_MAX || !json_is_string(kind) ||
	    mark_kind_parse(json_string_value(kind), json_string_length(kind), &m.kind) < 0 ||
	    !json_is_string(note) ||
	    mark_note_problem(json_string_value(note), json_string_length(note)) != NULL)
		return -EINVAL;
	/* jansson takes UTF-8 only, and a name with a NUL is no configured name. */
	if (memchr(json_string_value(by), '\0', json_string_length(by)) != NULL)
		return -EINVAL;
	m.at = json_integer_value(at);
	memcpy(m.by, json_string_value(by), json_string_length(by) + 1);
	memcpy(m.note, json_string_value(note), json_string_length(note) + 1);
	*ret = m;
	return 0;
}

void
mark_pack(msgpack_packer *pk, const struct mark *m)
{
	msgpack_pack_map(pk, 7);
	mp_pack_kv_str(pk, "markId", m->id);
	mp_pack_kv_str(pk, "sentinelId", m->sentinel);
	mp_pack_kv_str(pk, "sessionId", m->session);
	mp_pack_kv_int(pk, "at", m->at);
	mp_pack_kv_str(pk, "by", m->by);
	mp_pack_kv_str(pk, "kind", mark_kind_name(m->kind));
	mp_pack_kv_str(pk, "note", m->note);
}

int
mark_from_mp(const msgpack_object *o, struct mark *ret)
{
	json_t *j;
	int r;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return -EINVAL;
	j = mp_to_json(o);
	if (j == NULL)
		return -ENOMEM;
	r = mark_from_json(j, ret);
	json_decref(j);
	return r;
}

char *
mark_line(const struct mark *m, size_t *ret_len)
{
	json_t *j = mark_json(m);
	char *text, *line;
	size_t len;

	if (j == NULL)
		return NULL;
	text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (text == NULL)
		return NULL;
	len = strlen(text);
	line = realloc(text, len + 2);
	if (line == NULL) {
		free(text);
		return NULL;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	*ret_len = len + 1;
	return line;
}

/* The whole file, from its start (layout's reader, under the marks' bound). */
static int
mark_slurp(int fd, char **ret_buf, size_t *ret_len)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > MARK_FILE_MAX)
		return -EFBIG;
	return layout_index_read(fd, 0, ret_buf, ret_len);
}

int
mark_file_read(int fd, struct mark **ret, size_t *ret_n, uint64_t *ret_end)
{
	struct mark *v = NULL;
	size_t len = 0, n = 0, cap = 0, end = 0;
	char *buf = NULL;
	int r;

	r = mark_slurp(fd, &buf, &len);
	if (r < 0)
		return r;
	for (size_t pos = 0; pos < len;) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		json_t *j;

		if (nl == NULL)
			break; /* a torn last line: not there yet */
		j = json_loadb(buf + pos, (size_t)(nl - (buf + pos)), JSON_REJECT_DUPLICATES, NULL);
		pos = end = (size_t)(nl - buf) + 1;
		if (j == NULL)
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 16;
			struct mark *nv = realloc(v, c * sizeof(*nv));

			if (nv == NULL) {
				json_decref(j);
				r = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = c;
		}
		if (mark_from_json(j, &v[n]) == 0)
			n++;
		json_decref(j);
	}
	free(buf);
	*ret = v;
	*ret_n = n;
	*ret_end = end;
	return 0;
fail:
	free(buf);
	free(v);
	return r;
}

static int
mark_cmp(const void *a, const void *b)
{
	const struct mark *x = *(const struct mark *const *)a, *y = *(const struct mark *const *)b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	/* Pointers into the unsorted array: their order is the file's. */
	return x < y ? -1 : x > y;
}

int
mark_sort(struct mark *v, size_t n)
{
	struct mark **p, *out;

	if (n < 2)
		return 0;
	p = malloc(n * sizeof(*p));
	out = malloc(n * sizeof(*out));
	if (p == NULL || out == NULL) {
		free(p);
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = &v[i];
	qsort(p, n, sizeof(*p), mark_cmp);
	for (size_t i = 0; i < n; i++)
		out[i] = *p[i];
	memcpy(v, out, n * sizeof(*v));
	free(p);
	free(out);
	return 0;
}
