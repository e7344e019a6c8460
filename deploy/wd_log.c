/* wd_log: the stages' log lines in vigild. Each stage's stdout and stderr
 * come on a pipe; vigild cuts them into lines, reads level and time back
 * (log_line_parse), keeps the last WD_LOG_LINES per stage, passes them on to
 * its own stderr, answers logs.request and `vigilctl logs`, and streams new
 * lines to followers (httpd's console, `vigilctl logs --follow`) without ever
 * waiting for one: what a follower cannot take is dropped and counted.
 * Every line goes through log_redact() first: a stage's own lines already
 * did, a library's output (GStreamer's, OpenSSL's) had not. Runs in vigild
 * only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "proc.h"
#include "wd.h"

/* What one call of wd_read_log passes on to vigild's stderr: one write. */
static char wd_log_echo[WD_LOG_READ_MAX + WD_LINE_MAX + 2];
static size_t wd_log_echo_len;

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if it is not
 * one: no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t
wd_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return c != 0 ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A copy fit for JSON and msgpack strings: bytes that are not UTF-8 (a
 * library's output, a line cut at WD_LINE_MAX inside a character) and NULs
 * become '?'; a carriage return before the newline goes. */
static char *
wd_log_clean(const char *line, size_t len)
{
	char *out;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	out = malloc(len + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = wd_utf8_seq((const unsigned char *)line + i, len - i);

		if (n == 0) {
			out[i++] = '?';
			continue;
		}
		memcpy(out + i, line + i, n);
		i += n;
	}
	out[len] = '\0';
	return out;
}

/* The body of log.line and of an entry of log.lines (bus.h). */
static void
wd_log_pack_line(msgpack_packer *pk, enum bus_stage stage, const struct wd_line *l, uint64_t drops)
{
	msgpack_pack_map(pk, drops > 0 ? 5 : 4);
	mp_pack_kv_str(pk, "stage", bus_stage_name(stage));
	mp_pack_kv_str(pk, "level", log_level_name(l->level));
	mp_pack_kv_int(pk, "time", l->time_ms);
	mp_pack_str(pk, "line");
	msgpack_pack_str_with_body(pk, l->text, l->len);
	if (drops > 0)
		mp_pack_kv_int(pk, "dropped", (int64_t)drops);
}

/* Offers one log.line to a follower; its drop count goes with the next one
 * that it takes. */
static void
wd_log_offer(struct wd *wd, const struct wd_peer *peer, uint64_t *drops, enum bus_stage stage,
	     const struct wd_line *l)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "log.line", "vigild", wd_peer_name(wd, peer));
	wd_log_pack_line(&pk, stage, l, *drops);
	if (wd_peer_offer(wd, peer, sb.data, sb.size) == 0)
		*drops = 0;
	else
		(*drops)++;
	msgpack_sbuffer_destroy(&sb);
}

/* A new line goes to every follower: stages that asked with logs.follow,
 * ctl connections that did so through {"cmd":"bus"}, and those of
 * `vigilctl logs --follow`. */
static void
wd_log_dispatch(struct wd *wd, struct wd_child *c, const struct wd_line *l)
{
	unsigned self = (unsigned)(c - wd->child);

	for (int i = 0; i < (int)wd->n_child; i++) {
		struct wd_child *f = &wd->child[i];
		struct wd_peer peer = { .ctl = false, .slot = i, .gen = f->bus_gen };

		if (f->follow && f->bus_fd >= 0)
			wd_log_offer(wd, &peer, &f->follow_drops, c->which, l);
	}
	for (int i = 0; i < WD_MAX_CONNS; i++) {
		struct wd_ctl_conn *k = &wd->ctl[i];
		struct wd_peer peer = { .ctl = true, .slot = i, .gen = k->gen };
		json_t *ev;

		if (k->fd >= 0 && k->follow_bus)
			wd_log_offer(wd, &peer, &k->bus_drops, c->which, l);
		if (k->fd < 0 || !(k->follow & 1u << self))
			continue;
		ev = json_pack("{s:s, s:s, s:s, s:I, s:s%}", "event", "log", "stage",
			       bus_stage_name(c->which), "level", log_level_name(l->level), "time",
			       (json_int_t)l->time_ms, "line", l->text, (size_t)l->len);
		if (ev != NULL && k->drops > 0)
			json_object_set_new(ev, "dropped", json_integer((json_int_t)k->drops));
		if (ev != NULL && wd_ctl_offer(wd, i, ev) == 0)
			k->drops = 0;
		else
			k->drops++;
		json_decref(ev);
	}
}

static void
wd_log_echo_flush(void)
{
	size_t off = 0;

	while (off < wd_log_echo_len) {
		ssize_t n = write(STDERR_FILENO, wd_log_echo + off, wd_log_echo_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* nowhere to report it */
		off += (size_t)n;
	}
	wd_log_echo_len = 0;
}

static void
wd_log_keep(struct wd *wd, struct wd_child *c, const char *raw, size_t raw_len)
{
	/* Redaction makes a line longer by at most 2 bytes in 5 ("?token=x&"). */
	char line[2 * WD_LINE_MAX + 16];
	size_t len = log_redact(raw, raw_len, line, sizeof(line));
	struct wd_line l = { .len = (uint32_t)len };

	/* Stage lines already carry time, stage name and pid: passed on as they are. */
	if (wd_log_echo_len + len + 1 > sizeof(wd_log_echo))
		wd_log_echo_flush();
	memcpy(wd_log_echo + wd_log_echo_len, line, len);
	wd_log_echo_len += len;
	wd_log_echo[wd_log_echo_len++] = '\n';

	l.text = wd_log_clean(line, len);
	if (l.text == NULL)
		return;
	l.len = (uint32_t)strlen(l.text); /* no NUL inside: the CR may have gone */
	if (log_line_parse(l.text, l.len, &l.level, &l.time_ms) < 0) {
		l.level = LOG_LVL_INFO;
		l.time_ms = proc_now_ms();
	}
	if (c->log_count == WD_LOG_LINES) {
		free(c->log[c->log_head].text);
		c->log[c->log_head] = l;
		c->log_head = (c->log_head + 1) % WD_LOG_LINES;
	} else {
		c->log[(c->log_head + c->log_count++) % WD_LOG_LINES] = l;
	}
	wd_log_dispatch(wd, c, &l);
}

void
wd_read_log(struct wd *wd, struct wd_child *c)
{
	char buf[4096];
	size_t taken = 0;
	ssize_t n;

	/* A bounded share per round: a stage that floods its pipe must not keep
	 * the loop from the others, the bus and the heartbeat watch. */
	while (c->log_fd >= 0 && taken < WD_LOG_READ_MAX) {
		n = read(c->log_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			if (c->partial_len > 0)
				wd_log_keep(wd, c, c->partial, c->partial_len);
			c->partial_len = 0;
			close(c->log_fd);
			c->log_fd = -1;
			break;
		}
		taken += (size_t)n;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || c->partial_len == sizeof(c->partial)) {
				wd_log_keep(wd, c, c->partial, c->partial_len);
				c->partial_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			c->partial[c->partial_len++] = buf[i];
		}
	}
	wd_log_echo_flush();
}

void
wd_log_free(struct wd_child *c)
{
	for (unsigned i = 0; i < c->log_count; i++)
		free(c->log[(c->log_head + i) % WD_LOG_LINES].text);
	c->log_count = c->log_head = 0;
}

/* The last n lines of the children [first, first + n_child), oldest first,
 * merged by their time (a stage's workers write at once): how many were
 * put in out (n at most). */
static unsigned
wd_log_pick(const struct wd *wd, unsigned first, unsigned n_child, unsigned n,
	    const struct wd_line **out)
{
	unsigned left[WD_MAX_CHILDREN], taken = 0;

	for (unsigned k = 0; k < n_child; k++)
		left[k] = wd->child[first + k].log_count;
	/* From the newest backwards: each time the latest line not taken yet. */
	while (taken < n) {
		const struct wd_line *best = NULL;
		unsigned from = 0;

		for (unsigned k = 0; k < n_child; k++) {
			const struct wd_child *c = &wd->child[first + k];
			const struct wd_line *l;

			if (left[k] == 0)
				continue;
			l = &c->log[(c->log_head + left[k] - 1) % WD_LOG_LINES];
			if (best == NULL || l->time_ms > best->time_ms) {
				best = l;
				from = k;
			}
		}
		if (best == NULL)
			break;
		left[from]--;
		out[n - 1 - taken++] = best;
	}
	memmove(out, out + (n - taken), taken * sizeof(*out));
	return taken;
}

json_t *
wd_log_tail(const struct wd *wd, unsigned first, unsigned n_child, unsigned n)
{
	const struct wd_line **v = malloc((n + 1) * sizeof(*v));
	json_t *lines = json_array();
	unsigned got;

	if (lines == NULL || v == NULL) {
		free(v);
		json_decref(lines);
		return NULL;
	}
	got = wd_log_pick(wd, first, n_child, n, v);
	for (unsigned i = 0; i < got; i++)
		json_array_append_new(lines, json_stringn(v[i]->text, v[i]->len));
	free(v);
	return lines;
}

/* One packet of log.lines: lines [from, to) of v, more when others follow. */
static int
wd_log_send_chunk(struct wd *wd, const struct wd_peer *peer, const msgpack_object *ref,
		  enum bus_stage stage, const struct wd_line **v, unsigned from, unsigned to,
		  bool more)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "log.lines", "vigild", wd_peer_name(wd, peer));
	msgpack_pack_map(&pk, 3);
	mp_pack_str(&pk, "ref");
	msgpack_pack_object(&pk, *ref);
	mp_pack_str(&pk, "lines");
	msgpack_pack_array(&pk, to - from);
	for (unsigned i = from; i < to; i++)
		wd_log_pack_line(&pk, stage, v[i], 0);
	mp_pack_kv_bool(&pk, "more", more);
	r = sb.size <= BUS_MSG_MAX ? wd_peer_send(wd, peer, sb.data, sb.size) : -EMSGSIZE;
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* An entry's packed size at most: its map and keys, the stage, the level,
 * the time and the string header, then the text. */
#define WD_LOG_ENTRY_OVERHEAD 80
/* The envelope, the ref (WD_REF_MAX), the keys and the array header. */
#define WD_LOG_CHUNK_OVERHEAD (256 + WD_REF_MAX)

/* log.lines { ref, error } */
static void
wd_log_refuse(struct wd *wd, const struct wd_peer *peer, const msgpack_object *ref, const char *err)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bus_pack_begin(&pk, "log.lines", "vigild", wd_peer_name(wd, peer));
	msgpack_pack_map(&pk, 2);
	mp_pack_str(&pk, "ref");
	msgpack_pack_object(&pk, *ref);
	mp_pack_kv_str(&pk, "error", err);
	wd_peer_send(wd, peer, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

void
wd_log_request(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body)
{
	const msgpack_object *ref = wd_ref(body);
	char name[BUS_NAME_MAX];
	const struct wd_line *v[WD_LOG_LINES];
	unsigned first, n_child, from = 0, n_lines;
	int64_t lines = 100;
	int r = -EINVAL;

	if (mp_get_strbuf(body, "stage", name, sizeof(name)) == 0)
		r = wd_lookup(wd, name, &first, &n_child);
	if (r < 0) {
		wd_log_refuse(wd, peer, ref, "stage: expected ingest, relay, archive or httpd");
		return;
	}
	if (mp_map_get(body, "lines") != NULL && mp_get_int(body, "lines", &lines) < 0) {
		wd_log_refuse(wd, peer, ref, "lines: expected an integer (at most 1000)");
		return;
	}
	lines = lines < 0 ? 0 : lines > WD_LOG_LINES ? WD_LOG_LINES : lines;
	n_lines = wd_log_pick(wd, first, n_child, (unsigned)lines, v);
	/* As many packets as BUS_MSG_MAX takes; at least one, even empty. */
	do {
		size_t size = WD_LOG_CHUNK_OVERHEAD;
		unsigned to = from;

		while (to < n_lines) {
			size_t add = WD_LOG_ENTRY_OVERHEAD + v[to]->len;

			if (size + add > BUS_MSG_MAX)
				break;
			size += add;
			to++;
		}
		if (wd_log_send_chunk(wd, peer, ref, wd->child[first].which, v, from, to,
				      to < n_lines) < 0)
			return; /* the asker is gone, or its queue is full: logged there */
		from = to;
	} while (from < n_lines);
}

void
wd_log_follow(struct wd *wd, const struct wd_peer *peer, const msgpack_object *body)
{
	bool on = false;

	mp_get_bool(body, "on", &on);
	if (peer->ctl) {
		if (peer->gen == wd->ctl[peer->slot].gen) {
			wd->ctl[peer->slot].follow_bus = on;
			wd->ctl[peer->slot].bus_drops = 0;
		}
		return;
	}
	if (peer->gen == wd->child[peer->slot].bus_gen) {
		wd->child[peer->slot].follow = on;
		wd->child[peer->slot].follow_drops = 0;
	}
}
