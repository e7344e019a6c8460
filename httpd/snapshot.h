/* snapshot: one JPEG picture from a sentinel's stream, for GET .../snapshot.jpg.
 * Decodes the first frame of a keyframe media segment (moof+mdat, H.264) with
 * its init segment (ftyp+moov) through GStreamer and encodes it as JPEG at the
 * video's own size. Caching and freshness are the caller's. */
#ifndef VIGIL_SNAPSHOT_H
#define VIGIL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_INPUT_MAX  (64u << 20) /* init + segment bytes */
#define SNAPSHOT_DIM_MAX    4096        /* width and height, in pixels */
#define SNAPSHOT_JPEG_MAX   (16u << 20) /* bytes of the JPEG produced */
#define SNAPSHOT_TIMEOUT_MS 2000        /* pipeline start to first picture */

/* init is an init segment, seg a media segment of the same stream whose first
 * sample is a keyframe (a join point, as ring_find_join gives). Synchronous:
 * runs and tears down its own pipeline within SNAPSHOT_TIMEOUT_MS (plus the
 * teardown), so call it from a thread that may block that long. Thread-safe.
 *
 * On success returns 0, *ret_jpeg is a malloc'ed JFIF image (free() it) of
 * *ret_len bytes, and *ret_width x *ret_height is the decoded picture's size
 * (ret_width and ret_height may be NULL). On failure the ret_* are untouched:
 *   -EINVAL    a NULL pointer, or init or seg empty
 *   -EFBIG     init + seg above SNAPSHOT_INPUT_MAX, a picture wider or higher
 *              than SNAPSHOT_DIM_MAX, or a JPEG above SNAPSHOT_JPEG_MAX
 *   -EBADMSG   not fMP4 H.264 (common/fmp4's parsers refuse it), or the
 *              demuxer or decoder refused the stream
 *   -ENOENT    seg does not start with a keyframe: try a later segment
 *   -ENODATA   the stream ended without a picture the decoder could produce
 *   -ETIMEDOUT no picture within SNAPSHOT_TIMEOUT_MS
 *   -ENOPKG    a GStreamer element is missing (avdec_h264: gstreamer1.0-libav)
 *   -ENOMEM, -EIO (GStreamer would not initialise or start the pipeline)
 * The reason is logged at debug level only: the stage logs the failure. */
int snapshot_jpeg(const void *init, size_t init_len, const void *seg, size_t seg_len,
		  unsigned char **ret_jpeg, size_t *ret_len, int *ret_width, int *ret_height);
/* The same, scaled down to width pixels (snapshot_scale; 0 or a width at or
 * above the video's: its own size), for thumbnails. -EINVAL for width < 0. */
int snapshot_jpeg_scaled(const void *init, size_t init_len, const void *seg, size_t seg_len,
			 int width, unsigned char **ret_jpeg, size_t *ret_len, int *ret_width,
			 int *ret_height);
/* The size a w x h picture is scaled to for a width of want: the aspect ratio
 * kept, the height rounded to even (at least 2), never enlarged (want 0 or at
 * least w gives w x h). Pure; live.mjpeg's widths and the thumbnails' follow it. */
static inline void
snapshot_scale(int w, int h, int want, int *ret_w, int *ret_h)
{
	if (want > 0 && want < w) {
		h = (int)(((int64_t)h * want + w / 2) / w + 1) & ~1;
		w = want;
		if (h < 2)
			h = 2;
	}
	*ret_w = w;
	*ret_h = h;
}

#endif
