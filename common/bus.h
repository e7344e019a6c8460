/* bus: the control bus between vigild and the stages.
 *
 * Transport: one Unix SOCK_SEQPACKET socket, <run_dir>/bus.sock, owned by
 * vigild; each stage holds one connection. One packet is one message of at
 * most BUS_MSG_MAX bytes, a msgpack map:
 *
 *   { "type": str, "from": str, "to": str (optional), "body": map }
 *
 * "from" and "to" are stage names ("vigild", "ingest", "relay", "archive",
 * "httpd") or "*" for every stage. A stage started as several workers
 * (relay.workers) has one connection per worker, each named "<stage>/<n>"
 * ("relay/1"): a message to "relay" goes to every worker, one to "relay/1"
 * to that worker. vigild forwards a message whose "to" is another stage, and
 * broadcasts "*". Message types:
 *
 *   type             from -> to         body
 *   hello            stage -> vigild    { stage, pid, version }
 *   heartbeat        stage -> vigild    { pid, cpuPercent, memBytes, connections,
 *                                         loopAvgS, loopMaxS, loopMinS, uptimeMs,
 *                                         stats: { the stage's own figures } }
 *   stop             vigild -> stage    { reason }          exit cleanly now; reason
 *                                                        "restart" or "shutdown"
 *   config.reload    vigild -> stage    { overrides? }      re-read the config file, with the
 *                                         console's live keys on top (below); none: the file alone
 *   stage.state      vigild -> *        { stage, state, pid }   stage: the process's name
 *                                         ("relay/1" for a worker)
 *   load             worker -> vigild   { connections }     a worker's clients, at once when
 *                                         they changed (the heartbeat says it a second later)
 *   workers.load     vigild -> worker   { connections: [per worker] }   after each change
 *                                         and after hello: the stage's limits and counts
 *                                         (limits.max_proctors, server.status) are the
 *                                         server's, not one worker's
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
 *   session.delete   httpd -> archive   { sentinelId, sessionId, ref, actor, role, remote }
 *                                         (who asked: archive records the delete, durably,
 *                                         before it answers)
 *   session.deleted  archive -> httpd   { ref, status: 204|404|409|500, error? }
 *   mark.add         relay|httpd -> archive  { ref, mark: Mark, deadline, actor, role,
 *                                         remote }   store a mark (common/mark.h), not after
 *                                         deadline (unix ms); who asked, for its audit record
 *   mark.added       archive -> * or the asker  { ref, for, status: 201|400|404|409|500|504,
 *                                         error, mark? }   a new mark (201) goes to every
 *                                         stage, anything else to the stage named in for
 *                                         (docs/archive.md "Marks")
 *   token.revoke     any -> *           { token }           refuse it from now on; ingest
 *                                         and relay close its connections with 3004. vigild
 *                                         writes a configured token's digest under data_dir
 *                                         before it passes the message on, then sends revoked
 *
 * The operator console (PROTOCOL.md section 7): httpd asks vigild on an
 * operator's behalf; every request carries a ref that its answer repeats
 * (any msgpack value of at most 128 bytes packed; nil in the answer if
 * larger or absent). Answers (and status, and stage.state) are never lost to
 * a full socket queue: vigild keeps them (up to 4 MiB) until the stage
 * reads; an answer for an httpd that has restarted since it asked is
 * dropped.
 *
 *   stage.set        httpd -> vigild    { ref, stage, state: "start"|"stop"|"restart"|"kill" }
 *   stage.result     vigild -> httpd    { ref, stage, state, pid } once the stage reached
 *                                         the state asked for ("start": running; "kill" and
 *                                         "restart": running again with a new pid; "stop":
 *                                         down, pid 0), or { ref, stage, state, error }
 *                                         (unknown stage or state, start of a running stage,
 *                                         kill of one not running, during the stop: at once;
 *                                         failed, or not there within 30 s). stage and state
 *                                         repeat the request's. A stop of a stage that is
 *                                         down, or a restart of one that is down or failed,
 *                                         is not an error. Several may wait at once.
 *                                         stage: a stage, or one worker ("relay/1"); a
 *                                         stage of workers acts on all of them (a restart
 *                                         one at a time) and its answer adds pids: [each
 *                                         worker's]
 *   logs.request     httpd -> vigild    { ref, stage, lines }    the last lines (0 to 1000;
 *                                         more is 1000; absent: 100), oldest first
 *   log.lines        vigild -> httpd    { ref, lines: [{ stage, level, time, line }], more }
 *                                         the answer, in as many packets as BUS_MSG_MAX takes
 *                                         (more: true on all but the last); time unix ms;
 *                                         level "debug"|"info"|"warn"|"error" from the line;
 *                                         line as the stage wrote it (with its own time,
 *                                         name and pid), bytes that are not UTF-8 as '?'.
 *                                         A line of another form (a library's stderr) is
 *                                         "info" at the time vigild read it. Or { ref, error }
 *                                         for an unknown stage or a lines that is no integer
 *   logs.follow      httpd -> vigild    { on }                   every new line of every stage
 *                                         from now on, or not; off again when httpd's bus
 *                                         connection ends
 *   log.line         vigild -> httpd    { stage, level, time, line }   each new line while on; a
 *                                         line the bus cannot take (or that would use the half
 *                                         of httpd's socket buffer kept for answers and stage
 *                                         states) is counted, and the next one that goes
 *                                         carries { dropped: N } besides
 *   config.update    httpd -> vigild    { ref, config: map }     the keys that can change live,
 *                                         a map shaped like the file ({ limits: { max_proctors:
 *                                         800 } }); a null value takes a key's override away
 *   config.result    vigild -> httpd    { ref, applied: [keys], restartRequired: [keys] } or
 *                                         { ref, error } (key and what was expected; nothing
 *                                         applied). Keys are dotted ("limits.max_proctors");
 *                                         applied: every live key given; restartRequired: the
 *                                         other keys given with a new value (checked, neither
 *                                         applied nor kept); error: "config.update: KEY:
 *                                         expected ..., found ...", the file's wording
 *   config.reload    vigild -> stage    { overrides? }           (above) with the console's
 *                                         live keys on top of the file, as a map like config;
 *                                         also after hello when there are any
 *   shutdown.request httpd -> vigild    { ref, in }              seconds, 0..3600 (a float
 *                                         is taken); a second request replaces the time
 *   shutdown.result  vigild -> httpd    { ref, at } or { ref, error }   at once
 *   shutdown.notice  vigild -> *        { at }                   unix ms: each stage sends
 *                                         server.shutdown { at } to its clients (and to those
 *                                         that register later); at `at` vigild stops every
 *                                         stage in order (close 1001). Sent again on each
 *                                         change of `at`, and to a stage that says hello
 *                                         before it
 *   revoked          vigild -> stage    { digests: [hex] }       every token digest revoked and
 *                                         not lifted, kept under data_dir: after hello and after
 *                                         each change; the stage refuses them and closes
 *                                         their connections with 3004. hex: SHA-256, 64
 *                                         lower-case digits (tok_digest_hex)
 *
 * The audit log (common/audit.h, docs/audit.md): every stage and vigild send
 * their records to archive, the writer:
 *
 *   audit.append     any -> archive     { src, n, base, record }   record: JSON text
 *   audit.ack        archive -> sender  { src, n }     every record of src up to n durable
 *   audit.ready      archive -> *       { }            the writer (re)started: send again
 *
 * After a stage's hello, vigild sends config.reload (when there are overrides) and
 * revoked before anything else on that connection; stage_new waits for them.
 *
 * A receiver ignores types it does not know.
 */
#ifndef VIGIL_BUS_H
#define VIGIL_BUS_H

#include <stddef.h>

#include <msgpack.h>

#define BUS_MSG_MAX     65536
#define BUS_NAME_MAX    16
#define BUS_WORKERS_MAX 8 /* relay.workers at most */

enum bus_stage {
	BUS_INGEST = 0,
	BUS_RELAY,
	BUS_ARCHIVE,
	BUS_HTTPD,
	BUS_N_STAGES,
};

const char *bus_stage_name(enum bus_stage stage);
/* vigild's state of a stage as PROTOCOL.md section 5 names it to clients
 * (server.status): "running", "starting", "stopping", else "offline". */
const char *bus_state_public(const char *state);
/* Returns the stage, or -EINVAL for a name that is not one. */
int bus_stage_parse(const char *name);
/* A process's name on the bus: a stage ("relay"), or one of a stage's
 * workers ("relay/1", BUS_WORKERS_MAX at most). Returns the stage and sets
 * *ret_worker to the worker's index, -1 for the bare stage name; -EINVAL
 * for a name that is neither. */
int bus_name_parse(const char *name, int *ret_worker);

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
