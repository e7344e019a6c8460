/* bench_snapshot: wall time of snapshot_jpeg on the tests/data/fmp4 fixtures
 * (160x120) or on an init and a keyframe segment given as files: the first call
 * (GStreamer's registry and plugins load) and then 20 more. Bounded: 21 calls.
 * Run: build/tests/bench_snapshot [INIT SEGMENT], or meson test -C build --suite bench.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshot.h"

#define RUNS 20

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* malloc'ed contents of path, or NULL with a message. */
static unsigned char *
load(const char *path, size_t *ret_len)
{
	unsigned char *data = NULL;
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "bench_snapshot: cannot read %s\n", path);
		goto out;
	}
	data = malloc((size_t)n);
	if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "bench_snapshot: cannot read %s\n", path);
		free(data);
		data = NULL;
		goto out;
	}
	*ret_len = (size_t)n;
out:
	if (f != NULL)
		fclose(f);
	return data;
}

int
main(int argc, char **argv)
{
	char init_path[4096], seg_path[4096];
	const char *dir = getenv("VIGIL_SOURCE_DIR");
	unsigned char *init = NULL, *seg = NULL, *jpeg;
	size_t init_len = 0, seg_len = 0, jpeg_len = 0;
	int64_t t, first, ns[RUNS];
	int i, w = 0, h = 0, r, status = 1;

	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		printf("usage: bench_snapshot [INIT SEGMENT]\n"
		       "Times snapshot_jpeg: one first call, then %d more. Without files, the\n"
		       "fixtures in $VIGIL_SOURCE_DIR/tests/data/fmp4 (default: .).\n",
		       RUNS);
		return 0;
	}
	if (argc != 1 && argc != 3) {
		fprintf(stderr, "usage: bench_snapshot [INIT SEGMENT]\n");
		return 2;
	}
	snprintf(init_path, sizeof(init_path), "%s", argc == 3 ? argv[1] : "");
	snprintf(seg_path, sizeof(seg_path), "%s", argc == 3 ? argv[2] : "");
	if (argc == 1) {
		snprintf(init_path, sizeof(init_path), "%s/tests/data/fmp4/init.mp4",
			 dir != NULL ? dir : ".");
		snprintf(seg_path, sizeof(seg_path), "%s/tests/data/fmp4/seg0.m4s",
			 dir != NULL ? dir : ".");
	}
	init = load(init_path, &init_len);
	seg = load(seg_path, &seg_len);
	if (init == NULL || seg == NULL)
		goto out;

	t = mono_ns();
	r = snapshot_jpeg(init, init_len, seg, seg_len, &jpeg, &jpeg_len, &w, &h);
	first = mono_ns() - t;
	if (r < 0) {
		fprintf(stderr, "bench_snapshot: snapshot_jpeg: %s\n", strerror(-r));
		goto out;
	}
	free(jpeg);
	for (i = 0; i < RUNS; i++) {
		t = mono_ns();
		r = snapshot_jpeg(init, init_len, seg, seg_len, &jpeg, &jpeg_len, NULL, NULL);
		ns[i] = mono_ns() - t;
		if (r < 0) {
			fprintf(stderr, "bench_snapshot: snapshot_jpeg: %s\n", strerror(-r));
			goto out;
		}
		free(jpeg);
	}
	qsort(ns, RUNS, sizeof(ns[0]), cmp_i64);
	printf("snapshot %dx%d, segment %zu bytes -> JPEG %zu bytes\n", w, h, seg_len, jpeg_len);
	printf("first call %.1f ms; next %d: min %.1f ms, median %.1f ms, max %.1f ms\n",
	       first / 1e6, RUNS, ns[0] / 1e6, ns[RUNS / 2] / 1e6, ns[RUNS - 1] / 1e6);
	status = 0;
out:
	free(init);
	free(seg);
	return status;
}
