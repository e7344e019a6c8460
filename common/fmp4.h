/* fmp4: a strict, allocation-free parser of untrusted fragmented MP4 (ISO BMFF)
 * as sentinels send it: the init segment (ftyp + moov, one H.264 video track)
 * and media segments (moof + mdat pairs). Only box headers and the few fields
 * the server derives are read; sample data in mdat is never touched. */
#ifndef VIGIL_FMP4_H
#define VIGIL_FMP4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on untrusted input. */
#define FMP4_DEPTH_MAX   8       /* box nesting; moov is 1, moov/.../avc1/avcC is 8 */
#define FMP4_BOXES_MAX   16384   /* boxes at the top level and in containers */
#define FMP4_SAMPLES_MAX 1000000 /* samples of the video track in one segment */
#define FMP4_TFDT_MAX    64      /* tfdt boxes of the video track recorded per segment */

/* Box sizes, for both parsers: a 32-bit size >= 8 or, when it is 1, a 64-bit
 * largesize >= 16, within the parent (or the buffer). Size 0 ("to the end")
 * is accepted for a top-level box only, where it is the last box by
 * definition (live muxers write mdat that way); inside a container it is
 * refused. Known containers are walked wherever they appear, so that nesting
 * beyond FMP4_DEPTH_MAX is refused even in boxes the parser has no use for.
 *
 * Every function returns 0 or -EBADMSG with one line in err (when errlen > 0)
 * naming the box path, e.g. "moov: box size 4294967295 past the end of the
 * buffer", "moov/trak/mdia/minf/stbl/stsd/avc1: missing avcC". ret is
 * untouched on failure. */

struct fmp4_init {
	char codec[64];         /* RFC 6381, "avc1.64001f": entry type, avcC profile,
	                          * compatibility, level (lower-case hex) */
	uint32_t width, height; /* the avc1 sample entry's, else tkhd's */
	uint32_t timescale;     /* mdhd of the video track, > 0 */
	uint32_t track_id;      /* tkhd, > 0 */
	/* trex of that track (moov/mvex), the last resort of the segment parser. */
	uint32_t default_sample_duration, default_sample_size, default_sample_flags;
};

/* Requires ftyp first, then one moov; other top-level boxes (free, skip, uuid,
 * meta...) are ignored, moof and mdat refused. The video track is the first
 * trak with an hdlr 'vide' whose first sample entry is avc1 or avc3 with an
 * avcC; other traks (audio...) are ignored. moov must hold mvex with a trex
 * for that track: without it the file is not fragmented. */
int fmp4_parse_init(const void *buf, size_t len, struct fmp4_init *ret, char *err, size_t errlen);

struct fmp4_seg {
	uint32_t n_fragments; /* moof+mdat pairs */
	uint32_t n_samples;   /* of the init's track, >= 1 */
	uint64_t decode_time; /* tfdt of the first fragment, timescale units */
	bool has_decode_time;
	uint64_t duration;    /* sum of sample durations, timescale units */
	uint32_t duration_ms; /* duration in ms, rounded to the nearest */
	bool keyframe;        /* the first sample is a join point: sync
	                          * (sample_is_non_sync_sample 0) and not marked as
	                          * depending on other samples (sample_depends_on != 1) */
	/* Where the video track's tfdt values are in buf (for fmp4_rebase): the
	 * offset of each baseMediaDecodeTime field and its width (version 0: 32
	 * bits, 1: 64). More than FMP4_TFDT_MAX of them: n_tfdt is the count and
	 * fmp4_rebase refuses the segment. */
	uint32_t n_tfdt;
	struct {
		uint32_t off;
		uint8_t version;
	} tfdt[FMP4_TFDT_MAX];
};

/* buf holds one or more moof+mdat pairs, an mdat right after its moof; styp,
 * sidx, ssix, prft, emsg, free and skip may come between pairs. Each moof has
 * an mfhd and at least one traf for init->track_id (trafs of other tracks are
 * skipped); each of those trafs has a tfhd, an optional tfdt and truns.
 * Sample durations, sizes and flags come from the trun's per-sample fields,
 * else (flags: first_sample_flags for the first sample) the tfhd defaults,
 * else the init's trex defaults. Sample data must lie within the mdat that
 * follows the moof, addressed from the moof (default-base-is-moof or the
 * first traf's implicit base); tfhd base-data-offset, an absolute file
 * offset that means nothing in a segment sent on its own, is refused. */
int fmp4_parse_segment(const void *buf, size_t len, const struct fmp4_init *init,
		       struct fmp4_seg *ret, char *err, size_t errlen);

/* Moves the segment parsed into seg (in buf) back by base timescale units:
 * every tfdt of the video track becomes its value minus base (0 when below),
 * so that an export of a later part of a session starts at time 0. The
 * length and every other byte stay. -E2BIG over FMP4_TFDT_MAX tfdts,
 * -ERANGE when a version 0 tfdt cannot hold the result (it cannot: the value
 * only shrinks; kept for the bounds check). */
int fmp4_rebase(void *buf, size_t len, const struct fmp4_seg *seg, uint64_t base);

#endif
