/* vigil-sentinel: the reference sentinel (exam-machine client) and load
 * generator. Captures video, encodes it once into fragmented MP4 (or JPEG
 * frames) and streams it to vigil-ingest's /sentinel endpoint over one or,
 * with --count, many WebSocket connections. main() only sequences: options,
 * log, signals, the lws context, the pipeline, the loop, teardown. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <gst/gst.h>

#include "cfg.h"
#include "log.h"
#include "mp.h"
#include "sentinel.h"

static void
sentinel_usage(FILE *f)
{
	fprintf(f,
		"Usage: vigil-sentinel --url ws://HOST:PORT/sentinel [OPTION]...\n"
		"Streams video to vigil-ingest as an exam machine would: H.264 in fragmented MP4\n"
		"segments of about a second, each starting with a keyframe. With --count it is a\n"
		"load generator: N sentinels share one encoder.\n"
		"\n"
		"  -u, --url URL         ws:// or wss:// address of the /sentinel endpoint (required)\n"
		"  -t, --token TOKEN     sentinel access token sent in sentinel.register\n"
		"  -n, --name NAME       name shown to proctors (default: the host name)\n"
		"  -c, --count N         simulate N sentinels named NAME-1 .. NAME-N (default 1)\n"
		"  -f, --fps F           frames per second, 0.1 to 60, may be fractional (default 15)\n"
		"  -b, --bitrate KBIT    H.264 bit rate in kbit/s (default 1000)\n"
		"  -s, --size WxH        picture size, even numbers (default 640x360)\n"
		"  -d, --duration SECS   say sentinel.bye and exit after this long (\"90\", \"5m\")\n"
		"      --json            JSON text frames with base64 data (default MessagePack)\n"
		"      --legacy-jpeg     send JPEG frames in sentinel.frame, a batch per second\n"
		"      --camera DEVICE   capture from a V4L2 camera, e.g. /dev/video0\n"
		"      --screen          capture the X screen\n"
		"      --state FILE      where the sentinelId is kept (default\n"
		"                        $XDG_STATE_HOME/vigil-sentinel/NAME.id, or\n"
		"                        ~/.local/state/vigil-sentinel/NAME.id, with characters\n"
		"                        other than A-Z a-z 0-9 . _ - replaced by _); with --count\n"
		"                        one file per sentinel: NAME-I.id, or FILE-I\n"
		"  -q, --quiet           log warnings and errors only: no progress line every 10 s,\n"
		"                        no note of each connection\n"
		"  -v, --verbose         log at debug level\n"
		"  -h, --help            show this help and exit\n"
		"  -V, --version         show the version and exit\n"
		"\n"
		"Without --camera or --screen the picture is a test pattern with the name and the\n"
		"capture time (wall clock, local time) burnt in, to measure end-to-end delay.\n"
		"SIGINT or SIGTERM sends sentinel.bye and exits; a second one exits at once.\n"
		"Exit status: 0 normal end (also when replaced by a newer connection with the same\n"
		"sentinelId), 1 runtime failure (registration refused with 3001 or 3002, video\n"
		"pipeline error), 2 usage error.\n");
}

static int sentinel_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message may quote --url, whose query or user information can hold a
 * secret: it is redacted as a log line is. */
static int
sentinel_usage_error(const char *fmt, ...)
{
	char msg[1024], out[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	log_redact(msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, out, sizeof(out));
	fprintf(stderr, "vigil-sentinel: %s\nTry 'vigil-sentinel --help'.\n", out);
	return -EINVAL;
}

static int
sentinel_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int
sentinel_parse_args(int argc, char **argv, struct snt_opts *o, enum log_level *level)
{
	enum { OPT_JSON = 256, OPT_LEGACY, OPT_CAMERA, OPT_SCREEN, OPT_STATE };
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "count", required_argument, NULL, 'c' },
		{ "fps", required_argument, NULL, 'f' },
		{ "bitrate", required_argument, NULL, 'b' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "legacy-jpeg", no_argument, NULL, OPT_LEGACY },
		{ "camera", required_argument, NULL, OPT_CAMERA },
		{ "screen", no_argument, NULL, OPT_SCREEN },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "u:t:n:c:f:b:s:d:qvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'c':
			if (sentinel_parse_uint(optarg, 1, SNT_COUNT_MAX, &o->count) < 0)
				return sentinel_usage_error("--count: '%s' is not 1 to 10000",
							    optarg);
			break;
		case 'f':
			errno = 0;
			o->fps = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(o->fps >= SNT_FPS_MIN) || o->fps > SNT_FPS_MAX)
				return sentinel_usage_error("--fps: '%s' is not 0.1 to 60", optarg);
			break;
		case 'b':
			if (sentinel_parse_uint(optarg, 16, 100000, &o->bitrate) < 0)
				return sentinel_usage_error("--bitrate: '%s' is not 16 to 100000",
							    optarg);
			break;
		case 's':
			if (sscanf(optarg, "%ux%u%n", &o->width, &o->height, &c) != 2 ||
			    optarg[c] != '\0' || o->width < 16 || o->height < 16 ||
			    o->width > 4096 || o->height > 4096 || o->width % 2 || o->height % 2)
				return sentinel_usage_error(
					"--size: '%s' is not WxH with even sides "
					"of 16 to 4096",
					optarg);
			break;
		case 'd': {
			int64_t ms;

			if (cfg_parse_duration(optarg, &ms) < 0 || ms <= 0)
				return sentinel_usage_error("--duration: '%s' is not a duration",
							    optarg);
			o->duration_ms = ms;
			break;
		}
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_LEGACY:
			o->legacy_jpeg = true;
			break;
		case OPT_CAMERA:
			o->camera = optarg;
			break;
		case OPT_SCREEN:
			o->screen = true;
			break;
		case OPT_STATE:
			o->state = optarg;
			break;
		case 'q':
			*level = LOG_LVL_WARN;
			break;
		case 'v':
			*level = LOG_LVL_DEBUG;
			break;
		case 'h':
			sentinel_usage(stdout);
			exit(0);
		case 'V':
			printf("vigil-sentinel %s\n", VIGIL_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'vigil-sentinel --help'.\n");
			return -EINVAL;
		}
	}
	if (optind < argc)
		return sentinel_usage_error("unexpected argument '%s'", argv[optind]);
	if (o->url == NULL)
		return sentinel_usage_error("--url is required");
	if (strncmp(o->url, "ws://", 5) != 0 && strncmp(o->url, "wss://", 6) != 0)
		return sentinel_usage_error("--url: '%s' is not ws://HOST:PORT/PATH", o->url);
	if (o->camera != NULL && o->screen)
		return sentinel_usage_error("--camera and --screen exclude each other");
	if (o->name[0] == '\0' || strlen(o->name) > SNT_NAME_MAX ||
	    !mp_utf8_valid(o->name, strlen(o->name)))
		return sentinel_usage_error("--name: '%s' is not 1 to 128 bytes of UTF-8", o->name);
	if (o->token != NULL && !mp_utf8_valid(o->token, strlen(o->token)))
		return sentinel_usage_error("--token: not UTF-8");
	return 0;
}

/* SIGINT and SIGTERM are read from a signalfd in the lws loop; they are blocked
 * before GStreamer starts any thread, so no thread takes them. */
static int
sentinel_signals(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* Each simulated sentinel holds a socket: a large --count needs more than the
 * usual soft limit of 1024 descriptors. */
static void
sentinel_raise_fd_limit(unsigned count)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)count + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
		log_warn(0, "only %llu file descriptors for %u connections",
			 (unsigned long long)rl.rlim_cur, count);
}

int
main(int argc, char **argv)
{
	char host[HOST_NAME_MAX + 1] = "sentinel", err[256] = "", what[64];
	struct snt_opts o = { .count = 1, .fps = 15, .bitrate = 1000, .width = 640, .height = 360 };
	struct snt_media m;
	struct snt_net *net;
	struct snt_enc *enc;
	enum log_level level = LOG_LVL_INFO;
	int sfd, status = 1;

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		strcpy(host, "sentinel");
	host[sizeof(host) - 1] = '\0';
	o.name = host;
	if (sentinel_parse_args(argc, argv, &o, &level) < 0)
		return 2;
	log_open("sentinel");
	log_set_level(level);
	sentinel_raise_fd_limit(o.count);
	sfd = sentinel_signals();
	if (sfd < 0) {
		log_error(sfd, "signalfd() failed");
		return 1;
	}
	gst_init(NULL, NULL);

	net = snt_net_new(&o, sfd);
	if (net == NULL) {
		status = errno == EINVAL ? 2 : 1;
		log_error(-errno, "lws context for %s not created", o.url);
		goto out_gst;
	}
	enc = snt_enc_new(&o, snt_net_wake, net, err, sizeof(err));
	if (enc == NULL) {
		log_error(0, "%s", err[0] ? err : "the video pipeline cannot be built");
		goto out_net;
	}
	if (o.legacy_jpeg)
		snprintf(what, sizeof(what), "JPEG");
	else
		snprintf(what, sizeof(what), "H.264 fMP4 at %u kbit/s", o.bitrate);
	log_info("vigil-sentinel %s: %u sentinel%s \"%s\" to %s, %s, %ux%u, %g fps", VIGIL_VERSION,
		 o.count, o.count > 1 ? "s" : "", o.name, o.url, what, o.width, o.height, o.fps);
	if (snt_enc_start(enc) < 0) {
		while (snt_enc_pop(enc, &m) == 0) {
			if (m.kind == SNT_MEDIA_ERROR)
				log_error(0, "video pipeline: %s", m.err);
			snt_blob_unref(m.blob);
		}
		log_error(0, "the video pipeline does not start");
		goto out_net;
	}
	status = snt_net_run(net, enc);

out_net:
	/* The pipeline's threads wake the lws context: they end before it goes. */
	snt_enc_stop(enc);
	snt_net_free(net);
	snt_enc_free(enc);
out_gst:
	gst_deinit();
	log_info("exit %d", status);
	return status;
}
