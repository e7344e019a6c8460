/* cfg: the one YAML configuration file (libyaml), with defaults for every key.
 *
 * The struct is plain data that every stage reads, so its fields are public.
 * Sizes are bytes, durations milliseconds, times unix seconds. A bad file is
 * refused whole with one line naming file, line, column and key; nothing is
 * half-applied.
 */
#ifndef VIGIL_CFG_H
#define VIGIL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_ERR_MAX 512

enum cfg_role {
	CFG_ROLE_SENTINEL = 0,
	CFG_ROLE_PROCTOR,
	CFG_ROLE_ARCHIVIST,
	CFG_ROLE_OPERATOR,
	CFG_ROLE_COUNT,
};

struct cfg_listen {
	char host[64]; /* "0.0.0.0", "127.0.0.1", "::" (brackets removed) */
	uint16_t port; /* 0 lets the kernel choose (tests) */
};

/* archive.min_free: the free space archive keeps on data_dir's volume by
 * deleting the oldest ended sessions. */
enum cfg_floor_kind {
	CFG_FLOOR_AUTO = 0, /* "auto": archive's default (docs/archive.md) */
	CFG_FLOOR_BYTES,    /* a size; 0: no floor */
	CFG_FLOOR_PERCENT,  /* a share of the volume */
};

struct cfg_floor {
	enum cfg_floor_kind kind;
	uint64_t bytes;      /* CFG_FLOOR_BYTES */
	uint32_t hundredths; /* CFG_FLOOR_PERCENT: 550 is 5.5 % of the volume */
};

#define CFG_FLOOR_PERCENT_MAX 90

/* An address or network of trusted_proxies; IPv4 as v4-mapped IPv6. */
struct cfg_net {
	uint8_t addr[16];
	uint8_t bits; /* the prefix over all 16 bytes: 128 for one address (IPv4 too) */
};

#define CFG_PROXIES_MAX 32

struct cfg_token {
	char *name;
	enum cfg_role role;
	char *token;      /* the secret, read from token_file when that was given */
	char *token_file; /* NULL when the token was inline */
	int64_t expires;  /* unix seconds, 0 = never */
};

struct cfg {
	char *path;     /* the file it was loaded from, "" for defaults */
	char *instance; /* [A-Za-z0-9_-]{1,32}: names the shm ring /vigil-<instance> */
	char *run_dir;
	char *data_dir;
	struct cfg_listen listen_ingest, listen_relay, listen_http;
	char *tls_cert, *tls_key; /* NULL when TLS is off */
	/* Peers whose X-Forwarded-For / X-Real-IP name the client (srv_conn_forwarded) */
	struct cfg_net trusted_proxies[CFG_PROXIES_MAX];
	size_t n_trusted_proxies;
	int64_t buffer_seconds;
	uint64_t ring_size;
	int64_t max_sentinels, max_proctors;
	uint64_t max_message_bytes;
	int64_t proctor_queue_seconds;
	int64_t max_connections_per_ip; /* per listener, 0 = no cap */
	int64_t max_handshakes;         /* per listener: connections not yet registered */
	int64_t timeout_register_ms, timeout_idle_ms, timeout_heartbeat_ms;
	bool sentinel_auth; /* auth.sentinel: required (true) | none (false) */
	struct cfg_token *tokens;
	size_t n_tokens;
	int64_t retention_days;
	int64_t audit_retention_days; /* audit.retention_days, 0: for ever */
	int64_t relay_workers;        /* relay.workers, 0: one per core (cfg_relay_workers) */
	uint64_t archive_max_bytes;
	struct cfg_floor archive_min_free;
	char *log_level; /* "info" unless set */
};

/* Loads path ("" or NULL: the defaults alone). On failure returns -EINVAL
 * (or -errno when the file cannot be read) and writes one line into err:
 * "FILE:LINE:COL: KEY: what was expected". */
int cfg_load(const char *path, struct cfg **ret_cfg, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);

/* relay.workers as vigild starts them: the key's value, or for 0 one per
 * online core, at most CFG_RELAY_WORKERS_MAX. */
#define CFG_RELAY_WORKERS_MAX 8
unsigned cfg_relay_workers(const struct cfg *cfg);

/* Tokens that expire soon are worth a warning at start and at a reload. */
#define CFG_EXPIRY_WARN_S 86400

/* When t has expired at now (unix seconds) or expires within
 * CFG_EXPIRY_WARN_S, writes one line naming it (by name and role, never the
 * secret) into buf and returns true: "token 'proctors' (proctor) expired 5 days
 * ago (2026-12-01T00:00:00Z): it is refused", "token 'p1' (proctor) expires in
 * 3 hours (...)". */
bool cfg_token_expiry_note(const struct cfg_token *t, int64_t now, char *buf, size_t size);

/* "sentinel", "proctor", ... */
const char *cfg_role_name(enum cfg_role role);
int cfg_role_parse(const char *name, enum cfg_role *ret_role);

/* Value parsers shared with the command lines: "512MiB", "8MiB", "1024",
 * "200GiB"; "5s", "500ms", "2m", "1h"; "2026-12-01T00:00:00Z". */
int cfg_parse_size(const char *s, uint64_t *ret_bytes);
int cfg_parse_duration(const char *s, int64_t *ret_ms);
int cfg_parse_time(const char *s, int64_t *ret_unix);
int cfg_parse_listen(const char *s, struct cfg_listen *ret_listen);
/* archive.min_free: "auto", a size ("20GiB", 0 for none) or a percentage of
 * the volume with up to two decimals ("5%", "2.5%", at most
 * CFG_FLOOR_PERCENT_MAX). -EINVAL, or -ERANGE for a size or share too large. */
int cfg_parse_floor(const char *s, struct cfg_floor *ret_floor);
/* The same as the file would spell it ("auto", "5%", "2.5%"; a size as its
 * bytes), for JSON and messages. */
void cfg_fmt_floor(char *buf, size_t size, const struct cfg_floor *floor);

/* "127.0.0.1", "::1", "10.0.0.0/8" (no host bits under the prefix). */
int cfg_parse_net(const char *s, struct cfg_net *ret_net);
/* Whether addr (16 bytes, IPv4 v4-mapped) is one of the n nets. */
bool cfg_net_match(const struct cfg_net *nets, size_t n, const uint8_t addr[16]);
/* A net as cfg_parse_net reads it ("127.0.0.1", "10.0.0.0/8"). */
void cfg_fmt_net(char *buf, size_t size, const struct cfg_net *net);

/* The effective configuration as a JSON object (jansson json_t *, returned
 * as void * to keep jansson out of this header), with every secret replaced
 * by "***" when redact is set. Caller json_decref()s it. */
void *cfg_to_json(const struct cfg *cfg, bool redact);

/* Live updates (cfg_over.c). An update is a JSON object (json_t *, as void *)
 * shaped like the file, { "limits": { "max_proctors": 800 }, "timeouts":
 * { "idle": "45s" } }: the operator console's config.update, vigilctl config
 * set, and the overrides vigild keeps and sends with config.reload. Its values
 * are read by the file's parsers (a JSON number is read as its digits) and
 * checked by the file's rules; auth.tokens replaces the file's list whole. */

/* cfg_load, then over (NULL: none) on top. A fault in over is refused whole
 * with "config.update: KEY: what was expected, found ..."; one in the file
 * keeps its "FILE:LINE:COL: KEY: ..." line. */
int cfg_load_over(const char *path, const void *over, struct cfg **ret_cfg, char *err,
		  size_t errlen);

/* Whether a dotted key ("limits.max_proctors", "auth.tokens") takes effect
 * while running, at the stages' next reload. false for maps and unknown keys. */
bool cfg_key_live(const char *key);

/* Sorts the keys an update names into the two json arrays (dotted strings,
 * in the update's order): live_keys, and other_keys that only the file sets.
 * A null value stands for "no override": for a map, for each of its keys.
 * *ret_live: a copy of update holding only its live keys. -EINVAL for a value
 * cfg_load_over would refuse (a key not in the file, a map that is not one),
 * -ENOMEM. */
int cfg_over_split(const void *update, void **ret_live, void *live_keys, void *other_keys);

/* One value written as YAML (vigilctl config set KEY VALUE) as JSON: a plain
 * null or an empty text is null, a plain integer a number, other scalars
 * strings, flow maps and lists objects and arrays. NULL on a syntax error
 * ("value:LINE:COL: -: syntax error: ..." in err) or without memory. */
void *cfg_yaml_value(const char *text, char *err, size_t errlen);

#endif
