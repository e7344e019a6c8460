/* session: PROTOCOL.md section 4 for one sentinel connection: registration,
 * init and segment validation into the ring, ping, bye, legacy frames.
 * Runs in the lws service thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "ingest.h"
#include "jpeg_clock.h"
#include "log.h"
#include "mp.h"
#include "proc.h"

/* server.error, counted: the connection stays. */
#define sess_error(ing, c, code, ref, ...) \
	((ing)->stats.errors++, wss_send_errorf((c), (code), (ref), __VA_ARGS__))

/* Refuses a registration: the reject message, then the close with the same reason. */
static void
sess_reject(struct ingest *ing, struct wss_conn *c, int code, const char *reason)
{
	ing->stats.rejected_total++;
	log_info("registration refused (%d): %s", code, reason);
	wss_reject(c, code, reason);
}

/* auth.failed (PROTOCOL.md section 9), at most AUDIT_REFUSALS_PER_S a second. */
static void
sess_refused(struct ingest *ing, struct wss_conn *c, const struct tok_info *who, const char *why)
{
	json_t *rec = audit_record("auth.failed", who, wss_conn_peer(c));

	if (rec != NULL && (json_object_set_new(rec, "endpoint", json_string("/sentinel")) < 0 ||
			    json_object_set_new(rec, "reason", json_string(why)) < 0)) {
		json_decref(rec);
		rec = NULL;
	}
	audit_emit_refusal(stage_audit(ing->st), rec);
}

/* With sentinel auth on: the token, and an auth.failed record when it is
 * refused (none when auth is off: there is no token to refuse). */
static int
sess_check_token(struct ingest *ing, struct wss_conn *c, const msgpack_object *p)
{
	const struct tok_info *info;
	const char *why;
	int r;

	if (!ing->cfg->sentinel_auth)
		return 0;
	r = wss_conn_check_token(c, ing->tokens, p, CFG_ROLE_SENTINEL, &info);
	if (r < 0) {
		why = tok_refusal(r, CFG_ROLE_SENTINEL);
		sess_refused(ing, c, info, why);
		sess_reject(ing, c, 3001, why);
		return r;
	}
	ingest_conn_sess(c)->token_expires = info->expires;
	return 0;
}

static void
sess_register(struct ingest *ing, struct wss_conn *c, const msgpack_object *p, int64_t sent_ms)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	struct wss_msg m;
	char idbuf[64], reason[96];
	const char *name;
	size_t n;
	int r;

	if (wss_check_version(p, reason, sizeof(reason)) < 0) {
		sess_reject(ing, c, 3002, reason);
		return;
	}
	if (sess_check_token(ing, c, p) < 0)
		return;
	r = mp_get_strbuf(p, "sentinelId", idbuf, sizeof(idbuf));
	if (r == 0 && id_parse(idbuf, s->id) == 0) {
		id_format(s->id, s->id_str);
	} else if (r == -ENOENT) {
		id_new(s->id_str);
		id_parse(s->id_str, s->id);
	} else {
		sess_reject(ing, c, 3006, "sentinelId must be a UUID this server assigned");
		return;
	}
	if (mp_get_str(p, "name", &name, &n) == 0 && n > 0)
		mp_copy_utf8(s->entry.name, sizeof(s->entry.name), name, n);
	else
		snprintf(s->entry.name, sizeof(s->entry.name), "sentinel-%.8s", s->id_str);
	id_new(s->session_str);
	id_parse(s->session_str, s->session);
	s->started_ms = proc_now_ms();
	s->reg_sent_ms = sent_ms;
	r = ingest_reg_online(ing, c);
	if (r == -EBUSY) {
		sess_reject(ing, c, 3007, "Server busy");
		return;
	}
	if (r < 0) {
		log_error(r, "registering sentinel %s failed", s->id_str);
		sess_reject(ing, c, 3005, "Server error");
		return;
	}
	ing->stats.registered_total++;
	wss_msg_begin(&m, "server.registration.ack", 4);
	mp_pack_kv_str(&m.pk, "sentinelId", s->id_str);
	mp_pack_kv_str(&m.pk, "sessionId", s->session_str);
	/* Ping at a third of the idle timeout: two may be lost before the close. */
	mp_pack_kv_int(&m.pk, "heartbeatSeconds",
		       ing->cfg->timeout_idle_ms >= 3000 ? ing->cfg->timeout_idle_ms / 3000 : 1);
	mp_pack_kv_int(&m.pk, "maxMessageBytes", (int64_t)ing->cfg->max_message_bytes);
	wss_msg_send(c, &m);
	wss_conn_registered(c);
	log_info("sentinel %s '%s' registered, session %s", s->id_str, s->entry.name,
		 s->session_str);
}

int
ingest_sess_put_init(struct ingest *ing, struct wss_conn *c, const void *data, size_t len,
		     char *err, size_t errlen)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	struct ring_stats rs;
	struct fmp4_init init;
	int r;

	ring_get_stats(ing->ring, &rs);
	if (len > rs.max_init_bytes) {
		snprintf(err, errlen, "init of %zu bytes is larger than the %u bytes kept", len,
			 rs.max_init_bytes);
		return -EMSGSIZE;
	}
	r = fmp4_parse_init(data, len, &init, err, errlen);
	if (r < 0)
		return r;
	s->entry.init_gen++;
	snprintf(s->entry.codec, sizeof(s->entry.codec), "%s", init.codec);
	s->entry.width = init.width;
	s->entry.height = init.height;
	s->entry.timescale = init.timescale;
	r = ring_sentinel_put(ing->ring, s->slot, &s->entry, data, (uint32_t)len);
	if (r < 0) {
		s->entry.init_gen--;
		ing->stats.ring_errors++;
		snprintf(err, errlen, "the ring refused the init (%s)", strerror(-r));
		return r;
	}
	s->init = init;
	s->has_init = true;
	ing->stats.inits++;
	log_info("sentinel %s: init %u: %s %ux%u, timescale %u", s->id_str, s->entry.init_gen,
		 init.codec, init.width, init.height, init.timescale);
	return 0;
}

static void
sess_record_latency(struct ingest *ing, int64_t rx_done_us)
{
	struct ingest_stats *st = &ing->stats;
	struct timespec ts;
	int64_t now;

	if (rx_done_us <= 0 || st->n_lat >= sizeof(st->lat_us) / sizeof(st->lat_us[0]))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	st->lat_us[st->n_lat++] = (uint32_t)(now - rx_done_us);
}

int
ingest_sess_put_segment(struct ingest *ing, struct wss_conn *c, int64_t sequence, const void *data,
			size_t len, int64_t start_ms, int64_t duration_ms, int keyframe, char *err,
			size_t errlen)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	struct ring_seg meta = { 0 };
	struct fmp4_seg seg;
	int r;

	if (!s->has_init) {
		snprintf(err, errlen, "segment %lld before any sentinel.init", (long long)sequence);
		return -EPROTO;
	}
	if (sequence < 0 || (s->has_seq && sequence <= s->last_seq)) {
		if (sequence < 0)
			snprintf(err, errlen, "sequence %lld is negative", (long long)sequence);
		else
			snprintf(err, errlen, "sequence %lld is not above the last one (%lld)",
				 (long long)sequence, (long long)s->last_seq);
		return -ERANGE;
	}
	r = fmp4_parse_segment(data, len, &s->init, &seg, err, errlen);
	if (r < 0)
		return -EBADMSG;
	meta.sentinel = s->slot;
	memcpy(meta.session, s->session, sizeof(meta.session));
	meta.sequence = sequence;
	meta.start_ms = start_ms >= 0 ? start_ms : proc_now_ms();
	meta.duration_ms = duration_ms >= 0 ? (uint32_t)duration_ms : seg.duration_ms;
	meta.flags = (keyframe >= 0 ? keyframe : seg.keyframe) ? RING_SEG_KEYFRAME : 0;
	meta.init_gen = s->entry.init_gen;
	r = ring_write(ing->ring, &meta, data, (uint32_t)len, NULL);
	if (r < 0) {
		ing->stats.ring_errors++;
		snprintf(err, errlen, "the ring refused the segment (%s)", strerror(-r));
		return r;
	}
	ingest_kf_segment(ing, s->slot, (meta.flags & RING_SEG_KEYFRAME) != 0, meta.duration_ms);
	s->last_seq = sequence;
	s->has_seq = true;
	s->entry.last_sequence = sequence;
	ring_sentinel_put(ing->ring, s->slot, &s->entry, NULL, 0);
	ing->stats.segments++;
	ing->stats.segment_bytes += len;
	return 0;
}

static void
sess_init(struct ingest *ing, struct wss_conn *c, const msgpack_object *p)
{
	char err[200];
	const void *data;
	size_t len;
	int r;

	if (ingest_conn_sess(c)->legacy) {
		sess_error(ing, c, INGEST_ERR_CONFLICT, "sentinel.init",
			   "this session streams JPEG frames; sentinel.init is refused");
		return;
	}
	if (mp_get_bin(p, "data", &data, &len) < 0) {
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.init",
			   "sentinel.init needs data (bytes)");
		return;
	}
	r = ingest_sess_put_init(ing, c, data, len, err, sizeof(err));
	if (r < 0)
		sess_error(ing, c,
			   r == -EMSGSIZE  ? INGEST_ERR_TOO_LARGE
			   : r == -EBADMSG ? INGEST_ERR_BAD_REQUEST
					   : INGEST_ERR_INTERNAL,
			   "sentinel.init", "init refused: %s", err);
}

/* An optional field: absent is fine (-1 returned), present with the wrong type is not. */
static int
sess_opt_int(const msgpack_object *p, const char *key, int64_t *ret)
{
	int r = mp_get_int(p, key, ret);

	if (r == -ENOENT) {
		*ret = -1;
		return 0;
	}
	return r == 0 && *ret < 0 ? -ERANGE : r;
}

static void
sess_segment(struct ingest *ing, struct wss_conn *c, const msgpack_object *p, int64_t rx_done_us)
{
	int64_t seq, start, duration;
	bool key;
	int keyframe = -1, r;
	const void *data;
	size_t len;
	char err[200];

	if (ingest_conn_sess(c)->legacy) {
		sess_error(ing, c, INGEST_ERR_CONFLICT, "sentinel.segment",
			   "this session streams JPEG frames; sentinel.segment is refused");
		return;
	}
	if (mp_get_int(p, "sequence", &seq) < 0 || mp_get_bin(p, "data", &data, &len) < 0) {
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.segment",
			   "sentinel.segment needs an integer sequence and data (bytes)");
		return;
	}
	if (sess_opt_int(p, "startTime", &start) < 0 ||
	    sess_opt_int(p, "duration", &duration) < 0) {
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.segment",
			   "startTime and duration must be non-negative integers (ms)");
		return;
	}
	r = mp_get_bool(p, "keyframe", &key);
	if (r == 0)
		keyframe = key;
	else if (r != -ENOENT) {
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.segment",
			   "keyframe must be a boolean");
		return;
	}
	r = ingest_sess_put_segment(ing, c, seq, data, len, start, duration, keyframe, err,
				    sizeof(err));
	if (r == 0) {
		sess_record_latency(ing, rx_done_us);
		return;
	}
	sess_error(ing, c,
		   r == -EPROTO    ? INGEST_ERR_PRECONDITION
		   : r == -ERANGE  ? INGEST_ERR_CONFLICT
		   : r == -EBADMSG ? INGEST_ERR_BAD_REQUEST
				   : INGEST_ERR_INTERNAL,
		   "sentinel.segment", "segment refused: %s", err);
}

/* Index order; frames of equal index keep their order in the message. */
static int
sess_frame_cmp(const void *a, const void *b)
{
	const struct ingest_frame *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The frames of a batch that can be encoded, in index order, into f; one
 * server.error for those that cannot (400: no data or no integer index) and
 * one for those already encoded (409: an index not above the last one, as a
 * repeated batch has). Returns how many are left. */
static uint32_t
sess_frames_take(struct ingest *ing, struct wss_conn *c, const msgpack_object *frames,
		 struct ingest_frame *f)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	uint32_t total = frames->via.array.size, n = 0, bad = 0, first_bad = 0, repeats = 0, m;
	const char *why = NULL;
	int64_t last = s->last_index, first_repeat = 0;
	bool had_index = s->has_index;

	for (uint32_t i = 0; i < total; i++) {
		const msgpack_object *o = &frames->via.array.ptr[i];
		const char *fault;

		if (mp_get_bin(o, "data", &f[n].data, &f[n].len) < 0)
			fault = "needs data (JPEG bytes)";
		else if (mp_get_int(o, "index", &f[n].index) < 0)
			fault = "needs an integer index (the frames' order)";
		else {
			f[n++].pos = i;
			continue;
		}
		/* The reason names the first bad frame; the count, all of them. */
		if (bad++ == 0) {
			first_bad = i;
			why = fault;
		}
	}
	if (bad > 0)
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.frame",
			   "frames[%u] %s; %u of %u frames dropped", first_bad, why, bad, total);
	qsort(f, n, sizeof(*f), sess_frame_cmp);
	m = 0;
	for (uint32_t k = 0; k < n; k++) {
		if (s->has_index && f[k].index <= s->last_index) {
			if (repeats++ == 0)
				first_repeat = f[k].index;
			continue;
		}
		s->last_index = f[k].index;
		s->has_index = true;
		f[m++] = f[k];
	}
	if (repeats > 0 && had_index)
		sess_error(
			ing, c, INGEST_ERR_CONFLICT, "sentinel.frame",
			"index %lld is not above the last one (%lld); %u repeated frames dropped",
			(long long)first_repeat, (long long)last, repeats);
	else if (repeats > 0)
		sess_error(ing, c, INGEST_ERR_CONFLICT, "sentinel.frame",
			   "index %lld appears twice; %u repeated frames dropped",
			   (long long)first_repeat, repeats);
	return m;
}

static void
sess_frame(struct ingest *ing, struct wss_conn *c, const msgpack_object *p, int64_t sent_ms)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	const msgpack_object *frames;
	struct ingest_frame *f;
	uint32_t n;

	if (s->has_init && !s->legacy) {
		sess_error(ing, c, INGEST_ERR_CONFLICT, "sentinel.frame",
			   "this session streams fMP4; sentinel.frame is refused");
		return;
	}
	if (mp_get_array(p, "frames", &frames) < 0) {
		sess_error(ing, c, INGEST_ERR_BAD_REQUEST, "sentinel.frame",
			   "sentinel.frame needs frames (an array)");
		return;
	}
	s->legacy = true;
	if (frames->via.array.size > INGEST_JPEG_BATCH_MAX) {
		sess_error(ing, c, INGEST_ERR_TOO_LARGE, "sentinel.frame",
			   "a batch holds at most %d frames, this one %u; none was encoded",
			   INGEST_JPEG_BATCH_MAX, frames->via.array.size);
		return;
	}
	if (frames->via.array.size == 0)
		return;
	f = calloc(frames->via.array.size, sizeof(*f));
	if (f == NULL) {
		sess_error(ing, c, INGEST_ERR_INTERNAL, "sentinel.frame", "out of memory");
		return;
	}
	n = sess_frames_take(ing, c, frames, f);
	if (n == 0)
		goto out;
	if (s->jpeg == NULL) {
		s->jpeg = ingest_jpeg_new(ing, c);
		if (s->jpeg == NULL) {
			sess_error(ing, c, INGEST_ERR_INTERNAL, "sentinel.frame",
				   "the JPEG encoder could not be started");
			goto out;
		}
	}
	if (ingest_jpeg_push(s->jpeg, f, n, sent_ms, proc_now_ms()) < 0)
		sess_error(ing, c, INGEST_ERR_INTERNAL, "sentinel.frame",
			   "%u frames could not be queued for encoding", n);
	else
		ing->stats.frames += n;
out:
	free(f);
}

/* The envelope's timestamp in unix ms; -1 when absent or beyond any clock. */
static int64_t
sess_sent_ms(const struct env *env)
{
	int64_t ts = env_timestamp(env);

	if (!env_has_timestamp(env) || ts < 0 || ts > JPEG_CLOCK_TS_MAX_MS / 1000)
		return -1;
	return ts * 1000;
}

void
ingest_sess_message(struct ingest *ing, struct wss_conn *c, const void *buf, size_t len,
		    bool binary, int64_t rx_done_us)
{
	struct ingest_sess *s = ingest_conn_sess(c);
	const msgpack_object *p;
	struct env *env;
	const char *type;

	env = wss_decode(c, buf, len, binary);
	if (env == NULL)
		return;
	type = env_type(env);
	p = env_payload(env);
	if (!s->registered) {
		if (strcmp(type, "sentinel.register") == 0)
			sess_register(ing, c, p, sess_sent_ms(env));
		else
			sess_reject(ing, c, 3001, "The first message must be sentinel.register");
	} else if (strcmp(type, "sentinel.segment") == 0) {
		sess_segment(ing, c, p, rx_done_us);
	} else if (strcmp(type, "sentinel.init") == 0) {
		sess_init(ing, c, p);
	} else if (strcmp(type, "sentinel.frame") == 0) {
		sess_frame(ing, c, p, sess_sent_ms(env));
	} else if (strcmp(type, "sentinel.ping") == 0) {
		wss_send_pong(c);
	} else if (strcmp(type, "sentinel.bye") == 0) {
		wss_conn_close(c, 1000, "Session ended by the sentinel");
	} else if (strcmp(type, "sentinel.register") == 0) {
		sess_error(ing, c, INGEST_ERR_CONFLICT, type, "already registered");
	} else {
		sess_error(ing, c, INGEST_ERR_NOT_FOUND, type, "unknown message type '%s'", type);
	}
	env_free(env);
}

void
ingest_sess_closed(struct ingest *ing, struct wss_conn *c)
{
	struct ingest_sess *s = ingest_conn_sess(c);

	/* The encoder's last segment belongs to the session: in before it ends
	 * (not for a replaced connection, whose slot is taken). */
	if (s->registered)
		ingest_jpeg_finish(ing, s->jpeg);
	ingest_jpeg_free(s->jpeg);
	s->jpeg = NULL;
	if (s->registered)
		log_info("sentinel %s: session %s ended", s->id_str, s->session_str);
	ingest_reg_offline(ing, c, "disconnected");
}
