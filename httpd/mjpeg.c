/* mjpeg: live.mjpeg's clients and streams (see mjpeg.h). A stream is a
 * sentinel being decoded (a slot of mjpeg_dec): its session, its widths and
 * their newest JPEG; a client is one connection watching one width of one
 * stream at its own rate. Loop thread. */
#include "mjpeg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "archive_read.h"
#include "forget.h"
#include "id.h"
#include "log.h"
#include "mjpeg_dec.h"
#include "mp.h"
#include "proc.h"
#include "record.h"
#include "server.h"
#include "snapshot.h"

/* Bytes of a stream the kernel may hold unsent: without a bound its autotuned
 * send buffer (megabytes) would take seconds of frames from a client that
 * does not read, so that it neither skips frames nor is seen to stall. */
#define MJPEG_NOTSENT_MAX (64 << 10)

#define MJPEG_CTYPE "multipart/x-mixed-replace; boundary=" MJPEG_BOUNDARY

/* What every part but the first starts with, and what follows each JPEG. */
#define MJPEG_OPEN  "--" MJPEG_BOUNDARY "\r\n"
#define MJPEG_AFTER "\r\n--" MJPEG_BOUNDARY

/* One connection's stream. */
struct mjpeg_client {
	struct mjpeg_client *next, **pprev; /* every client, streaming or ending */
	struct hreq *r;
	int stream, k; /* which stream and width; stream -1 once ending */
	struct mjpeg_pace pace;
	struct hbuf *pending; /* the newest JPEG due for it, not yet queued */
	bool parts;           /* a part went out: the end is "--\r\n" */
	bool ending;
	int64_t progress_ms; /* the socket last took a JPEG (or the queue was empty) */
	uint8_t token[TOK_DIGEST_LEN];
	int64_t expires;
	/* the live view the audit log records when the stream ends */
	char sentinel[37], session[37];
	int64_t from_ms;
	struct relay_view *view; /* in the views' journal until it ends (record.h) */
};

struct mjpeg_width {
	bool on;
	int width; /* 0: the video's own */
	unsigned clients;
	struct hbuf *newest; /* for a client that joins: a picture at once */
	int64_t newest_pts;
};

struct mjpeg_stream {
	bool on;
	char sentinel[37];
	uint8_t id[16];
	uint32_t ring_slot;
	uint8_t session[16];
	int64_t offline_ms; /* when it was first seen offline; 0 while online */
	unsigned clients;
	struct mjpeg_width w[MJPEG_DEC_WIDTHS];
};

struct mjpeg {
	struct mjpeg_dec *dec;
	bool stopping;
	struct mjpeg_stream s[MJPEG_DEC_SLOTS];
	struct mjpeg_client *clients;
	unsigned streaming, open;
	uint64_t frames, dropped, refused;
};

static void
mjpeg_wake(void *ctx)
{
	hs_wake(ctx); /* any thread */
}

static struct mjpeg *
mjpeg_of(struct httpd *h)
{
	if (h->mjpeg == NULL)
		h->mjpeg = calloc(1, sizeof(struct mjpeg));
	return h->mjpeg;
}

/* The decoders' thread starts with the first stream. */
static struct mjpeg_dec *
mjpeg_decoder(struct httpd *h, struct mjpeg *m)
{
	if (m->dec == NULL && h->ring != NULL && !m->stopping) {
		m->dec = mjpeg_dec_new(h->ring, mjpeg_wake, h);
		if (m->dec == NULL)
			log_error(-errno, "mjpeg: the decoder thread did not start");
	}
	return m->dec;
}

/* Tells the decoder what stream i needs now: each width at the shortest
 * interval any of its clients asked for; nothing once it has no client. */
static void
mjpeg_want(struct mjpeg *m, int i)
{
	struct mjpeg_stream *s = &m->s[i];
	struct mjpeg_dec_want want = { .ring_slot = s->ring_slot };

	if (m->dec == NULL)
		return;
	if (!s->on) {
		mjpeg_dec_set(m->dec, i, NULL);
		return;
	}
	memcpy(want.session, s->session, 16);
	for (struct mjpeg_client *c = m->clients; c != NULL; c = c->next) {
		if (c->stream != i)
			continue;
		if (!want.w[c->k].on || c->pace.interval_us < want.w[c->k].interval_us)
			want.w[c->k].interval_us = c->pace.interval_us;
		want.w[c->k].on = true;
		want.w[c->k].width = s->w[c->k].width;
	}
	mjpeg_dec_set(m->dec, i, &want);
}

/* A client leaves its stream; the stream's last client stops its decoder. */
static void
mjpeg_detach(struct mjpeg *m, struct mjpeg_client *c)
{
	struct mjpeg_stream *s;
	struct mjpeg_width *w;
	int i = c->stream;

	if (i < 0)
		return;
	s = &m->s[i];
	w = &s->w[c->k];
	c->stream = -1;
	m->streaming--;
	hbuf_unref(c->pending);
	c->pending = NULL;
	if (--w->clients == 0) {
		hbuf_unref(w->newest);
		memset(w, 0, sizeof(*w));
	}
	if (--s->clients == 0) {
		log_info("mjpeg: last client of sentinel %s left: its decoder stops", s->sentinel);
		memset(s, 0, sizeof(*s));
	}
	mjpeg_want(m, i);
}

/* The stream ends cleanly: the part being sent completes, the close
 * delimiter follows, then the connection closes. */
static void
mjpeg_end(struct mjpeg *m, struct mjpeg_client *c, const char *why)
{
	static const char last[] = "--\r\n", empty[] = "--" MJPEG_BOUNDARY "--\r\n";
	struct srv_conn *sc = c->r->sc;
	int r;

	if (c->ending)
		return;
	log_debug("mjpeg: a stream to %s ends: %s", srv_conn_peer(sc), why);
	mjpeg_detach(m, c);
	c->ending = true;
	if (c->parts)
		r = srv_conn_write_copy(sc, last, sizeof(last) - 1);
	else
		r = srv_conn_write_copy(sc, empty, sizeof(empty) - 1);
	if (r < 0)
		srv_conn_abort(sc); /* no room even for that: cut (c is freed) */
	else
		srv_conn_shutdown(sc, HS_LINGER_MS);
}

/* Queues the client's pending JPEG as one part once the socket took the
 * previous one; until then a newer one replaces it (mjpeg_offer). */
static void
mjpeg_flush(struct httpd *h, struct mjpeg *m, struct mjpeg_client *c)
{
	struct srv_conn *sc = c->r->sc;
	struct hbuf *b = c->pending;
	size_t len;
	char head[160];
	int n, r;

	if (b == NULL || c->ending || srv_conn_queued(sc) > 0)
		return;
	len = b->len;
	c->pending = NULL;
	n = snprintf(head, sizeof(head),
		     "%sContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n",
		     c->parts ? "\r\n" : MJPEG_OPEN, len);
	r = srv_conn_write_copy(sc, head, (size_t)n);
	if (r == 0) {
		r = srv_conn_write(sc, b->data, len, b); /* b's reference goes with it */
		if (r < 0)
			hbuf_unref(b);
	} else {
		hbuf_unref(b);
	}
	if (r == 0)
		r = srv_conn_write_copy(sc, MJPEG_AFTER, sizeof(MJPEG_AFTER) - 1);
	if (r < 0) {
		srv_conn_abort(sc);
		return;
	}
	c->parts = true;
	c->progress_ms = proc_mono_ms();
	m->frames++;
	h->stats.bytes_out += (uint64_t)n + len + sizeof(MJPEG_AFTER) - 1;
	srv_conn_want_write(sc); /* mjpeg_writable once the socket took it all */
}

/* A new JPEG of the client's width: kept if it is due at the client's rate,
 * replacing (and counting as dropped) one the socket had no room for. */
static void
mjpeg_offer(struct httpd *h, struct mjpeg *m, struct mjpeg_client *c, struct hbuf *b, int64_t pts)
{
	if (c->ending || !mjpeg_pace_due(&c->pace, pts))
		return;
	mjpeg_pace_take(&c->pace, pts);
	if (c->pending != NULL) {
		m->dropped++;
		hbuf_unref(c->pending);
	}
	c->pending = hbuf_ref(b);
	mjpeg_flush(h, m, c);
}

/* The stream of the sentinel, or a free one; -1 when every slot is taken. */
static int
mjpeg_stream_for(struct mjpeg *m, const char *sentinel)
{
	int free_i = -1;

	for (int i = 0; i < MJPEG_DEC_SLOTS; i++) {
		if (m->s[i].on && strcmp(m->s[i].sentinel, sentinel) == 0)
			return i;
		if (!m->s[i].on && free_i < 0)
			free_i = i;
	}
	return free_i;
}

/* The width's index in the stream, or a free one; -1 when all are used. */
static int
mjpeg_width_for(const struct mjpeg_stream *s, int width)
{
	int free_k = -1;

	for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
		if (s->w[k].on && s->w[k].width == width)
			return k;
		if (!s->w[k].on && free_k < 0)
			free_k = k;
	}
	return free_k;
}

static void
mjpeg_refuse(struct mjpeg *m, struct hreq *r, const char *what, int max)
{
	m->refused++;
	hs_retry_after(r, MJPEG_RETRY_AFTER_S);
	hs_error(r, 503, "live.mjpeg is at its limit of %d %s; retry later", max, what);
}

/* ?fps= and ?width=; false when the request was answered 400. */
static bool
mjpeg_args(struct hreq *r, int64_t *ret_milli, int64_t *ret_width)
{
	char arg[64];

	*ret_milli = MJPEG_FPS_DEFAULT;
	*ret_width = 0;
	if (hs_arg(r, "fps", arg, sizeof(arg)) &&
	    (route_parse_milli(arg, ret_milli) < 0 || *ret_milli < MJPEG_FPS_MIN ||
	     *ret_milli > MJPEG_FPS_MAX)) {
		hs_error(r, 400, "fps must be a number from 0.1 to 5 (frames per second)");
		return false;
	}
	if (hs_arg(r, "width", arg, sizeof(arg)) &&
	    (route_parse_int(arg, ret_width) < 0 || *ret_width < MJPEG_WIDTH_MIN ||
	     *ret_width > SNAPSHOT_DIM_MAX || *ret_width % 2 != 0)) {
		hs_error(r, 400,
			 "width must be an even number of pixels from %d to the video's width",
			 MJPEG_WIDTH_MIN);
		return false;
	}
	return true;
}

/* The client joins stream i at width k: the decoder learns of it, the
 * headers go out, and the newest picture of that width if there is one. */
static void
mjpeg_start(struct httpd *h, struct mjpeg *m, struct hreq *r, struct mjpeg_client *c)
{
	struct mjpeg_width *w = &m->s[c->stream].w[c->k];

	c->r = r;
	c->progress_ms = proc_mono_ms();
	c->next = m->clients;
	if (m->clients != NULL)
		m->clients->pprev = &c->next;
	c->pprev = &m->clients;
	m->clients = c;
	m->streaming++;
	m->open++;
	r->mjpeg = c;
	mjpeg_want(m, c->stream);
	r->close_after = true;
	hs_extra(r, "cache-control:", "no-store");
	if (hs_stream_headers(h, r, 200, MJPEG_CTYPE) < 0) {
		srv_conn_abort(r->sc);
		return;
	}
	/* Reading on: a client that goes away is seen at once, not at the next
	 * write. What it sends is dropped (mjpeg_data). */
	srv_conn_pause(r->sc, false);
	if (setsockopt(srv_conn_fd(r->sc), IPPROTO_TCP, TCP_NOTSENT_LOWAT,
		       &(int){ MJPEG_NOTSENT_MAX }, sizeof(int)) < 0)
		log_debug("mjpeg: TCP_NOTSENT_LOWAT not set: %s", strerror(errno));
	if (w->newest != NULL)
		mjpeg_offer(h, m, c, w->newest, w->newest_pts);
}

void
mjpeg_get(struct httpd *h, struct hreq *r)
{
	const char *sentinel = hs_route(r)->sentinel;
	struct mjpeg *m = mjpeg_of(h);
	struct mjpeg_client *c;
	struct mjpeg_stream *s;
	struct ring_sentinel rs;
	int64_t milli, width;
	int slot, i, k;

	if (m == NULL) {
		hs_error(r, 500, "out of memory");
		return;
	}
	if (!mjpeg_args(r, &milli, &width))
		return;
	slot = ar_ring_slot(h, sentinel);
	if (slot < 0 || ring_sentinel_get(h->ring, (uint32_t)slot, &rs, NULL, 0) < 0) {
		hs_error(r, 404, "sentinel %s is not online", sentinel);
		return;
	}
	/* A hard-deleted session is never streamed, whatever the ring holds. */
	if (!rs.online || ar_forgotten_id(h, rs.session)) {
		hs_error(r, 404, "sentinel %s is offline: live.mjpeg streams while it is online",
			 sentinel);
		return;
	}
	if (width > (int64_t)rs.width) {
		hs_error(r, 400, "width %lld is above the video's %u (no upscaling)",
			 (long long)width, rs.width);
		return;
	}
	if (width == (int64_t)rs.width)
		width = 0; /* the video's own: one encoder for both */
	if (r->head) {
		hs_extra(r, "cache-control:", "no-store");
		if (hs_stream_headers(h, r, 200, MJPEG_CTYPE) < 0)
			srv_conn_abort(r->sc);
		else
			hs_done(h, r);
		return;
	}
	if (m->stopping || mjpeg_decoder(h, m) == NULL) {
		hs_retry_after(r, MJPEG_RETRY_AFTER_S);
		hs_error(r, 503, "live.mjpeg is not available now");
		return;
	}
	if (m->streaming >= MJPEG_CLIENTS_MAX) {
		mjpeg_refuse(m, r, "clients", MJPEG_CLIENTS_MAX);
		return;
	}
	i = mjpeg_stream_for(m, sentinel);
	if (i < 0) {
		mjpeg_refuse(m, r, "sentinels decoded at once", MJPEG_DEC_SLOTS);
		return;
	}
	s = &m->s[i];
	k = mjpeg_width_for(s, (int)width);
	if (k < 0) {
		mjpeg_refuse(m, r, "widths per sentinel", MJPEG_DEC_WIDTHS);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || hs_token_id(r, c->token, &c->expires) < 0) {
		free(c);
		hs_error(r, 500, "out of memory");
		return;
	}
	if (!s->on) {
		*s = (struct mjpeg_stream){ .on = true, .ring_slot = (uint32_t)slot };
		snprintf(s->sentinel, sizeof(s->sentinel), "%s", sentinel);
		id_parse(sentinel, s->id);
		memcpy(s->session, rs.session, 16);
		log_info("mjpeg: sentinel %s: decoder starts", sentinel);
	}
	if (!s->w[k].on)
		s->w[k] = (struct mjpeg_width){ .on = true, .width = (int)width };
	s->w[k].clients++;
	s->clients++;
	c->stream = i;
	c->k = k;
	snprintf(c->sentinel, sizeof(c->sentinel), "%s", sentinel);
	id_format(rs.session, c->session);
	c->from_ms = proc_now_ms();
	c->view = rec_view_begin(h, r, c->sentinel, c->session, c->from_ms);
	c->pace = (struct mjpeg_pace){ milli > 0 ? 1000000000 / milli : 1000000, INT64_MIN,
				       INT64_MIN };
	mjpeg_start(h, m, r, c);
}

void
mjpeg_writable(struct httpd *h, struct hreq *r)
{
	mjpeg_flush(h, h->mjpeg, r->mjpeg);
}

void
mjpeg_data(struct httpd *h, struct hreq *r, size_t len)
{
	if (len == 0)
		srv_conn_abort(r->sc); /* the client left: nobody reads what is queued */
}

void
mjpeg_sent(struct httpd *h, struct hreq *r, void *tag, bool written)
{
	hbuf_unref(tag);
	if (written && r->mjpeg != NULL)
		r->mjpeg->progress_ms = proc_mono_ms();
}

void
mjpeg_closed(struct httpd *h, struct hreq *r)
{
	struct mjpeg *m = h->mjpeg;
	struct mjpeg_client *c = r->mjpeg;

	mjpeg_detach(m, c);
	/* A live view like a proctor's on relay (PROTOCOL.md section 9). */
	rec_view(h, r, c->view, c->sentinel, c->session, c->from_ms);
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	m->open--;
	free(c);
	r->mjpeg = NULL;
}

void
mjpeg_service(struct httpd *h)
{
	struct mjpeg *m = h->mjpeg;
	struct mjpeg_dec_frame f[MJPEG_DEC_WIDTHS];

	if (m == NULL || m->dec == NULL)
		return;
	for (int i = 0; i < MJPEG_DEC_SLOTS; i++) {
		struct mjpeg_stream *s = &m->s[i];

		if (!s->on)
			continue;
		mjpeg_dec_take(m->dec, i, f);
		for (int k = 0; k < MJPEG_DEC_WIDTHS; k++) {
			struct mjpeg_width *w = &s->w[k];

			if (f[k].jpeg == NULL)
				continue;
			/* Made for a width this index had before, or for the slot's
			 * previous sentinel or session: nobody here may see it. */
			if (!w->on || w->width != f[k].width || f[k].ring_slot != s->ring_slot ||
			    memcmp(f[k].session, s->session, 16) != 0) {
				hbuf_unref(f[k].jpeg);
				continue;
			}
			hbuf_unref(w->newest);
			w->newest = f[k].jpeg;
			w->newest_pts = f[k].pts_us;
			for (struct mjpeg_client *c = m->clients; c != NULL; c = c->next)
				if (c->stream == i && c->k == k)
					mjpeg_offer(h, m, c, w->newest, w->newest_pts);
		}
	}
}

/* Every client of stream i ends. */
static void
mjpeg_end_stream(struct mjpeg *m, int i, const char *why)
{
	struct mjpeg_client *c, *next;

	for (c = m->clients; c != NULL; c = next) {
		next = c->next;
		if (c->stream == i)
			mjpeg_end(m, c, why);
	}
}

/* The stream's sentinel as the ring shows it now: a new session is decoded
 * from its first join point on (unless it was deleted), an absence of more
 * than MJPEG_GRACE_MS ends the stream. */
static void
mjpeg_check_stream(struct httpd *h, struct mjpeg *m, int i, int64_t now)
{
	struct mjpeg_stream *s = &m->s[i];
	struct ring_sentinel rs;
	bool here = ring_sentinel_get(h->ring, s->ring_slot, &rs, NULL, 0) == 0 &&
		    memcmp(rs.id, s->id, 16) == 0 && rs.online;

	if (here && memcmp(rs.session, s->session, 16) != 0 && !ar_forgotten_id(h, rs.session)) {
		log_info("mjpeg: sentinel %s is in a new session", s->sentinel);
		memcpy(s->session, rs.session, 16);
		mjpeg_want(m, i);
	}
	if (ar_forgotten_id(h, s->session)) {
		mjpeg_end_stream(m, i, "its session was deleted");
		return;
	}
	if (here && memcmp(rs.session, s->session, 16) == 0) {
		s->offline_ms = 0;
		return;
	}
	if (s->offline_ms == 0)
		s->offline_ms = now;
	else if (now - s->offline_ms >= MJPEG_GRACE_MS)
		mjpeg_end_stream(m, i, "the sentinel went offline");
}

void
mjpeg_tick(struct httpd *h)
{
	struct mjpeg *m = h->mjpeg;
	int64_t now = proc_mono_ms(), unix_s = time(NULL);
	struct mjpeg_client *c, *next;

	if (m == NULL)
		return;
	for (int i = 0; i < MJPEG_DEC_SLOTS; i++)
		if (m->s[i].on)
			mjpeg_check_stream(h, m, i, now);
	for (c = m->clients; c != NULL; c = next) {
		next = c->next;
		if (c->ending)
			continue;
		if (c->expires != 0 && unix_s >= c->expires) {
			mjpeg_end(m, c, "its token expired");
		} else if (srv_conn_queued(c->r->sc) > 0 &&
			   now - c->progress_ms > h->cfg->timeout_idle_ms) {
			log_debug("mjpeg: a client at %s took nothing for %lld ms: dropped",
				  srv_conn_peer(c->r->sc), (long long)(now - c->progress_ms));
			srv_conn_abort(c->r->sc);
		}
	}
}

void
mjpeg_revoked(struct httpd *h)
{
	struct mjpeg *m = h->mjpeg;
	struct mjpeg_client *c, *next;

	if (m == NULL)
		return;
	for (c = m->clients; c != NULL; c = next) {
		next = c->next;
		if (!c->ending && tok_digest_revoked(h->tok, c->token))
			mjpeg_end(m, c, "its token was revoked");
	}
}

unsigned
mjpeg_stop(struct httpd *h)
{
	struct mjpeg *m = h->mjpeg;
	struct mjpeg_client *c, *next;

	if (m == NULL)
		return 0;
	m->stopping = true;
	for (c = m->clients; c != NULL; c = next) {
		next = c->next;
		mjpeg_end(m, c, "the stage stops");
	}
	/* Joins the worker and every pipeline: no wake-up comes after this. */
	mjpeg_dec_free(m->dec);
	m->dec = NULL;
	return m->open;
}

void
mjpeg_free(struct httpd *h)
{
	struct mjpeg *m = h->mjpeg;

	if (m == NULL)
		return;
	mjpeg_dec_free(m->dec);
	for (int i = 0; i < MJPEG_DEC_SLOTS; i++)
		for (int k = 0; k < MJPEG_DEC_WIDTHS; k++)
			hbuf_unref(m->s[i].w[k].newest);
	free(m);
	h->mjpeg = NULL;
}

void
mjpeg_pack_stats(struct httpd *h, msgpack_packer *pk)
{
	struct mjpeg *m = h->mjpeg;
	struct mjpeg_dec_stats ds = { 0 };

	if (m != NULL && m->dec != NULL)
		mjpeg_dec_stats(m->dec, &ds);
	mp_pack_kv_int(pk, "mjpegClients", m != NULL ? (int64_t)m->streaming : 0);
	mp_pack_kv_int(pk, "mjpegDecoders", (int64_t)ds.decoders);
	mp_pack_kv_int(pk, "mjpegEncoders", (int64_t)ds.encoders);
	mp_pack_kv_int(pk, "mjpegFrames", m != NULL ? (int64_t)m->frames : 0);
	mp_pack_kv_int(pk, "mjpegFramesDropped", m != NULL ? (int64_t)m->dropped : 0);
	mp_pack_kv_int(pk, "mjpegRefused", m != NULL ? (int64_t)m->refused : 0);
}
