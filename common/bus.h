/* bus: the control bus between vigild and the stages.
 *
 * Transport: one Unix SOCK_SEQPACKET socket, <run_dir>/bus.sock, owned by
 * vigild; each stage holds one connection. One packet is one message of at
 * most BUS_MSG_MAX bytes, a msgpack map:
 *
 *   { "type": str, "from": str, "to": str (optional), "body": map }
 *
 * "from" and "to" are stage names ("vigild", "ingest", "relay", "archive",
 * "httpd") or "*" for every stage. vigild forwards a message whose "to" is
 * another stage, and broadcasts "*". Message types:
 *
 *   type             from -> to         body
 *   hello            stage -> vigild    { stage, pid, version }
 *   heartbeat        stage -> vigild    { pid, cpuPercent, memBytes, connections,
 *                                         loopAvgS, loopMaxS, loopMinS, uptimeMs,
 *                                         stats: { the stage's own figures } }
 *   stop             vigild -> stage    { reason }          exit cleanly now; reason
 *                                                        "restart" or "shutdown"
 *   config.reload    vigild -> stage    { }                 re-read the config file
 *   stage.state      vigild -> *        { stage, state, pid }
 *   config.reloaded  stage -> *         { ok, error? }      after config.reload
 *   status.request   stage -> vigild    { }                 ask for the supervisor's view
 *   status           vigild -> stage    { instance, pid, uptimeMs, version, config,
 *                                         stages: [{ name, state, pid, uptimeMs,
 *                                         restarts, lastExit, heartbeat, listen }] }
 *                                         (the body of vigilctl status --json)
 *
 *   sentinel.online  ingest -> *        { sentinelId, sessionId, name, slot, startedAt }
 *   sentinel.offline ingest -> *        { ..., reason, endedAt, lastSequence }
 *   keyframe.request relay -> ingest    { sentinelId }
 *   fps.change       relay -> ingest    { sentinelId, framerate }
 *   session.delete   httpd -> archive   { sentinelId, sessionId, ref }
 *   session.deleted  archive -> httpd   { ref, status: 204|404|409|500, error? }
 *   token.revoke     any -> *           { token }           refuse it from now on; ingest
 *                                         and relay close its connections with 3004
 *
 * A receiver ignores types it does not know.
 */
#ifndef VIGIL_BUS_H
#define VIGIL_BUS_H

#include <stddef.h>

#include <msgpack.h>

#define BUS_MSG_MAX  65536
#define BUS_NAME_MAX 16

enum bus_stage {
	BUS_INGEST = 0,
	BUS_RELAY,
	BUS_ARCHIVE,
	BUS_HTTPD,
	BUS_N_STAGES,
};

const char *bus_stage_name(enum bus_stage stage);
/* Returns the stage, or -EINVAL for a name that is not one. */
int bus_stage_parse(const char *name);

/* A decoded message: strings are copied, body points into the unpacked zone. */
struct bus_msg {
	char type[48];
	char from[BUS_NAME_MAX];
	char to[BUS_NAME_MAX];      /* "" when absent */
	const msgpack_object *body; /* always a map */
	msgpack_unpacked unp;
};

/* -EBADMSG when buf is not one well-formed bus message. bus_msg_release()
 * must follow a successful decode. */
int bus_decode(const void *buf, size_t len, struct bus_msg *ret_msg);
void bus_msg_release(struct bus_msg *msg);

/* Packs the envelope up to the "body" key; the caller packs the body map next. */
void bus_pack_begin(msgpack_packer *pk, const char *type, const char *from, const char *to);

/* Socket helpers. Every fd is close-on-exec and non-blocking. */
int bus_listen(const char *path);
int bus_connect(const char *path);
/* Sends one packet; -EAGAIN when the peer's queue is full (the message is dropped:
 * the bus carries state, and the next heartbeat or event supersedes it). */
int bus_send(int fd, const void *buf, size_t len);
/* Receives one packet into buf (BUS_MSG_MAX bytes); 0 means the peer closed. */
int bus_recv(int fd, void *buf, size_t size);

#endif
