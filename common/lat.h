/* lat: a latency histogram of constant size and about 6% resolution (eight
 * buckets per octave above 16 us), cumulative so that a reader of two
 * snapshots gets the exact distribution between them (bucket precision).
 * Used for the relay's fan-out latency, reported in its heartbeats. */
#ifndef VIGIL_LAT_H
#define VIGIL_LAT_H

#include <stdint.h>

#include <msgpack.h>

#define LAT_BUCKETS 232 /* up to 2^31 us */

struct lat {
	uint64_t count[LAT_BUCKETS];
	uint64_t n;
	int64_t max_us;
};

void lat_add(struct lat *l, int64_t us);
/* The lowest value bucket k holds. */
int64_t lat_bucket_low(unsigned k);
/* The upper bound of the bucket that holds the p-quantile (0 < p <= 1); 0 when empty. */
int64_t lat_pct(const struct lat *l, double p);
/* key: [[low_us, count], ...] for the buckets that are not empty. */
void lat_pack(const struct lat *l, msgpack_packer *pk, const char *key);

#endif
