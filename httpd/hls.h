/* hls: GET .../playlist.m3u8, an HLS playlist (fMP4, EXT-X-MAP) of a session. */
#ifndef VIGIL_HTTPD_HLS_H
#define VIGIL_HTTPD_HLS_H

struct httpd;
struct hreq;

/* A playlist token in a playlist's links (docs/httpd.md, "Playlist tokens")
 * expires this long after the playlist's whole duration has been played from
 * the moment it was fetched: an ended session's playlist is played once,
 * with pauses and seeks; a live one goes on growing while the player follows
 * it (an exam lasts a few hours), and is fetched again with the caller's
 * token after that. */
#define HLS_CAP_MARGIN_ENDED_S (60 * 60)
#define HLS_CAP_MARGIN_LIVE_S  (6 * 60 * 60)

void hls_get(struct httpd *h, struct hreq *r);

#endif
