/* fmp4: a strict, allocation-free parser of untrusted fragmented MP4 (ISO BMFF)
 * as sentinels send it: the init segment (ftyp + moov, one H.264 video track)
 * and media segments (moof + mdat pairs). Only box headers and the few fields
 * the server derives are read; sample data in mdat is never touched. */
#ifndef VIGIL_FMP4_H
#define VIGIL_FMP4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits on untrusted input. */
#define FMP4_DEPTH_MAX   8       /* box nesting; moov is 1, moov/.../avc1/avcC is 8 */
#define FMP4_BOXES_MAX   16384   /* boxes at the top level and in containers */
#define FMP4_SAMPLES_MAX 1000000 /* samples of the video track in one segment */

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
	/* Where the video track's sample description lies in the buffer (for
	 * fmp4_merge_inits): the headers of moov, trak, mdia, minf, stbl and
	 * stsd, in that order; stsd's entry count; the sample entry parsed. */
	uint32_t path_off[6];
	uint32_t entries;
	uint32_t entry_off, entry_len;
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

/* ---- fmp4_edit.c: one playable file out of a session's parts ----------- *
 *
 * A session's export is one init and its segments. When the sentinel sent a
 * new init midway (new encoder settings), the export's init is the first one
 * with the sample entry of every later one appended to its stsd, and each
 * later segment names its own entry in its tfhd (sample_description_index);
 * an export of a later part starts at time 0. Both functions take buffers
 * that the parsers above accepted, and return the output's length, writing
 * it to out when out is not NULL (size at least that), else -errno. */

/* One parsed init and its bytes. */
struct fmp4_src {
	const void *buf;
	size_t len;
	const struct fmp4_init *init;
};

/* v[0]'s init with the sample entries of v[1..n) appended: the entry of v[i]
 * is then number v[0].init->entries + i (1-based). -EDOM when a timescale
 * differs from v[0]'s (fragments would have to be rescaled), -EFBIG, -ENOBUFS. */
ssize_t fmp4_merge_inits(const struct fmp4_src *v, size_t n, void *out, size_t size);

/* How a segment enters an export. */
struct fmp4_remap {
	const struct fmp4_init *own;    /* the init the segment was sent after */
	const struct fmp4_init *export; /* the export's init (the merge's first) */
	uint32_t sample_desc;           /* its entry in the export's stsd; 0: leave it */
	uint64_t rebase;                /* tfdt values move back by this (0 at most) */
};

/* The segment buf (whole, as fmp4_parse_segment takes it) as the export
 * carries it: in each traf of the video track, the tfdt moved back, the
 * track_ID the export's, the tfhd naming sample_desc and carrying the own
 * init's trex defaults where they differ from the export's; box sizes and
 * trun data offsets follow; a sidx, whose sizes no longer hold, becomes a
 * free box. Only the tfhd grows, so the mdat and its samples are copied
 * unchanged. -EBADMSG when buf does not parse against own, -ERANGE when a
 * size or offset no longer fits its field, -ENOBUFS. */
ssize_t fmp4_remap(const void *buf, size_t len, const struct fmp4_remap *m, void *out, size_t size);

#endif
