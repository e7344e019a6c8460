/* thumb_pick: which segment a thumbnail slot shows (thumb.h). Pure functions
 * over a session's segment list; a binary search finds a slot's segment, so
 * listing every slot of a session of hours costs milliseconds. */
#include <errno.h>
#include <stdbool.h>

#include "thumb.h"

static int64_t
seg_end(const struct ar_seg *g)
{
	return g->start_ms + (int64_t)g->duration_ms;
}

/* Segment i and i + 1 follow each other without a gap. */
static bool
joined(const struct ar_seg *v, size_t i)
{
	return v[i + 1].start_ms - seg_end(&v[i]) < THUMB_GAP_MS;
}

/* The last segment that starts at or before t; n when none does. */
static size_t
last_at_or_before(const struct ar_seg *v, size_t n, int64_t t)
{
	size_t lo = 0, hi = n; /* the answer is lo - 1 once lo == hi */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].start_ms <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? n : lo - 1;
}

int64_t
thumb_count(const struct ar_seg *v, size_t n)
{
	int64_t span;

	if (n == 0)
		return 0;
	span = seg_end(&v[n - 1]) - v[0].start_ms;
	return span <= 0 ? 1 : (span + THUMB_EVERY_MS - 1) / THUMB_EVERY_MS;
}

int64_t
thumb_at(const struct ar_seg *v, int64_t slot)
{
	return v[0].start_ms + slot * THUMB_EVERY_MS;
}

int
thumb_pick(const struct ar_seg *v, size_t n, int64_t slot, size_t *ret_index,
	   struct thumb_gap *ret_gap)
{
	int64_t t;
	size_t i, best = n;

	if (slot < 0 || slot >= thumb_count(v, n))
		return -ERANGE;
	t = thumb_at(v, slot);
	i = last_at_or_before(v, n, t); /* found: t >= v[0].start_ms */
	if (t >= seg_end(&v[i]) && (i + 1 == n || !joined(v, i))) {
		if (ret_gap != NULL)
			*ret_gap = (struct thumb_gap){ seg_end(&v[i]), i + 1 < n ? v[i + 1].start_ms
										 : seg_end(&v[i]) };
		return -ENOENT;
	}
	/* The join point at or before t, then the first one after it, each
	 * within the run of segments that holds t. */
	for (size_t j = i;; j--) {
		if (v[j].keyframe) {
			best = j;
			break;
		}
		if (j == 0 || !joined(v, j - 1))
			break;
	}
	for (size_t j = i + 1; j < n && joined(v, j - 1); j++) {
		if (!v[j].keyframe)
			continue;
		if (best == n || v[j].start_ms - t < t - v[best].start_ms)
			best = j;
		break;
	}
	if (best == n)
		return -ENODATA;
	*ret_index = best;
	return 0;
}

size_t
thumb_gaps(const struct ar_seg *v, size_t n, struct thumb_gap *ret, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i + 1 < n; i++) {
		if (joined(v, i))
			continue;
		if (k < max)
			ret[k] = (struct thumb_gap){ seg_end(&v[i]), v[i + 1].start_ms };
		k++;
	}
	return k;
}
