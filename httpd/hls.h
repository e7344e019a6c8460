/* hls: GET .../playlist.m3u8, an HLS playlist (fMP4, EXT-X-MAP) of a session. */
#ifndef VIGIL_HTTPD_HLS_H
#define VIGIL_HTTPD_HLS_H

struct httpd;
struct hreq;

void hls_get(struct httpd *h, struct hreq *r);

#endif
