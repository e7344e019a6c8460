/* lat: see lat.h. Bucket k < 16 holds exactly k us; above, the octave
 * [2^e, 2^(e+1)) is split into eight equal buckets. */
#include "lat.h"

#include "mp.h"

static unsigned
lat_bucket(int64_t us)
{
	uint64_t v = us < 0 ? 0 : (uint64_t)us;
	unsigned e, k;

	if (v < 16)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	k = 16 + (e - 4) * 8 + (unsigned)((v >> (e - 3)) & 7);
	return k < LAT_BUCKETS ? k : LAT_BUCKETS - 1;
}

int64_t
lat_bucket_low(unsigned k)
{
	unsigned e, m;

	if (k < 16)
		return k;
	e = (k - 16) / 8 + 4;
	m = (k - 16) % 8;
	return (int64_t)(8 + m) << (e - 3);
}

void
lat_add(struct lat *l, int64_t us)
{
	l->count[lat_bucket(us)]++;
	l->n++;
	if (us > l->max_us)
		l->max_us = us;
}

int64_t
lat_pct(const struct lat *l, double p)
{
	uint64_t want, seen = 0;

	if (l->n == 0)
		return 0;
	want = (uint64_t)(p * (double)l->n + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned k = 0; k < LAT_BUCKETS; k++) {
		seen += l->count[k];
		if (seen >= want)
			return k + 1 < LAT_BUCKETS ? lat_bucket_low(k + 1) : l->max_us;
	}
	return l->max_us;
}

void
lat_pack(const struct lat *l, msgpack_packer *pk, const char *key)
{
	unsigned used = 0;

	for (unsigned k = 0; k < LAT_BUCKETS; k++)
		used += l->count[k] != 0;
	mp_pack_str(pk, key);
	msgpack_pack_array(pk, used);
	for (unsigned k = 0; k < LAT_BUCKETS; k++) {
		if (l->count[k] == 0)
			continue;
		msgpack_pack_array(pk, 2);
		msgpack_pack_int64(pk, lat_bucket_low(k));
		msgpack_pack_uint64(pk, l->count[k]);
	}
}
