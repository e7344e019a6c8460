/* queue: what each subscription has waiting in its proctor's send queue, in
 * media time and in bytes, counted where buffers are queued and where they
 * leave it (sent, or dropped with a skip or a close), and the bound
 * (limits.proctor_queue_seconds) past which a slow proctor is skipped
 * forward. The one place that counts; feed.c decides what to queue. Runs in
 * the loop thread. */
#include "relay.h"

int
relay_conn_queue(struct wss_conn *c, struct wss_buf *b, struct relay_sub *sub, int64_t seq,
		 uint32_t dur_ms, bool catchup, int64_t stamp_us)
{
	struct wss_tx_info info = { .owner = sub,
				    .seq = seq,
				    .weight = dur_ms,
				    .bytes = wss_buf_len(b),
				    .flags = catchup,
				    .stamp_us = stamp_us };
	int r = wss_conn_queue(c, b, &info);

	if (r < 0)
		return r;
	if (catchup) {
		sub->catchup_ms += dur_ms;
	} else {
		sub->queued_ms += dur_ms;
		sub->queued_bytes += info.bytes;
	}
	return 0;
}

void
relay_queue_done(struct relay_sub *sub, const struct wss_tx_info *tx)
{
	if (tx->flags) {
		sub->catchup_ms -= tx->weight;
	} else {
		sub->queued_ms -= tx->weight;
		sub->queued_bytes -= tx->bytes;
	}
}

bool
relay_queue_over(const struct relay *rl, const struct relay_sub *sub)
{
	int64_t limit_ms = rl->cfg->proctor_queue_seconds * 1000;
	/* Durations are the sentinel's word: the bytes are bounded too. */
	uint64_t limit_bytes =
		(uint64_t)(rl->cfg->proctor_queue_seconds + 1) * rl->cfg->max_message_bytes;

	return sub->queued_ms > limit_ms || sub->queued_bytes > limit_bytes;
}
