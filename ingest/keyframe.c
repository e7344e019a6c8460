/* keyframe: the throttle of keyframe requests. Proctors' requests reach
 * ingest from every relay worker (bus keyframe.request); here they meet, so
 * a sentinel is asked at most once a second: a request within the second
 * after the last one is merged into one sent when the second is over. A
 * sentinel asked that sends no join point within two segment durations is
 * asked again (a low frame rate, or a request it missed). Runs in the loop
 * thread. */
#include <errno.h>
#include <stdlib.h>

#include "ingest.h"
#include "proc.h"

#define KF_INTERVAL_MS 1000

struct ingest_kf {
	int64_t last_ms;     /* the last request sent to the sentinel, monotonic; 0 none */
	bool pending;        /* one more asked for within the second */
	bool waiting;        /* asked, and no keyframe segment seen since */
	int64_t deadline_ms; /* ask again then */
	uint32_t last_dur_ms;
};

int
ingest_kf_init(struct ingest *ing)
{
	ing->kf = calloc(ing->n_slots, sizeof(*ing->kf));
	return ing->kf != NULL ? 0 : -ENOMEM;
}

void
ingest_kf_free(struct ingest *ing)
{
	free(ing->kf);
	ing->kf = NULL;
}

static void
kf_send(struct ingest *ing, uint32_t slot, int64_t now)
{
	struct ingest_kf *k = &ing->kf[slot];
	struct wss_conn *c = ing->by_slot[slot];

	k->last_ms = now;
	k->pending = false;
	k->waiting = false;
	if (c == NULL)
		return; /* offline: its next session starts with a keyframe anyway */
	k->waiting = true;
	k->deadline_ms = now + 2 * (int64_t)(k->last_dur_ms > 0 ? k->last_dur_ms : 1000);
	ingest_reg_keyframe(ing, c);
}

void
ingest_kf_request(struct ingest *ing, uint32_t slot)
{
	int64_t now = proc_mono_ms();
	struct ingest_kf *k;

	if (ing->kf == NULL || slot >= ing->n_slots)
		return;
	k = &ing->kf[slot];
	if (k->last_ms == 0 || now - k->last_ms >= KF_INTERVAL_MS)
		kf_send(ing, slot, now);
	else
		k->pending = true;
}

void
ingest_kf_offline(struct ingest *ing, uint32_t slot)
{
	if (ing->kf == NULL || slot >= ing->n_slots)
		return;
	/* What was asked of the session that ended is not asked of the next one
	 * in the slot, which starts with a join point anyway. The time of the
	 * last request stays: it is still the same sentinel's second. */
	ing->kf[slot].pending = false;
	ing->kf[slot].waiting = false;
}

void
ingest_kf_segment(struct ingest *ing, uint32_t slot, bool keyframe, uint32_t dur_ms)
{
	if (ing->kf == NULL || slot >= ing->n_slots)
		return;
	ing->kf[slot].last_dur_ms = dur_ms;
	if (keyframe)
		ing->kf[slot].waiting = false;
}

void
ingest_kf_tick(struct ingest *ing)
{
	int64_t now = proc_mono_ms();

	for (uint32_t slot = 0; ing->kf != NULL && slot < ing->n_slots; slot++) {
		struct ingest_kf *k = &ing->kf[slot];
		bool again = k->waiting && now >= k->deadline_ms;

		if ((k->pending || again) && now - k->last_ms >= KF_INTERVAL_MS)
			kf_send(ing, slot, now);
	}
}
