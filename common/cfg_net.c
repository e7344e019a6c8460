/* cfg_net: trusted_proxies, the addresses (or networks) whose requests may
 * name the client they forward (X-Forwarded-For, X-Real-IP): a list of IPv4 or
 * IPv6 addresses, each optionally with a /prefix. IPv4 is kept as v4-mapped
 * IPv6, as srv keys its peers, so that one comparison serves both. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cfg_internal.h"

int
cfg_parse_net(const char *s, struct cfg_net *ret_net)
{
	struct cfg_net net = { 0 };
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/'), *end;
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits = 0;
	int64_t b;
	int max;

	if (len == 0 || len >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, net.addr + 12) == 1) {
		net.addr[10] = net.addr[11] = 0xff;
		max = 32;
	} else if (inet_pton(AF_INET6, host, net.addr) == 1) {
		max = 128;
	} else {
		return -EINVAL;
	}
	bits = (uint64_t)max;
	if (slash) {
		end = slash + 1;
		if (*end < '0' || *end > '9' || (end[0] == '0' && end[1] != '\0') ||
		    cfg_parse_int(end, &b) < 0 || b > max)
			return -EINVAL;
		bits = (uint64_t)b;
	}
	net.bits = (uint8_t)(bits + (max == 32 ? 96 : 0));
	/* Host bits set under the prefix ("10.0.0.1/8") are a typo more often than not. */
	for (unsigned i = net.bits; i < 128; i++)
		if (net.addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	*ret_net = net;
	return 0;
}

bool
cfg_net_match(const struct cfg_net *nets, size_t n, const uint8_t addr[16])
{
	for (size_t i = 0; i < n; i++) {
		unsigned full = nets[i].bits / 8, rest = nets[i].bits % 8;

		if (memcmp(nets[i].addr, addr, full) != 0)
			continue;
		if (rest == 0 || ((nets[i].addr[full] ^ addr[full]) & (0xff00 >> rest)) == 0)
			return true;
	}
	return false;
}

void
cfg_fmt_net(char *buf, size_t size, const struct cfg_net *net)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	char host[INET6_ADDRSTRLEN] = "?";
	bool v4 = memcmp(net->addr, mapped, 12) == 0 && net->bits >= 96;
	unsigned bits = v4 ? net->bits - 96u : net->bits;

	inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? net->addr + 12 : net->addr, host, sizeof(host));
	if (bits == (v4 ? 32u : 128u))
		snprintf(buf, size, "%s", host);
	else
		snprintf(buf, size, "%s/%u", host, bits);
}

int
cfg_walk_nets(struct cfg_ctx *ctx, yaml_node_t *node, const char *key)
{
	char item_key[CFG_KEY_MAX], found[CFG_FOUND_MAX];
	struct cfg *cfg = ctx->cfg;
	yaml_node_item_t *item;
	yaml_node_t *entry;
	size_t n;

	if (cfg_is_null(node)) {
		cfg->n_trusted_proxies = 0;
		return 0;
	}
	if (node->type != YAML_SEQUENCE_NODE)
		return cfg_fail(ctx, node->start_mark, key,
				"expected a list of addresses such as [127.0.0.1], found %s",
				cfg_found(node, found, sizeof(found)));
	n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (n > CFG_PROXIES_MAX)
		return cfg_fail(ctx, node->start_mark, key,
				"expected at most %d addresses, found %zu", CFG_PROXIES_MAX, n);
	item = node->data.sequence.items.start;
	for (size_t i = 0; i < n; i++, item++) {
		entry = yaml_document_get_node(ctx->doc, *item);
		snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i);
		if (entry->type != YAML_SCALAR_NODE ||
		    strlen((const char *)entry->data.scalar.value) != entry->data.scalar.length ||
		    cfg_parse_net((const char *)entry->data.scalar.value,
				  &cfg->trusted_proxies[i]) < 0)
			return cfg_fail(ctx, entry->start_mark, item_key,
					"expected an IP address such as 127.0.0.1 or ::1, or a "
					"network such as 10.0.0.0/8, found %s",
					cfg_found(entry, found, sizeof(found)));
	}
	cfg->n_trusted_proxies = n;
	return 0;
}
