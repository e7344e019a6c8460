/* sentinel_conn: one simulated sentinel's WebSocket session (PROTOCOL.md section
 * 4): register, init, segments or legacy frames, ping, bye; the server's
 * replies and close codes; reconnecting with backoff. What it sends goes
 * through its queue (sentinel_out.c). Runs in the lws thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "mp.h"
#include "proc.h"
#include "sentinel_net.h"

static const char *const snt_conn_state_names[] = {
	[SNT_CONN_WAIT] = "wait",
	[SNT_CONN_CONNECTING] = "connecting",
	[SNT_CONN_REGISTERING] = "registering",
	[SNT_CONN_READY] = "ready",
	[SNT_CONN_BYE] = "bye",
	[SNT_CONN_DONE] = "done",
};

static void snt_conn_retry_cb(lws_sorted_usec_list_t *sul);

void
snt_conn_init(struct snt_conn *c, struct snt_net *n, unsigned index)
{
	const struct snt_opts *o = n->o;
	int r;

	memset(c, 0, sizeof(*c));
	c->net = n;
	c->index = index;
	c->state = SNT_CONN_WAIT;
	c->backoff_ms = SNT_BACKOFF_MIN_MS;
	if (o->count > 1)
		snprintf(c->name, sizeof(c->name), "%s-%u", o->name, index);
	else
		snprintf(c->name, sizeof(c->name), "%s", o->name);
	r = snt_state_path(o, index, c->name, c->state_path, sizeof(c->state_path));
	if (r < 0) {
		log_warn(r, "%s: no place for the state file; the sentinelId lasts until exit",
			 c->name);
		c->state_path[0] = '\0';
	} else if ((r = snt_state_load(c->state_path, c->id)) < 0) {
		if (r != -ENOENT)
			log_warn(r, "%s: state file %s ignored", c->name, c->state_path);
		c->id[0] = '\0';
	}
}

void
snt_conn_fini(struct snt_conn *c)
{
	snt_out_clear(c);
	free(c->rx);
	c->rx = NULL;
}

static void
snt_conn_send_mb(struct snt_conn *c, struct snt_mb *mb, enum snt_msg_kind kind, int64_t duration_ms)
{
	struct snt_msg *m = snt_mb_end(mb, kind);

	if (m == NULL) {
		log_warn(-errno, "%s: message not built", c->name);
		return;
	}
	if (m->total > c->max_message && c->max_message > 0) {
		log_warn(0, "%s: %s of %zu bytes is over the server's limit of %llu: dropped",
			 c->name, m->type, m->total, (unsigned long long)c->max_message);
		c->st.drops++;
		snt_msg_free(m);
		return;
	}
	m->duration_ms = duration_ms;
	snt_out_push(c, m);
}

static void
snt_conn_retry(struct snt_conn *c)
{
	/* Equal jitter: half the delay fixed, half random, so that many sentinels
	 * cut off together do not come back together. */
	int64_t d = c->backoff_ms / 2 + random() % (c->backoff_ms / 2 + 1);

	c->state = SNT_CONN_WAIT;
	c->backoff_ms =
		c->backoff_ms * 2 > SNT_BACKOFF_MAX_MS ? SNT_BACKOFF_MAX_MS : c->backoff_ms * 2;
	log_info("%s: reconnecting in %.1f s", c->name, (double)d / 1000);
	lws_sul_schedule(c->net->ctx, 0, &c->sul_retry, snt_conn_retry_cb, d * LWS_US_PER_MS);
}

void
snt_conn_connect(struct snt_conn *c)
{
	struct snt_net *n = c->net;
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = n->ctx;
	ci.address = n->host;
	ci.port = n->port;
	ci.path = n->path;
	ci.host = n->host_header;
	ci.ssl_connection = n->tls ? LCCSCF_USE_SSL : 0;
	ci.local_protocol_name = "vigil-sentinel";
	ci.opaque_user_data = c;
	ci.pwsi = &c->wsi;
	c->state = SNT_CONN_CONNECTING;
	log_debug("%s: connecting to %s:%d%s", c->name, n->host, n->port, n->path);
	if (lws_client_connect_via_info(&ci) == NULL && c->state == SNT_CONN_CONNECTING) {
		c->wsi = NULL;
		log_warn(0, "%s: cannot connect to %s:%d", c->name, n->host, n->port);
		snt_conn_retry(c);
	}
}

static void
snt_conn_retry_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_conn *c = lws_container_of(sul, struct snt_conn, sul_retry);

	if (c->state != SNT_CONN_WAIT || c->net->stopping)
		return;
	c->st.reconnects++;
	snt_conn_connect(c);
}

static void
snt_conn_register_timeout_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_conn *c = lws_container_of(sul, struct snt_conn, sul_register);

	if (c->state == SNT_CONN_REGISTERING && c->wsi != NULL) {
		log_warn(0, "%s: no answer to sentinel.register in %d s, closing", c->name,
			 SNT_REGISTER_MS / 1000);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
}

static void
snt_conn_ping_cb(lws_sorted_usec_list_t *sul)
{
	struct snt_conn *c = lws_container_of(sul, struct snt_conn, sul_ping);
	struct snt_mb mb;

	if (c->state != SNT_CONN_READY)
		return;
	snt_mb_begin(&mb, c->net->o->json, "sentinel.ping", 0);
	snt_conn_send_mb(c, &mb, SNT_MSG_CONTROL, -1);
	lws_sul_schedule(c->net->ctx, 0, &c->sul_ping, snt_conn_ping_cb,
			 c->heartbeat_ms * LWS_US_PER_MS);
}

void
snt_conn_established(struct snt_conn *c)
{
	const struct snt_opts *o = c->net->o;
	struct snt_mb mb;

	log_info("%s: connected to %s:%d%s, registering%s%s", c->name, c->net->host, c->net->port,
		 c->net->path, c->id[0] ? " as " : "", c->id);
	c->state = SNT_CONN_REGISTERING;
	c->seq = 0;
	c->init_gen = 0;
	c->frame_index = 0;
	c->reject[0] = '\0';
	c->session[0] = '\0';
	c->max_message = 8u << 20;
	c->heartbeat_ms = SNT_PING_MS;
	snt_mb_begin(&mb, o->json, "sentinel.register",
		     2 + (o->token != NULL) + (c->id[0] != '\0'));
	if (o->token != NULL)
		mp_pack_kv_str(&mb.pk, "token", o->token);
	mp_pack_kv_int(&mb.pk, "version", SNT_PROTOCOL_VERSION);
	if (c->id[0] != '\0')
		mp_pack_kv_str(&mb.pk, "sentinelId", c->id);
	mp_pack_kv_str(&mb.pk, "name", c->name);
	snt_conn_send_mb(c, &mb, SNT_MSG_CONTROL, -1);
	lws_sul_schedule(c->net->ctx, 0, &c->sul_register, snt_conn_register_timeout_cb,
			 SNT_REGISTER_MS * LWS_US_PER_MS);
}

static void
snt_conn_send_init(struct snt_conn *c)
{
	struct snt_net *n = c->net;
	struct snt_mb mb;

	if (n->init == NULL || c->init_gen == n->init_gen)
		return;
	snt_mb_begin(&mb, n->o->json, "sentinel.init", 1);
	snt_mb_blob(&mb, "data", n->init);
	snt_conn_send_mb(c, &mb, SNT_MSG_INIT, -1);
	c->init_gen = n->init_gen;
}

static void
snt_conn_on_ack(struct snt_conn *c, const msgpack_object *p)
{
	char id[ID_STR_LEN] = "";
	int64_t v;
	int r;

	if (c->state != SNT_CONN_REGISTERING) {
		log_debug("%s: unexpected server.registration.ack ignored", c->name);
		return;
	}
	if (mp_get_strbuf(p, "sentinelId", id, sizeof(id)) == 0 && id_valid(id) &&
	    strcmp(id, c->id) != 0) {
		memcpy(c->id, id, sizeof(id));
		if (c->state_path[0] != '\0' && (r = snt_state_save(c->state_path, id)) < 0)
			log_warn(r, "%s: sentinelId not saved to %s", c->name, c->state_path);
	}
	if (mp_get_strbuf(p, "sessionId", c->session, sizeof(c->session)) < 0)
		c->session[0] = '\0';
	/* The server's heartbeat, when it gives one, sets the ping interval. */
	if (mp_get_int(p, "heartbeatSeconds", &v) == 0 && v >= 1 && v <= 60)
		c->heartbeat_ms = v * 1000;
	if (mp_get_int(p, "maxMessageBytes", &v) == 0 && v > 0)
		c->max_message = (uint64_t)v;
	c->state = SNT_CONN_READY;
	c->ready_at = proc_mono_ms();
	lws_sul_cancel(&c->sul_register);
	lws_sul_schedule(c->net->ctx, 0, &c->sul_ping, snt_conn_ping_cb,
			 c->heartbeat_ms * LWS_US_PER_MS);
	log_info("%s: registered as %s, session %s", c->name, c->id[0] ? c->id : "(no id)",
		 c->session[0] ? c->session : "(none)");
	snt_conn_send_init(c);
}

/* A string of the payload into buf, cut to fit; "" when absent. */
static void
snt_conn_str(const msgpack_object *p, const char *key, char *buf, size_t size)
{
	const char *s;
	size_t n;

	if (mp_get_str(p, key, &s, &n) < 0)
		n = 0;
	if (n >= size)
		n = size - 1;
	memcpy(buf, n ? s : "", n);
	buf[n] = '\0';
}

static void
snt_conn_dispatch(struct snt_conn *c, const struct env *env)
{
	const msgpack_object *p = env_payload(env);
	const char *type = env_type(env);
	char reason[256] = "", ref[64] = "";
	double fps;
	int64_t code = 0;

	if (strcmp(type, "server.registration.ack") == 0) {
		snt_conn_on_ack(c, p);
	} else if (strcmp(type, "server.registration.reject") == 0) {
		snt_conn_str(p, "reason", c->reject, sizeof(c->reject));
		if (c->reject[0] == '\0')
			strcpy(c->reject, "no reason");
		log_warn(0, "%s: registration rejected: %s", c->name, c->reject);
	} else if (strcmp(type, "server.keyframe.request") == 0) {
		log_info("%s: keyframe requested", c->name);
		if (!c->net->o->legacy_jpeg)
			snt_enc_request_keyframe(c->net->enc);
	} else if (strcmp(type, "server.fps.change") == 0) {
		if (mp_get_double(p, "framerate", &fps) < 0) {
			log_warn(0, "%s: server.fps.change without a framerate ignored", c->name);
			return;
		}
		log_info("%s: frame rate %g requested, %g applied", c->name, fps,
			 snt_enc_set_fps(c->net->enc, fps));
	} else if (strcmp(type, "server.error") == 0) {
		mp_get_int(p, "code", &code);
		snt_conn_str(p, "reason", reason, sizeof(reason));
		snt_conn_str(p, "ref", ref, sizeof(ref));
		log_warn(0, "%s: server error %lld: %s (on %s)", c->name, (long long)code, reason,
			 ref[0] ? ref : "?");
	} else if (strcmp(type, "server.pong") == 0) {
		log_debug("%s: pong", c->name);
	} else {
		log_debug("%s: %s ignored", c->name, type);
	}
}

int
snt_conn_receive(struct snt_conn *c, const void *in, size_t len)
{
	struct env *env;
	char err[160];
	int r;

	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->rx_overflow = false;
	}
	if (!c->rx_overflow && len > SNT_RX_MAX - c->rx_len) {
		c->rx_overflow = true;
		log_warn(0, "%s: message from the server over %d bytes ignored", c->name,
			 SNT_RX_MAX);
	}
	if (!c->rx_overflow && len > 0) {
		if (c->rx_len + len > c->rx_cap) {
			size_t cap = c->rx_len + len + 4096;
			uint8_t *p = realloc(c->rx, cap);

			if (p == NULL)
				return -1;
			c->rx = p;
			c->rx_cap = cap;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
	}
	if (!lws_is_final_fragment(c->wsi) || c->rx_overflow)
		return 0;
	r = env_decode(c->rx, c->rx_len, lws_frame_is_binary(c->wsi) ? ENV_MSGPACK : ENV_JSON, &env,
		       err, sizeof(err));
	if (r < 0) {
		log_warn(r, "%s: message from the server not understood (%s)", c->name, err);
		return 0;
	}
	snt_conn_dispatch(c, env);
	env_free(env);
	return 0;
}

void
snt_conn_peer_close(struct snt_conn *c, const uint8_t *in, size_t len)
{
	int code = len >= 2 ? in[0] << 8 | in[1] : 0;
	int rlen = len > 2 ? (int)(len - 2) : 0;

	log_info("%s: server closed the connection: %d %.*s", c->name, code, rlen,
		 rlen ? (const char *)in + 2 : "");
	/* What to do next is decided once the socket is gone. */
	c->close_code = code;
}

void
snt_conn_closed(struct snt_conn *c, const char *why)
{
	struct snt_net *n = c->net;
	int code = c->close_code;

	if (c->state == SNT_CONN_WAIT || c->state == SNT_CONN_DONE)
		return;
	c->wsi = NULL;
	c->close_code = 0;
	lws_sul_cancel(&c->sul_ping);
	lws_sul_cancel(&c->sul_register);
	snt_out_clear(c);
	if (c->state == SNT_CONN_READY && proc_mono_ms() - c->ready_at >= SNT_STABLE_MS)
		c->backoff_ms = SNT_BACKOFF_MIN_MS;
	if (c->state == SNT_CONN_BYE || n->stopping) {
		log_info("%s: session ended", c->name);
		c->state = SNT_CONN_DONE;
		snt_net_conn_done(n, c, 0);
	} else if (code == 3008) {
		log_info("%s: replaced by a newer connection with the same sentinelId, stopping",
			 c->name);
		c->state = SNT_CONN_DONE;
		snt_net_conn_done(n, c, 0);
	} else if (code == 3001 || code == 3002) {
		log_error(0, "%s: registration refused (%d: %s), giving up", c->name, code,
			  c->reject[0] ? c->reject : why);
		c->state = SNT_CONN_DONE;
		snt_net_conn_done(n, c, 1);
	} else {
		if (c->state == SNT_CONN_CONNECTING)
			log_warn(0, "%s: connection failed: %s", c->name, why);
		else if (code == 0)
			log_warn(0, "%s: connection lost (%s)", c->name, why);
		snt_conn_retry(c);
	}
}

void
snt_conn_media(struct snt_conn *c, const struct snt_media *m)
{
	struct snt_mb mb;
	bool start = m->start_ms >= 0, dur = m->duration_ms >= 0;

	if (c->state != SNT_CONN_READY) {
		if (m->kind == SNT_MEDIA_SEGMENT) {
			c->st.offline++;
			log_debug("%s: %s, segment dropped", c->name,
				  snt_conn_state_names[c->state]);
		}
		return;
	}
	/* The newest init before any segment that follows it. */
	snt_conn_send_init(c);
	if (m->kind != SNT_MEDIA_SEGMENT)
		return;
	snt_mb_begin(&mb, c->net->o->json, "sentinel.segment", 3 + start + dur);
	mp_pack_kv_int(&mb.pk, "sequence", c->seq++);
	if (start)
		mp_pack_kv_int(&mb.pk, "startTime", m->start_ms);
	if (dur)
		mp_pack_kv_int(&mb.pk, "duration", m->duration_ms);
	mp_pack_kv_bool(&mb.pk, "keyframe", m->keyframe);
	snt_mb_blob(&mb, "data", m->blob);
	snt_conn_send_mb(c, &mb, SNT_MSG_MEDIA, m->duration_ms);
}

void
snt_conn_frames(struct snt_conn *c, struct snt_blob *const *frames, size_t n)
{
	char frame_id[ID_STR_LEN];
	struct snt_mb mb;

	if (c->state != SNT_CONN_READY) {
		c->st.offline++;
		log_debug("%s: %s, frames dropped", c->name, snt_conn_state_names[c->state]);
		return;
	}
	snt_mb_begin(&mb, c->net->o->json, "sentinel.frame", 1);
	mp_pack_str(&mb.pk, "frames");
	msgpack_pack_array(&mb.pk, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		id_new(frame_id);
		msgpack_pack_map(&mb.pk, 4);
		mp_pack_kv_str(&mb.pk, "sentinelId", c->id);
		mp_pack_kv_str(&mb.pk, "frameId", frame_id);
		mp_pack_kv_int(&mb.pk, "index", c->frame_index++);
		snt_mb_blob(&mb, "data", frames[i]);
	}
	snt_conn_send_mb(c, &mb, SNT_MSG_MEDIA, 1000);
}

void
snt_conn_stop(struct snt_conn *c, const char *reason)
{
	struct snt_mb mb;

	switch (c->state) {
	case SNT_CONN_WAIT:
		lws_sul_cancel(&c->sul_retry);
		c->state = SNT_CONN_DONE;
		snt_net_conn_done(c->net, c, 0);
		break;
	case SNT_CONN_CONNECTING:
		/* Nothing to say goodbye on: drop the attempt. */
		c->state = SNT_CONN_BYE;
		if (c->wsi != NULL)
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		break;
	case SNT_CONN_REGISTERING:
	case SNT_CONN_READY:
		/* Waiting media is not worth delaying the bye for. */
		snt_out_drop_media(c);
		lws_sul_cancel(&c->sul_ping);
		snt_mb_begin(&mb, c->net->o->json, "sentinel.bye", 1);
		mp_pack_kv_str(&mb.pk, "reason", reason);
		snt_conn_send_mb(c, &mb, SNT_MSG_CONTROL, -1);
		c->state = SNT_CONN_BYE;
		log_info("%s: sending sentinel.bye (%s)", c->name, reason);
		break;
	case SNT_CONN_BYE:
	case SNT_CONN_DONE:
		break;
	}
}
