/* srv_fwd: the client a trusted reverse proxy names in a request head
 * (X-Forwarded-For, X-Real-IP), which then stands for the connection in logs,
 * the audit log and the per-address cap. Only a peer listed in
 * trusted_proxies is believed: anyone can send the headers.
 *
 * nginx's $proxy_add_x_forwarded_for appends the address it saw to whatever
 * the client sent, so the rightmost entry is the one the proxy vouches for;
 * entries further left come from the client (or from proxies before it) and
 * are believed only while each entry to their right is a trusted proxy (what
 * is left of the client's entry is never read). A header sent twice, or an
 * entry read that is not an address, is not believed at all. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "http1.h"
#include "srv_internal.h"

/* One address, as a 16-byte key (IPv4 v4-mapped). */
static bool
srv_fwd_addr(const char *s, size_t len, uint8_t key[16])
{
	char text[INET6_ADDRSTRLEN];

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(text))
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(key, 0, 16);
	if (inet_pton(AF_INET, text, key + 12) == 1) {
		key[10] = key[11] = 0xff;
		return true;
	}
	return inet_pton(AF_INET6, text, key) == 1;
}

int
srv_fwd_pick(const struct cfg_net *proxies, size_t n, const char *xff, unsigned xff_n,
	     const char *real_ip, uint8_t ret_key[16])
{
	uint8_t key[16], pick[16];
	const char *end, *start;
	bool any = false;

	if (xff != NULL && xff_n == 1) {
		/* Right to left: the first address that is not a trusted proxy is
		 * the client; if all are, the leftmost. */
		for (end = xff + strlen(xff);; end = start - 1) {
			for (start = end; start > xff && start[-1] != ','; start--)
				;
			if (!srv_fwd_addr(start, (size_t)(end - start), key)) {
				any = false;
				break;
			}
			memcpy(pick, key, 16);
			any = true;
			if (!cfg_net_match(proxies, n, key) || start == xff)
				break;
		}
		if (any) {
			memcpy(ret_key, pick, 16);
			return 1;
		}
	}
	if (real_ip != NULL && srv_fwd_addr(real_ip, strlen(real_ip), key)) {
		memcpy(ret_key, key, 16);
		return 1;
	}
	return 0;
}

bool
srv_conn_proxied(const struct srv_conn *c)
{
	return c->via_proxy && c->named;
}

int
srv_conn_forwarded(struct srv_conn *c, const struct http1 *h)
{
	uint8_t key[16];
	const char *real_ip = http1_header(h, "x-real-ip");

	if (!c->via_proxy)
		return 0;
	if (http1_header_count(h, "x-real-ip") != 1)
		real_ip = NULL;
	if (srv_fwd_pick(c->s->proxies, c->s->n_proxies, http1_header(h, "x-forwarded-for"),
			 http1_header_count(h, "x-forwarded-for"), real_ip, key) == 0)
		return srv_conn_client(c, NULL);
	return srv_conn_client(c, key);
}
