/* sentinel_out: a connection's outgoing queue and its writer. Control messages
 * go ahead of waiting media; media beyond SNT_QUEUE_MS drops the oldest waiting
 * media rather than grow without bound when the server is slow. Messages are
 * written in chunks of SNT_CHUNK, one per writeable callback, as fragments of one
 * WebSocket message: the shared blobs are copied into one scratch buffer per
 * write because lws masks the payload in place. Runs in the lws thread. */
#include <stdbool.h>
#include <string.h>

#include "sentinel_net.h"

static int64_t
snt_out_media_ms(const struct snt_msg *m)
{
	return m->duration_ms > 0 ? m->duration_ms : 1000;
}

/* Unlinks and frees the first waiting message of the kind; false when none.
 * The queue is a few messages long: lists are walked, no tail is kept. */
static bool
snt_out_drop_first(struct snt_conn *c, enum snt_msg_kind kind)
{
	struct snt_msg **p = &c->q_head, *m;

	while (*p != NULL && (*p)->kind != kind)
		p = &(*p)->next;
	if (*p == NULL)
		return false;
	m = *p;
	*p = m->next;
	if (m->kind == SNT_MSG_MEDIA)
		c->q_media_ms -= snt_out_media_ms(m);
	snt_msg_free(m);
	return true;
}

void
snt_out_push(struct snt_conn *c, struct snt_msg *m)
{
	struct snt_msg **at = &c->q_head;

	if (m->kind == SNT_MSG_MEDIA) {
		while (c->q_media_ms + snt_out_media_ms(m) > SNT_QUEUE_MS &&
		       snt_out_drop_first(c, SNT_MSG_MEDIA)) {
			c->st.drops++;
			log_debug("%s: server too slow, oldest waiting media dropped", c->name);
		}
		c->q_media_ms += snt_out_media_ms(m);
	}
	/* Control messages pass waiting media; an init keeps its place in line,
	 * since the segments queued after it need it. */
	while (*at != NULL && (m->kind != SNT_MSG_CONTROL || (*at)->kind != SNT_MSG_MEDIA))
		at = &(*at)->next;
	m->next = *at;
	*at = m;
	if (c->wsi != NULL)
		lws_callback_on_writable(c->wsi);
}

void
snt_out_drop_media(struct snt_conn *c)
{
	while (snt_out_drop_first(c, SNT_MSG_MEDIA))
		;
}

void
snt_out_clear(struct snt_conn *c)
{
	struct snt_msg *m;

	while ((m = c->q_head) != NULL) {
		c->q_head = m->next;
		snt_msg_free(m);
	}
	c->q_media_ms = 0;
	snt_msg_free(c->cur);
	c->cur = NULL;
}

int
snt_out_writeable(struct snt_conn *c)
{
	uint8_t *buf = c->net->scratch + LWS_PRE;
	size_t len = 0;
	bool start, end;
	int flags;

	if (c->cur == NULL) {
		c->cur = c->q_head;
		if (c->cur == NULL)
			return 0;
		c->q_head = c->cur->next;
		if (c->cur->kind == SNT_MSG_MEDIA)
			c->q_media_ms -= snt_out_media_ms(c->cur);
		c->cur_part = 0;
		c->cur_off = 0;
		c->cur_started = false;
	}
	/* lws masks what it sends in place, so the shared bytes are copied. */
	while (len < SNT_CHUNK && c->cur_part < c->cur->n_parts) {
		const struct snt_part *p = &c->cur->parts[c->cur_part];
		size_t n = p->len - c->cur_off;

		if (n > SNT_CHUNK - len)
			n = SNT_CHUNK - len;
		memcpy(buf + len, p->p + c->cur_off, n);
		len += n;
		c->cur_off += n;
		if (c->cur_off == p->len) {
			c->cur_part++;
			c->cur_off = 0;
		}
	}
	/* Empty parts left at the end must not cost a frame of their own. */
	while (c->cur_part < c->cur->n_parts && c->cur->parts[c->cur_part].len == 0)
		c->cur_part++;
	start = !c->cur_started;
	end = c->cur_part == c->cur->n_parts;
	flags = lws_write_ws_flags(c->cur->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY, start, end);
	if (lws_write(c->wsi, buf, len, (enum lws_write_protocol)flags) < (int)len) {
		log_warn(0, "%s: write failed", c->name);
		return -1;
	}
	c->cur_started = true;
	if (end) {
		c->st.bytes += c->cur->total;
		if (c->cur->kind == SNT_MSG_MEDIA)
			c->st.segments++;
		log_debug("%s: %s sent (%zu bytes)", c->name, c->cur->type, c->cur->total);
		snt_msg_free(c->cur);
		c->cur = NULL;
	}
	if (c->cur != NULL || c->q_head != NULL)
		lws_callback_on_writable(c->wsi);
	return 0;
}
