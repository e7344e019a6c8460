/* fuzz_fmp4: libFuzzer target for the fMP4 parser. Each input is parsed as an
 * init segment and as a media segment, against the fixture's init (trex
 * defaults 0) and against one with every trex default set, so that both the
 * per-sample and the default paths are reached. Any result but 0 or -EBADMSG
 * with a one-line reason, or an inconsistent success, is a crash. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmp4.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fmp4_init inits[2];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static uint8_t buf[1 << 16];
	char err[256] = "";
	FILE *f = fopen(FUZZ_FMP4_INIT, "rb");
	size_t n;

	if (f == NULL) {
		perror(FUZZ_FMP4_INIT);
		exit(2);
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (fmp4_parse_init(buf, n, &inits[0], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", FUZZ_FMP4_INIT, err);
		exit(2);
	}
	inits[1] = inits[0];
	inits[1].default_sample_duration = 1001;
	inits[1].default_sample_size = 7;
	inits[1].default_sample_flags = 0x01010000;
	return 0;
}

static void
check_err(int r, const char *err)
{
	if (r != -EBADMSG || err[0] == '\0' || strchr(err, '\n') != NULL)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fmp4_init init;
	struct fmp4_seg seg;
	char err[256];
	int r;

	err[0] = '\0';
	r = fmp4_parse_init(data, size, &init, err, sizeof(err));
	if (r == 0 && (init.timescale == 0 || init.track_id == 0 || init.width == 0 ||
		       strncmp(init.codec, "avc", 3) != 0))
		__builtin_trap();
	if (r != 0)
		check_err(r, err);
	for (int i = 0; i < 2; i++) {
		err[0] = '\0';
		r = fmp4_parse_segment(data, size, &inits[i], &seg, err, sizeof(err));
		if (r == 0 && (seg.n_fragments == 0 || seg.n_samples == 0 ||
			       seg.n_samples > FMP4_SAMPLES_MAX))
			__builtin_trap();
		if (r != 0)
			check_err(r, err);
	}
	return 0;
}
