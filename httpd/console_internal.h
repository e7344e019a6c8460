/* console_internal.h: what the console's files share: console.c (the
 * connection, sign-in, pushes, httpd's side), console_req.c (the requests
 * vigild answers: stage.set, config.update, token.revoke, shutdown) and
 * console_log.c (operator.logs and operator.console). Not for the rest of
 * httpd: it sees console.h. */
#ifndef VIGIL_HTTPD_CONSOLE_INTERNAL_H
#define VIGIL_HTTPD_CONSOLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "console.h"
#include "httpd.h"
#include "id.h"
#include "wss.h"

#define CON_PUSH_MS        1000
#define CON_EXPIRY_WARN_S  60
#define CON_LINES_MAX      1000
#define CON_RESULT_MS      35000 /* vigild answers a stage.set within 30 s */
#define CON_PENDING_MAX    64    /* requests waiting for vigild, all operators */
#define CON_SHUTDOWN_MAX_S 3600
#define CON_AUDIT_WAIT_MS  5000 /* an act waits this long for its record, then goes anyway */

enum con_level { CON_DEBUG, CON_INFO, CON_WARN, CON_ERROR, CON_N_LEVELS };

/* A packed server.console waiting for room in the send queue (operator.logs). */
struct con_out {
	char *data;
	size_t len;
};

struct con_sess {
	bool authed;
	char id[ID_STR_LEN];
	char name[64];         /* the token's configured name */
	int64_t token_expires; /* unix s, 0: never */
	bool expiry_warned;
	bool revoked;         /* its own token was revoked from it: closed once answered */
	uint32_t follow;      /* stages whose new lines are pushed (bit 1 << bus_stage_parse()) */
	enum con_level level; /* and from which level on */
	uint64_t dropped;     /* lines that found the queue full since the last said so */
	struct con_out *backlog;
	size_t n_backlog, cap_backlog, sent_backlog;
};

enum con_kind { CON_K_STAGE, CON_K_LOGS, CON_K_CONFIG, CON_K_SHUTDOWN, CON_K_REVOKE };

struct con_pending {
	int ref; /* 0: free */
	enum con_kind kind;
	struct wss_conn *c;
	int64_t deadline_ms;
	unsigned lines;
};

struct console {
	struct httpd *h;
	struct wss *wss;
	int next_ref;
	unsigned operators;
	bool following; /* vigild was asked for every new line */
	int64_t last_push_ms;
	struct con_pending pending[CON_PENDING_MAX];
};

static inline struct con_sess *
con_sess(struct wss_conn *c)
{
	return wss_conn_data(c);
}

static inline struct console *
con_of(const struct httpd *h)
{
	return h->console;
}

/* console.c */
/* server.result { ref, status: "OK", ... }: n_more entries follow, packed by
 * the caller, who sends m. */
void con_result_ok(struct wss_msg *m, const char *ref, uint32_t n_more);
/* server.result { ref, error }: the connection stays. */
void con_error(struct wss_conn *c, const char *ref, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A request to vigild: a free slot for its answer (NULL, the operator told,
 * when every one waits), the message begun (ref and n more entries to pack),
 * and sent (false, the operator told, when the bus refused it). */
struct con_pending *con_pending_new(struct console *con, struct wss_conn *c, enum con_kind kind,
				    const char *ref);
void con_bus_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *type, int ref, uint32_t n);
bool con_bus_send(struct httpd *h, struct wss_conn *c, const char *ref, msgpack_sbuffer *sb);

/* console_req.c */
void con_stage_set(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_stage_result(struct con_pending *pd, const msgpack_object *body);
void con_config(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_config_result(struct con_pending *pd, const msgpack_object *body);
void con_revoke(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_shutdown(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_shutdown_result(struct con_pending *pd, const msgpack_object *body);
void con_shutdown_notice(struct console *con, const msgpack_object *body);

/* console_log.c */
void con_logs(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_logs_answer(struct con_pending *pd, const msgpack_object *body);
void con_console(struct httpd *h, struct wss_conn *c, const msgpack_object *p);
void con_line(struct console *con, const msgpack_object *body);
/* vigild is asked for every new line while one operator follows. */
void con_follow_update(struct httpd *h);
void con_backlog_pump(struct wss_conn *c);
/* What a follower lost is said once its queue has room (true: said, or
 * nothing to say). */
bool con_dropped_notice(struct wss_conn *c);
void con_backlog_free(struct con_sess *s);

#endif
