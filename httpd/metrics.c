/* metrics: /health, /metrics (Prometheus text format 0.0.4), /api/status,
 * /api/metrics and /api/config. The stages' states and heartbeat figures
 * come from vigild (bus status.request -> status, at most a second old); the
 * ring's figures from the ring itself. vigild lists every process: a stage
 * of workers (relay/0, relay/1) is shown as one stage with its workers in
 * it, and its counts are the sums of theirs. Loop thread. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "metrics.h"
#include "proc.h"
#include "text.h"

#define METRICS_STATUS_MAX_AGE_MS 1000
#define METRICS_STATUS_WAIT_MS    3000

static double
m_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_boolean(v))
		return json_is_true(v) ? 1 : 0;
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* A stage entry's string field; "unknown" when vigild's answer lacks it. */
static const char *
m_field(json_t *st, const char *key)
{
	const char *v = json_string_value(json_object_get(st, key));

	return v != NULL ? v : "unknown";
}

static json_t *
m_stages(struct httpd *h)
{
	return json_object_get(h->status, "stages");
}

/* The stage of a process entry: "relay" for "relay" and "relay/1". */
static void
m_stage_of(json_t *st, char *out, size_t size)
{
	const char *name = m_field(st, "name");
	size_t len = strcspn(name, "/");

	snprintf(out, size, "%.*s", (int)len, name);
}

static bool
m_is_stage(json_t *st, const char *stage)
{
	char name[32];

	m_stage_of(st, name, sizeof(name));
	return strcmp(name, stage) == 0;
}

/* A figure of the stage's heartbeat stats, summed over its workers. */
static double
m_stage_sum(struct httpd *h, const char *stage, const char *key)
{
	double sum = 0;
	size_t i;
	json_t *st;

	json_array_foreach(m_stages(h), i, st)
	{
		if (m_is_stage(st, stage))
			sum += m_num(json_object_get(json_object_get(st, "heartbeat"), "stats"),
				     key);
	}
	return sum;
}

static json_t *
m_stage_stats(struct httpd *h, const char *name)
{
	size_t i;
	json_t *st;

	json_array_foreach(m_stages(h), i, st)
	{
		if (strcmp(m_field(st, "name"), name) == 0)
			return json_object_get(json_object_get(st, "heartbeat"), "stats");
	}
	return NULL;
}

enum m_how {
	M_KEEP, /* the first worker's */
	M_SUM,
	M_MAX,
	M_MIN,
};

/* How a figure of the stage's entry follows from its workers'. top: the
 * entry's own keys; else its stats, where counters add up and latencies
 * (keys ending in Us) take the largest. */
static enum m_how
m_how(const char *key, bool top)
{
	static const char *const sum[] = { "cpuPercent", "memBytes", "connections", "restarts" };
	size_t len = strlen(key);

	if (!top)
		return len > 2 && strcmp(key + len - 2, "Us") == 0 ? M_MAX : M_SUM;
	for (size_t i = 0; i < sizeof(sum) / sizeof(sum[0]); i++) {
		if (strcmp(key, sum[i]) == 0)
			return M_SUM;
	}
	if (strcmp(key, "loopAvgS") == 0 || strcmp(key, "loopMaxS") == 0)
		return M_MAX;
	if (strcmp(key, "loopMinS") == 0 || strcmp(key, "uptimeMs") == 0)
		return M_MIN;
	return M_KEEP;
}

/* Into a stage's entry (dst) the next worker's numbers (src), as m_how says;
 * maps, lists and texts stay the first worker's. */
static void
m_merge(json_t *dst, json_t *src, bool top)
{
	const char *key;
	json_t *v;

	json_object_foreach(src, key, v)
	{
		json_t *have = json_object_get(dst, key);
		double a = json_number_value(have), b = json_number_value(v);
		bool ints = json_is_integer(have) && json_is_integer(v);
		double out;

		if (!json_is_number(v) || !json_is_number(have))
			continue;
		switch (m_how(key, top)) {
		case M_SUM:
			out = a + b;
			break;
		case M_MAX:
			out = a > b ? a : b;
			break;
		case M_MIN:
			out = a < b ? a : b;
			break;
		default:
			continue;
		}
		json_object_set_new(dst, key,
				    ints ? json_integer((json_int_t)out) : json_real(out));
	}
}

/* A stage's state from its workers': running when all run, else the first
 * one's that does not. */
static void
m_merge_state(json_t *dst, json_t *worker_state)
{
	const char *state = json_string_value(json_object_get(dst, "state"));

	if (state != NULL && strcmp(state, "running") == 0 && worker_state != NULL &&
	    strcmp(json_string_value(worker_state), "running") != 0)
		json_object_set(dst, "state", worker_state);
}

/* entry's object under its stage's name in stages: as it is for a stage of
 * one process; for a worker, merged into the stage's (m_merge,
 * m_merge_state) with entry itself in the stage's "workers" list. entry is
 * taken. */
static void
m_put_stage(json_t *stages, json_t *st, json_t *entry)
{
	char stage[32];
	json_t *have;

	m_stage_of(st, stage, sizeof(stage));
	if (entry == NULL)
		return;
	if (json_object_get(st, "worker") == NULL) {
		json_object_set_new(stages, stage, entry);
		return;
	}
	json_object_set_new(entry, "name", json_string(m_field(st, "name")));
	have = json_object_get(stages, stage);
	if (have == NULL) {
		have = json_deep_copy(entry);
		json_object_del(have, "name");
		json_object_set_new(have, "workers", json_array());
		json_object_set_new(stages, stage, have);
	} else {
		m_merge(have, entry, true);
		m_merge(json_object_get(have, "stats"), json_object_get(entry, "stats"), false);
		m_merge_state(have, json_object_get(entry, "state"));
	}
	json_array_append_new(json_object_get(have, "workers"), entry);
}

/* The ring's figures; the write rate over the last call's interval. */
static json_t *
m_ring(struct httpd *h)
{
	static uint64_t last_bytes;
	static int64_t last_ms;
	struct ring_stats rs;
	int64_t now = proc_mono_ms();
	double rate = 0;
	double overruns = m_stage_sum(h, "relay", "overruns");

	if (h->ring == NULL)
		return json_null();
	ring_get_stats(h->ring, &rs);
	if (last_ms > 0 && now > last_ms && rs.bytes_written >= last_bytes)
		rate = (double)(rs.bytes_written - last_bytes) * 1000.0 / (double)(now - last_ms);
	if (last_ms == 0 || now - last_ms >= 1000) {
		last_bytes = rs.bytes_written;
		last_ms = now;
	}
	return json_pack("{s:I, s:I, s:I, s:f, s:I, s:i, s:b, s:I}", "sizeBytes",
			 (json_int_t)rs.data_size, "bytesWritten", (json_int_t)rs.bytes_written,
			 "segmentsWritten", (json_int_t)rs.head, "writeBytesPerS", rate, "slots",
			 (json_int_t)rs.n_slots, "sentinelSlots", (int)rs.n_sentinels,
			 "writerAttached", rs.writer_pid != 0, "overruns", (json_int_t)overruns);
}

static int
m_online(struct httpd *h)
{
	uint32_t n = h->ring != NULL ? ring_sentinel_slots(h->ring) : 0;
	int online = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct ring_sentinel rs;

		if (ring_sentinel_get(h->ring, i, &rs, NULL, 0) == 0 && rs.online)
			online++;
	}
	return online;
}

/* Recording every access is part of running: a writer that cannot write
 * (the disk is full) makes the server unhealthy, not just a number. */
static bool
m_audit_ok(struct httpd *h)
{
	json_t *ok = json_object_get(m_stage_stats(h, "archive"), "auditOk");

	return ok == NULL || json_is_true(ok);
}

/* A running archive that cannot store the next segment (a full or failing
 * disk), or whose disk is below archive.min_free, says so in its heartbeat:
 * the text for /health, NULL when neither. */
static const char *
m_archive_problem(struct httpd *h, char *buf, size_t size, const char **ret_error)
{
	json_t *a = m_stage_stats(h, "archive");
	const char *why = json_string_value(json_object_get(a, "writeError"));

	if (json_is_false(json_object_get(a, "writable"))) {
		*ret_error = "archive cannot write to its disk";
		return why != NULL && why[0] != '\0' ? why : "cannot write";
	}
	if (json_is_true(json_object_get(a, "belowMinFree"))) {
		*ret_error = "archive's disk is below archive.min_free";
		snprintf(buf, size,
			 "%.0f bytes free, the floor is %.0f: the oldest ended "
			 "sessions are deleted while any may be",
			 m_num(a, "diskFreeBytes"), m_num(a, "minFreeBytes"));
		return buf;
	}
	return NULL;
}

/* Every reason the server is not healthy, with the first one's text as
 * "error" (stages first, then archive's disk, then the audit log); NULL when
 * there is none. */
static json_t *
m_problems(struct httpd *h)
{
	json_t *bad = json_object(), *out = json_object(), *st;
	const char *error = NULL, *archive_error = NULL, *archive;
	char buf[160];
	size_t i;

	json_array_foreach(m_stages(h), i, st)
	{
		const char *state = m_field(st, "state");

		if (strcmp(state, "running") != 0)
			json_object_set_new(bad, m_field(st, "name"), json_string(state));
	}
	if (json_object_size(bad) > 0 || json_array_size(m_stages(h)) == 0) {
		error = "not every stage is running";
		json_object_set(out, "stages", bad);
	}
	archive = m_archive_problem(h, buf, sizeof(buf), &archive_error);
	if (archive != NULL) {
		error = error != NULL ? error : archive_error;
		json_object_set_new(out, "archive", json_string(archive));
	}
	if (!m_audit_ok(h)) {
		error = error != NULL ? error : "the audit log is not being written";
		json_object_set_new(out, "audit", json_string("recording stopped"));
	}
	json_decref(bad);
	if (error == NULL) {
		json_decref(out);
		return NULL;
	}
	json_object_set_new(out, "error", json_string(error));
	return out;
}

static void
m_health(struct httpd *h, struct hreq *r)
{
	json_t *problems = m_problems(h);

	if (problems == NULL)
		hs_text(r, 200, "text/plain; charset=utf-8", "ok", 2);
	else
		hs_json(r, 503, problems);
}

static json_t *
m_status_json(struct httpd *h)
{
	json_t *stages = json_object(), *st, *problems = m_problems(h);
	bool degraded = problems != NULL; /* as /health says */
	size_t i;

	json_decref(problems);
	json_array_foreach(m_stages(h), i, st)
	{
		const char *state = m_field(st, "state");

		m_put_stage(stages, st,
			    json_pack("{s:s, s:O?, s:O?, s:O?}", "state", state, "pid",
				      json_object_get(st, "pid"), "restarts",
				      json_object_get(st, "restarts"), "uptimeMs",
				      json_object_get(st, "uptimeMs")));
	}
	/* The proctors of every relay worker. */
	return json_pack("{s:s, s:I, s:I, s:s, s:O?, s:i, s:I, s:o}", "state",
			 degraded ? "degraded" : "running", "timestamp",
			 (json_int_t)(proc_now_ms() / 1000), "uptimeMs",
			 (json_int_t)m_num(h->status, "uptimeMs"), "version", VIGIL_VERSION,
			 "instance", json_object_get(h->status, "instance"), "sentinels",
			 m_online(h), "proctors", (json_int_t)m_stage_sum(h, "relay", "proctors"),
			 "stages", stages);
}

static json_t *
m_metrics_json(struct httpd *h)
{
	json_t *stages = json_object(), *st;
	size_t i;

	json_array_foreach(m_stages(h), i, st)
	{
		json_t *hb = json_object_get(st, "heartbeat");

		m_put_stage(
			stages, st,
			json_pack(
				"{s:O?, s:f, s:I, s:I, s:f, s:f, s:f, s:O?, s:O?, s:O?, s:O?, s:o?}",
				"state", json_object_get(st, "state"), "cpuPercent",
				m_num(hb, "cpuPercent"), "memBytes",
				(json_int_t)m_num(hb, "memBytes"), "connections",
				(json_int_t)m_num(hb, "connections"), "loopAvgS",
				m_num(hb, "loopAvgS"), "loopMaxS", m_num(hb, "loopMaxS"),
				"loopMinS", m_num(hb, "loopMinS"), "restarts",
				json_object_get(st, "restarts"), "pid", json_object_get(st, "pid"),
				"uptimeMs", json_object_get(st, "uptimeMs"), "lastExit",
				json_object_get(st, "lastExit"), "stats",
				json_deep_copy(json_object_get(hb, "stats"))));
	}
	return json_pack("{s:I, s:I, s:o, s:o, s:i}", "timestamp",
			 (json_int_t)(proc_now_ms() / 1000), "uptimeMs",
			 (json_int_t)m_num(h->status, "uptimeMs"), "stages", stages, "ring",
			 m_ring(h), "sentinelsOnline", m_online(h));
}

static void
m_prom_metric(struct text_buf *b, const char *name, const char *type, const char *help)
{
	text_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Prometheus label values: backslash, quote and newline escaped. */
static void
m_prom_label(char *out, size_t size, const char *in)
{
	size_t o = 0;

	for (; *in != '\0' && o + 3 < size; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			out[o++] = '\\';
			out[o++] = *in == '\n' ? 'n' : *in;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

/* A process's labels: stage="relay", and worker="1" for a worker. */
static void
m_prom_labels(json_t *st, char *out, size_t size)
{
	json_t *worker = json_object_get(st, "worker");
	char stage[64], esc[64];

	m_stage_of(st, stage, sizeof(stage));
	m_prom_label(esc, sizeof(esc), stage);
	if (json_is_integer(worker))
		snprintf(out, size, "stage=\"%s\",worker=\"%lld\"", esc,
			 (long long)json_integer_value(worker));
	else
		snprintf(out, size, "stage=\"%s\"", esc);
}

static void
m_prometheus(struct httpd *h, struct hreq *r)
{
	static const struct {
		const char *name, *type, *help, *key;
		bool in_stats;
	} per_stage[] = {
		{ "vigil_stage_cpu_percent", "gauge", "CPU use of the stage, percent of one core",
		  "cpuPercent", false },
		{ "vigil_stage_memory_bytes", "gauge", "Private resident memory of the stage",
		  "memBytes", false },
		{ "vigil_stage_connections", "gauge", "Open client connections of the stage",
		  "connections", false },
		{ "vigil_stage_loop_avg_seconds", "gauge",
		  "Average event loop round over the last second", "loopAvgS", false },
		{ "vigil_stage_loop_max_seconds", "gauge",
		  "Longest event loop round over the last second", "loopMaxS", false },
		{ "vigil_stage_loop_min_seconds", "gauge",
		  "Shortest event loop round over the last second", "loopMinS", false },
		{ "vigil_stage_audit_queued", "gauge",
		  "Audit records the stage keeps until the writer confirms them", "auditQueued",
		  false },
		{ "vigil_stage_audit_dropped_total", "counter",
		  "Audit records the stage could not keep (its queue was full)", "auditDropped",
		  false },
	};
	static const struct {
		const char *name, *type, *help, *stage, *key;
	} named[] = {
		{ "vigil_segments_in_total", "counter", "Segments ingest accepted", "ingest",
		  "segments" },
		{ "vigil_bytes_in_total", "counter", "Segment bytes ingest accepted", "ingest",
		  "segmentBytes" },
		{ "vigil_proctors_connected", "gauge", "Proctors connected to relay", "relay",
		  "proctors" },
		{ "vigil_relay_bytes_out_total", "counter", "Segment bytes relay read for proctors",
		  "relay", "segmentBytes" },
		{ "vigil_relay_skips_total", "counter", "Skips sent to slow proctors", "relay",
		  "skips" },
		{ "vigil_relay_ring_overruns_total", "counter", "Ring overruns relay met", "relay",
		  "overruns" },
		{ "vigil_archive_segments_total", "counter", "Segments archived", "archive",
		  "segmentsWritten" },
		{ "vigil_archive_bytes_total", "counter", "Bytes archived", "archive",
		  "bytesWritten" },
		{ "vigil_archive_lost_total", "counter",
		  "Segments lost to the ring before archive stored them", "archive", "lost" },
		{ "vigil_archive_writable", "gauge",
		  "1 while archive can store the next segment, 0 while its disk is full or failing",
		  "archive", "writable" },
		{ "vigil_archive_disk_free_bytes", "gauge", "Free bytes on data_dir's volume",
		  "archive", "diskFreeBytes" },
		{ "vigil_archive_min_free_bytes", "gauge",
		  "archive.min_free now, in bytes (auto follows the volume and the ingest rate)",
		  "archive", "minFreeBytes" },
		{ "vigil_archive_below_min_free", "gauge",
		  "1 while data_dir's free space is below archive.min_free", "archive",
		  "belowMinFree" },
		{ "vigil_archive_min_free_deleted_total", "counter",
		  "Ended sessions deleted to keep archive.min_free", "archive", "minFreeDeleted" },
		{ "vigil_audit_ok", "gauge",
		  "1 while the audit log is written, 0 when recording stopped", "archive",
		  "auditOk" },
		{ "vigil_audit_records", "counter", "The audit log's newest durable record (seq)",
		  "archive", "auditSeq" },
		{ "vigil_audit_failures_total", "counter",
		  "Audit batches that could not be written or synced", "archive", "auditFailures" },
		{ "vigil_http_requests_total", "counter", "HTTP requests", "httpd", "requests" },
		{ "vigil_http_bytes_out_total", "counter", "HTTP body bytes sent", "httpd",
		  "bytesOut" },
		{ "vigil_http_mjpeg_clients", "gauge", "live.mjpeg streams open", "httpd",
		  "mjpegClients" },
		{ "vigil_http_mjpeg_decoders", "gauge", "Sentinels decoded for live.mjpeg", "httpd",
		  "mjpegDecoders" },
		{ "vigil_http_mjpeg_frames_total", "counter",
		  "JPEG parts sent to live.mjpeg clients", "httpd", "mjpegFrames" },
		{ "vigil_http_mjpeg_frames_dropped_total", "counter",
		  "JPEGs a live.mjpeg client skipped because its socket was full", "httpd",
		  "mjpegFramesDropped" },
		{ "vigil_http_mjpeg_refused_total", "counter",
		  "live.mjpeg requests refused over a cap (503)", "httpd", "mjpegRefused" },
	};
	struct text_buf b = { 0 };
	char label[128];
	json_t *st, *ring = m_ring(h);
	size_t i;

	m_prom_metric(&b, "vigil_up", "gauge", "1 when every stage is running");
	{
		bool all = json_array_size(m_stages(h)) > 0;

		json_array_foreach(m_stages(h), i, st) all &=
			strcmp(m_field(st, "state"), "running") == 0;
		text_printf(&b, "vigil_up %d\n", all);
	}
	m_prom_metric(&b, "vigil_uptime_seconds", "gauge", "Time since vigild started");
	text_printf(&b, "vigil_uptime_seconds %.3f\n", m_num(h->status, "uptimeMs") / 1000.0);
	m_prom_metric(&b, "vigil_stage_up", "gauge", "1 when the stage is running");
	json_array_foreach(m_stages(h), i, st)
	{
		m_prom_labels(st, label, sizeof(label));
		text_printf(&b, "vigil_stage_up{%s,state=\"%s\"} %d\n", label, m_field(st, "state"),
			    strcmp(m_field(st, "state"), "running") == 0);
	}
	m_prom_metric(&b, "vigil_stage_restarts_total", "counter",
		      "Restarts of the stage by vigild");
	json_array_foreach(m_stages(h), i, st)
	{
		m_prom_labels(st, label, sizeof(label));
		text_printf(&b, "vigil_stage_restarts_total{%s} %.0f\n", label,
			    m_num(st, "restarts"));
	}
	for (size_t k = 0; k < sizeof(per_stage) / sizeof(per_stage[0]); k++) {
		m_prom_metric(&b, per_stage[k].name, per_stage[k].type, per_stage[k].help);
		json_array_foreach(m_stages(h), i, st)
		{
			json_t *hb = json_object_get(st, "heartbeat");

			if (hb == NULL)
				continue;
			m_prom_labels(st, label, sizeof(label));
			text_printf(&b, "%s{%s} %.9g\n", per_stage[k].name, label,
				    m_num(hb, per_stage[k].key));
		}
	}
	/* The server's figures: a stage of workers' summed over them. */
	for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
		m_prom_metric(&b, named[k].name, named[k].type, named[k].help);
		text_printf(&b, "%s %.0f\n", named[k].name,
			    m_stage_sum(h, named[k].stage, named[k].key));
	}
	{
		static const struct {
			const char *name, *type, *help, *key;
		} lis[] = {
			{ "vigil_listener_connections", "gauge", "Open connections of the listener",
			  "connectionsOpen" },
			{ "vigil_listener_handshaking", "gauge",
			  "Connections not yet through their handshake (upgrade and register)",
			  "handshaking" },
			{ "vigil_listener_refused_per_ip_total", "counter",
			  "Connections refused over limits.max_connections_per_ip",
			  "refusedPerIp" },
			{ "vigil_listener_refused_handshakes_total", "counter",
			  "Connections refused over limits.max_handshakes", "refusedHandshakes" },
		};
		static const char *const stages[] = { "ingest", "relay", "httpd" };

		for (size_t k = 0; k < sizeof(lis) / sizeof(lis[0]); k++) {
			m_prom_metric(&b, lis[k].name, lis[k].type, lis[k].help);
			for (size_t s = 0; s < 3; s++)
				text_printf(&b, "%s{stage=\"%s\"} %.0f\n", lis[k].name, stages[s],
					    m_stage_sum(h, stages[s], lis[k].key));
		}
	}
	m_prom_metric(&b, "vigil_sentinels_online", "gauge", "Sentinels online");
	text_printf(&b, "vigil_sentinels_online %d\n", m_online(h));
	if (json_is_object(ring)) {
		m_prom_metric(&b, "vigil_ring_bytes_written_total", "counter",
			      "Bytes written into the ring");
		text_printf(&b, "vigil_ring_bytes_written_total %.0f\n",
			    m_num(ring, "bytesWritten"));
		m_prom_metric(&b, "vigil_ring_segments_written_total", "counter",
			      "Segments written into the ring");
		text_printf(&b, "vigil_ring_segments_written_total %.0f\n",
			    m_num(ring, "segmentsWritten"));
		m_prom_metric(&b, "vigil_ring_write_bytes_per_second", "gauge", "Ring write rate");
		text_printf(&b, "vigil_ring_write_bytes_per_second %.1f\n",
			    m_num(ring, "writeBytesPerS"));
		m_prom_metric(&b, "vigil_ring_size_bytes", "gauge", "Data size of the ring");
		text_printf(&b, "vigil_ring_size_bytes %.0f\n", m_num(ring, "sizeBytes"));
	}
	json_decref(ring);
	if (b.oom || b.p == NULL) {
		free(b.p);
		hs_error(r, 500, "out of memory");
		return;
	}
	hs_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
	free(b.p);
}

json_t *
metrics_status_json(struct httpd *h)
{
	return m_status_json(h);
}

json_t *
metrics_api_json(struct httpd *h)
{
	return m_metrics_json(h);
}

void
metrics_get(struct httpd *h, struct hreq *r)
{
	enum route_kind kind = hs_route(r)->kind;

	if (kind == ROUTE_API_CONFIG) {
		hs_json(r, 200, cfg_to_json(h->cfg, true));
		return;
	}
	if (stage_bus_fd(h->st) < 0) {
		hs_error(r, 503, "vigil-httpd runs without vigild: no stage status");
		return;
	}
	if (!httpd_status_fresh(h, METRICS_STATUS_MAX_AGE_MS)) {
		if (hs_park_ref(r) >= 0 && hs_parked_timed_out(r) && h->status == NULL) {
			hs_error(r, 503, "vigild did not answer the status request");
			return;
		}
		if (hs_park_ref(r) < 0) {
			hs_park(r, HS_PARK_STATUS, 0, METRICS_STATUS_WAIT_MS);
			return;
		}
		/* Woken or timed out with an older answer: it is the best there is. */
	}
	switch (kind) {
	case ROUTE_HEALTH:
		m_health(h, r);
		break;
	case ROUTE_METRICS:
		m_prometheus(h, r);
		break;
	case ROUTE_API_STATUS:
		hs_json(r, 200, m_status_json(h));
		break;
	default:
		hs_json(r, 200, m_metrics_json(h));
		break;
	}
}
