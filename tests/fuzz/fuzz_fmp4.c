/* fuzz_fmp4: libFuzzer target for the fMP4 parser and editor. Each input is
 * parsed as an init segment and as a media segment, against the fixture's
 * init (trex defaults 0) and against one with every trex default set, so that
 * both the per-sample and the default paths are reached. Any result but 0 or
 * -EBADMSG with a one-line reason, or an inconsistent success, is a crash.
 * What parses is also edited as an export does (fmp4_edit.c): an init merged
 * with the fixture's must parse with one more sample entry, and a segment
 * remapped to a later sample entry and moved in time must parse again with
 * the same samples and duration. */
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

/* own's segment into an export whose init is exp's: it parses against
 * exp with the same samples, and the length is what the measure said. */
static void
check_remap(const uint8_t *data, size_t size, const struct fmp4_init *own,
	    const struct fmp4_init *exp, const struct fmp4_seg *seg)
{
	struct fmp4_remap m = { .own = own, .export = exp, .sample_desc = 2, .rebase = 1000 };
	struct fmp4_seg again;
	ssize_t n = fmp4_remap(data, size, &m, NULL, 0);
	uint8_t *out;

	if (n == -ERANGE)
		return; /* a data offset or size that no longer fits its field */
	if (n < (ssize_t)size)
		__builtin_trap();
	out = malloc((size_t)n);
	if (out == NULL)
		return;
	if (fmp4_remap(data, size, &m, out, (size_t)n) != n ||
	    fmp4_parse_segment(out, (size_t)n, exp, &again, NULL, 0) != 0 ||
	    again.n_samples != seg->n_samples || again.duration != seg->duration ||
	    again.keyframe != seg->keyframe ||
	    (again.has_decode_time && again.decode_time > seg->decode_time))
		__builtin_trap();
	free(out);
}

static void
check_merge(const uint8_t *data, size_t size, const struct fmp4_init *init)
{
	struct fmp4_src v[2] = { { data, size, init }, { data, size, init } };
	struct fmp4_init merged;
	ssize_t n = fmp4_merge_inits(v, 2, NULL, 0);
	uint8_t *out;

	if (n == -EFBIG)
		return;
	if (n != (ssize_t)(size + init->entry_len))
		__builtin_trap();
	out = malloc((size_t)n);
	if (out == NULL)
		return;
	if (fmp4_merge_inits(v, 2, out, (size_t)n) != n ||
	    fmp4_parse_init(out, (size_t)n, &merged, NULL, 0) != 0 ||
	    merged.entries != init->entries + 1 || merged.timescale != init->timescale)
		__builtin_trap();
	free(out);
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
		if (r == 0)
			check_remap(data, size, &inits[i], &inits[1 - i], &seg);
	}
	if (fmp4_parse_init(data, size, &init, NULL, 0) == 0)
		check_merge(data, size, &init);
	return 0;
}
