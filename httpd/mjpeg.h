/* mjpeg: GET /api/sentinels/{sentinelId}/live.mjpeg (PROTOCOL.md section 6),
 * a sentinel's live picture as multipart/x-mixed-replace JPEG parts for
 * clients without Media Source Extensions: an <img>, a wall display, VLC,
 * ffmpeg. ?fps= (0.1 to 5, default 1) and ?width= (even, 16 to the video's
 * width; default the video's own).
 *
 * One decoder per sentinel however many clients watch (mjpeg_dec.h), one
 * encoder per distinct width, stopped when the last client leaves. Each
 * client holds only the newest JPEG that is due for it (a reference to the
 * shared buffer, never a copy, never a queue); a client whose socket is full
 * skips frames, and one that takes nothing for timeouts.idle is dropped.
 *
 * The body ends with the connection (HTTP/1.1, Connection: close, no length).
 * Each part is "--B\r\nContent-Type: image/jpeg\r\nContent-Length: N\r\n\r\n"
 * JPEG "\r\n"; the delimiter after a JPEG goes out with it, since browsers
 * show a part only once the next delimiter arrives. The stream ends with
 * "--B--\r\n" when the sentinel stays offline past MJPEG_GRACE_MS, its
 * session is deleted, the token is revoked or expires, or the stage stops.
 *
 * Loop thread; the hooks below are how server.c and request.c hand over a
 * connection that streams. */
#ifndef VIGIL_MJPEG_H
#define VIGIL_MJPEG_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "httpd.h"

#define MJPEG_CLIENTS_MAX   64    /* streams open at once, every sentinel */
#define MJPEG_FPS_DEFAULT   1000  /* thousandths of a frame per second */
#define MJPEG_FPS_MIN       100   /* 0.1 */
#define MJPEG_FPS_MAX       5000  /* 5, PROTOCOL.md */
#define MJPEG_WIDTH_MIN     16    /* pixels; even, at most the video's */
#define MJPEG_GRACE_MS      10000 /* offline this long: the stream ends */
#define MJPEG_RETRY_AFTER_S 5     /* on a 503 for a cap */
#define MJPEG_BOUNDARY      "vigil-mjpeg-frame"
#define MJPEG_STATS_N       6 /* map entries of mjpeg_pack_stats */

struct hreq;

/* Route handler: 400, 404, 503, or the stream's headers then its parts. */
void mjpeg_get(struct httpd *h, struct hreq *r);

/* Hooks for a connection whose r->mjpeg is set. */
void mjpeg_writable(struct httpd *h, struct hreq *r);         /* srv's queue is empty */
void mjpeg_data(struct httpd *h, struct hreq *r, size_t len); /* 0: the client left */
void mjpeg_sent(struct httpd *h, struct hreq *r, void *tag, bool written);
void mjpeg_closed(struct httpd *h, struct hreq *r);

/* New JPEGs from the decoders (the loop's wake-up). */
void mjpeg_service(struct httpd *h);
/* Every tick: sentinels offline or in a new session, deleted sessions,
 * expired tokens, clients that stopped reading. */
void mjpeg_tick(struct httpd *h);
/* The streams whose token h->tok now holds revoked end. */
void mjpeg_revoked(struct httpd *h);
/* The stage stops: every stream ends cleanly and the decoders stop (joined).
 * Returns how many stream connections are still open (flushing their end). */
unsigned mjpeg_stop(struct httpd *h);
void mjpeg_free(struct httpd *h);
/* MJPEG_STATS_N entries for the heartbeat's stats map. */
void mjpeg_pack_stats(struct httpd *h, msgpack_packer *pk);

#endif
