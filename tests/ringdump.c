/* ringdump: prints what the ring holds, one JSON object per line, so that
 * tests can compare it byte for byte (SHA-256) with what sentinels sent.
 *
 *   ringdump NAME                 the sentinel table and every readable segment
 *   ringdump NAME --wait N        first waits (ring_wait) until N segments were written
 *   ringdump NAME --out DIR       also writes each segment to DIR/<slot>-<index>.m4s and
 *                                 each init to DIR/<slot>-init.mp4
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "proc.h"
#include "ring.h"

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
save(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int
main(int argc, char **argv)
{
	const char *out = NULL;
	struct ring_stats rs;
	struct ring *ring;
	uint64_t wait = 0;
	uint8_t *buf, *init;
	int r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		fprintf(stderr, "Usage: ringdump NAME [--wait N] [--out DIR]\n");
		return argc < 2 ? 2 : 0;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--out") == 0)
			out = argv[i + 1];
	}
	r = ring_open(argv[1], false, &ring);
	if (r < 0) {
		fprintf(stderr, "ringdump: ring_open(%s): %s\n", argv[1], strerror(-r));
		return 1;
	}
	ring_get_stats(ring, &rs);
	int64_t deadline = proc_mono_ms() + 60000;
	while (ring_head(ring) < wait && proc_mono_ms() < deadline)
		ring_wait(ring, wait - 1, 1000);
	buf = malloc(rs.max_segment_bytes);
	init = malloc(rs.max_init_bytes);
	for (uint32_t slot = 0; slot < ring_sentinel_slots(ring); slot++) {
		struct ring_sentinel e;
		char id[ID_STR_LEN], session[ID_STR_LEN], sha[65], name[64];

		if (ring_sentinel_get(ring, slot, &e, init, rs.max_init_bytes) < 0 ||
		    id_is_nil(e.id))
			continue;
		id_format(e.id, id);
		id_format(e.session, session);
		sha256_hex(init, e.init_len, sha);
		json_t *j =
			json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:b, s:I, s:i, "
				  "s:I, s:i, s:s}",
				  "kind", "sentinel", "slot", (int)slot, "sentinelId", id,
				  "sessionId", session, "name", e.name, "codec", e.codec, "width",
				  (int)e.width, "height", (int)e.height, "timescale",
				  (int)e.timescale, "online", e.online, "lastSequence",
				  (json_int_t)e.last_sequence, "initGen", (int)e.init_gen,
				  "sessionStart", (json_int_t)e.session_start_ms, "initLen",
				  (int)e.init_len, "initSha256", sha);
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
		if (out != NULL && e.init_len > 0) {
			snprintf(name, sizeof(name), "%u-init.mp4", slot);
			save(out, name, init, e.init_len);
		}
	}
	for (uint64_t i = ring_tail(ring); i < ring_head(ring); i++) {
		struct ring_seg m;
		char session[ID_STR_LEN], sha[65], name[64];

		if (ring_read(ring, i, &m, buf, rs.max_segment_bytes) < 0)
			continue;
		id_format(m.session, session);
		sha256_hex(buf, m.len, sha);
		json_t *j = json_pack("{s:s, s:I, s:i, s:s, s:I, s:I, s:i, s:b, s:i, s:i, s:s}",
				      "kind", "segment", "index", (json_int_t)i, "slot",
				      (int)m.sentinel, "sessionId", session, "sequence",
				      (json_int_t)m.sequence, "startTime", (json_int_t)m.start_ms,
				      "duration", (int)m.duration_ms, "keyframe",
				      (m.flags & RING_SEG_KEYFRAME) != 0, "initGen",
				      (int)m.init_gen, "len", (int)m.len, "sha256", sha);
		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
		if (out != NULL) {
			snprintf(name, sizeof(name), "%u-%llu.m4s", m.sentinel,
				 (unsigned long long)i);
			save(out, name, buf, m.len);
		}
	}
	free(buf);
	free(init);
	ring_close(ring);
	return 0;
}
