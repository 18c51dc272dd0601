/* crload — load generator for the XMPP and HTTP doors of mod_conference_request (bench only).
 *
 * One thread, epoll, raw sockets. XMPP connections log in (SASL PLAIN, or ANONYMOUS when no user
 * is given), bind, then keep a window of W IQs in flight each, match results by id and record
 * latencies. The stream reader is minimal: it finds the boundaries of top-level stanzas by
 * counting tags (the server escapes '>' in attribute values, so a tag ends at the first '>').
 *
 * Modes (one JSON line on stdout):
 *   load     W IQs in flight per connection for --warmup + --duration seconds; counts only
 *            answers that arrive in the measured window: rps, p50/p99 latency, errors.
 *   batch    exactly --requests conference IQs (room i % --rooms), plus --http-requests POSTs over
 *            --http-conns keep-alive connections (pipelined), everything sent at once (or with the
 *            window); waits for every answer. Used to make rooms ready and for the join storm.
 *
 * Options:
 *   --port P          c2s port (127.0.0.1)          --domain D   XMPP domain (localhost)
 *   --user U --pass W SASL PLAIN (else ANONYMOUS)    --conns N    XMPP connections
 *   --window W        IQs in flight per connection  --kind ping|conf
 *   --to JID          IQ target (conf)              --muc HOST   MUC of the rooms
 *   --room-prefix S   rooms are S<i>@MUC            --rooms R    distinct rooms
 *   --duration S --warmup S                          --requests N (batch)
 *   --first-warmup S  (load) warm-up of each phase in the first repetition (default: --warmup)
 *   --http-port P --http-path PATH --http-requests N --http-conns N (batch)
 *   --timeout S       give up waiting for answers after S seconds (default 30)
 *   --phase NAME:ping | NAME:conf:TO   (load, repeatable) phases run in turn over the same
 *                     connections with the same window; --reps N repeats the sequence
 *   --abba            (load) every second repetition runs the phases in reverse order (A B, B A,
 *                     A B, …): work a phase leaves behind (Lua garbage collected later) is not
 *                     always paid by the same next phase
 *   --server-pid PID  (load) also report the server's CPU time per answered IQ and its CPU use
 *                     over the measured window: the scheduler's run time of its threads
 *                     (/proc/PID/task/TID/schedstat, nanoseconds), else utime + stime of
 *                     /proc/PID/stat (clock ticks); "server_cpu_clock" says which
 *   --show-request    print one request and its size on stderr
 *   --wait-signal     after every connection has logged in, print "crload: logged in, waiting for
 *                     SIGUSR1" on stderr and wait for SIGUSR1 before sending (profile.sh zeroes
 *                     callgrind's counters in between: the logins are not counted)
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW 100000
#define REQ_MAX 1024

enum kind { KIND_PING, KIND_CONF };
enum door { DOOR_XMPP, DOOR_HTTP };

struct opts {
	int port, http_port;
	const char *domain, *user, *pass, *to, *muc, *room_prefix, *http_path;
	int conns, window, http_conns;
	enum kind kind;
	int rooms;
	double duration, warmup, first_warmup, timeout;
	long requests, http_requests;
	int batch, show_request, reps, abba, wait_signal;
	int server_pid;
};

#define MAX_PHASES 8
struct phase {
	char *spec; /* owned: "NAME\0KIND\0TO" */
	const char *name;
	enum kind kind;
	const char *to;
};

struct buf {
	char *data;
	size_t len, cap;
};

struct slot {
	double sent;     /* 0 when free */
	uint32_t seq;
};

struct conn {
	int fd;
	enum door door;
	struct buf in, out;
	struct slot *slots; /* XMPP: window slots */
	int window;
	long quota;         /* batch: requests this connection still has to send */
	long outstanding;
	double http_sent_first; /* HTTP: send time of the oldest unanswered request (FIFO) */
	double *http_times;     /* HTTP: send times, FIFO */
	long http_head, http_tail;
	char uid[33];
	int want_out;
	int closed;
};

struct stats {
	long done, errors, not_ready, ready, measured;
	uint32_t *lat;
	size_t nlat, caplat;
	double last_answer;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg)
{
	fprintf(stderr, "crload: %s\n", msg);
	exit(2);
}

static void die_errno(const char *msg)
{
	fprintf(stderr, "crload: %s: %s\n", msg, strerror(errno));
	exit(2);
}

static void buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		die("out of memory");
	b->data = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	if (b->data)
		b->data[b->len] = '\0';
}

static void lat_add(struct stats *s, double secs)
{
	if (s->nlat == s->caplat) {
		size_t cap = s->caplat ? s->caplat * 2 : 65536;
		uint32_t *p = realloc(s->lat, cap * sizeof *p);
		if (!p)
			die("out of memory");
		s->lat = p;
		s->caplat = cap;
	}
	double us = secs * 1e6;
	s->lat[s->nlat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct stats *s, double p)
{
	if (!s->nlat)
		return 0;
	size_t i = (size_t)(p * (double)(s->nlat - 1) + 0.5);
	return s->lat[i];
}

/* ---- base64 for SASL PLAIN ---- */
static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = t[(v >> 18) & 63];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

/* ---- sockets ---- */
static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die_errno("socket");
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die_errno("connect");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die_errno("fcntl");
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die_errno("write (handshake)");
		}
		s += w;
		n -= (size_t)w;
	}
}

/* Handshake read: append to c->in until `needle` appears (or `fail` does: returns -1). */
static int read_until(struct conn *c, const char *needle, const char *fail, double timeout)
{
	double deadline = now_s() + timeout;
	for (;;) {
		if (c->in.data && strstr(c->in.data, needle))
			return 0;
		if (fail && c->in.data && strstr(c->in.data, fail))
			return -1;
		double left = deadline - now_s();
		if (left <= 0)
			return -1;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno != EINTR)
			die_errno("poll");
		if (r <= 0)
			continue;
		buf_reserve(&c->in, 4096);
		ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
		if (n <= 0)
			return -1;
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
	}
}

static void xmpp_login(struct conn *c, const struct opts *o, int idx)
{
	char hdr[512], tmp[2048], enc[1400];
	snprintf(hdr, sizeof hdr,
		 "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
		 "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>",
		 o->domain);
	write_all(c->fd, hdr, strlen(hdr));
	if (read_until(c, "</stream:features>", "</stream:stream>", 10))
		die("no stream features (is the c2s port right?)");
	if (o->user) {
		if (!strstr(c->in.data, "PLAIN"))
			die("server offers no SASL PLAIN");
		size_t ul = strlen(o->user), pl = strlen(o->pass);
		if (ul + pl + 2 > 512)
			die("user/pass too long");
		unsigned char raw[520];
		raw[0] = 0;
		memcpy(raw + 1, o->user, ul);
		raw[1 + ul] = 0;
		memcpy(raw + 2 + ul, o->pass, pl);
		b64(raw, ul + pl + 2, enc);
		snprintf(tmp, sizeof tmp, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", enc);
	} else {
		if (!strstr(c->in.data, "ANONYMOUS"))
			die("server offers no SASL ANONYMOUS (give --user/--pass)");
		snprintf(tmp, sizeof tmp, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'/>");
	}
	buf_consume(&c->in, c->in.len);
	write_all(c->fd, tmp, strlen(tmp));
	if (read_until(c, "<success", "<failure", 10))
		die("SASL authentication failed");
	buf_consume(&c->in, c->in.len);
	write_all(c->fd, hdr, strlen(hdr));
	if (read_until(c, "</stream:features>", "</stream:stream>", 10))
		die("no stream features after SASL");
	buf_consume(&c->in, c->in.len);
	snprintf(tmp, sizeof tmp,
		 "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
		 "<resource>crload%d</resource></bind></iq>", idx);
	write_all(c->fd, tmp, strlen(tmp));
	if (read_until(c, "</iq>", "type='error'", 10))
		die("resource binding failed");
	buf_consume(&c->in, c->in.len);
}

/* ---- requests ---- */
static int room_index(long n, const struct opts *o)
{
	return (int)(n % o->rooms);
}

/* Conference IQ, ≈290 bytes with the default names. The id is "<slot>.<seq>" in hex. */
static int make_conf_iq(char *out, size_t cap, const struct opts *o, const char *to, const struct conn *c,
			int slot, uint32_t seq, int room)
{
	return snprintf(out, cap,
			"<iq type='set' to='%s' id='%x.%x'><conference xmlns='http://jitsi.org/protocol/focus' "
			"room='%s%d@%s' machine-uid='%s'><property name='rtcstatsEnabled' value='false'/>"
			"<property name='visitors-version' value='1'/></conference></iq>",
			to, (unsigned)slot, (unsigned)seq, o->room_prefix, room, o->muc, c->uid);
}

static int make_ping_iq(char *out, size_t cap, const struct opts *o, int slot, uint32_t seq)
{
	return snprintf(out, cap, "<iq type='get' to='%s' id='%x.%x'><ping xmlns='urn:xmpp:ping'/></iq>",
			o->domain, (unsigned)slot, (unsigned)seq);
}

static int make_http_post(char *out, size_t cap, const struct opts *o, const struct conn *c, int room)
{
	char body[512];
	int bl = snprintf(body, sizeof body,
			  "{\"room\":\"%s%d@%s\",\"machineUid\":\"%s\",\"properties\":"
			  "{\"rtcstatsEnabled\":false,\"visitors-version\":1}}",
			  o->room_prefix, room, o->muc, c->uid);
	return snprintf(out, cap,
			"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %d\r\n\r\n%s",
			o->http_path, o->domain, bl, body);
}

/* ---- the run ---- */
struct run {
	const struct opts *o;
	int ep;
	struct conn *conns;
	int nconns;
	long sent_total;      /* requests handed out so far (batch: room numbering) */
	double t_start, t_measure, t_end;
	int sending;          /* load: still sending new requests */
	enum kind kind;       /* current phase */
	const char *to;
	double cpu_start, cpu_end; /* server CPU seconds at t_measure and t_end (-1: unknown) */
	const char *cpu_clock; /* "schedstat" or "stat" */
	double warmup;        /* load: this phase's warm-up */
	struct stats st;
	long in_flight;
};

static void conn_update_events(struct run *r, struct conn *c)
{
	int want = c->out.len > 0;
	if (want == c->want_out)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die_errno("epoll_ctl");
	c->want_out = want;
}

static void conn_flush(struct run *r, struct conn *c)
{
	while (c->out.len) {
		ssize_t w = write(c->fd, c->out.data, c->out.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			die_errno("write");
		}
		buf_consume(&c->out, (size_t)w);
	}
	conn_update_events(r, c);
}

static int xmpp_send_slot(struct run *r, struct conn *c, int slot, double t)
{
	const struct opts *o = r->o;
	if (o->batch) {
		if (c->quota <= 0)
			return 0;
		c->quota--;
	} else if (!r->sending) {
		return 0;
	}
	char req[REQ_MAX];
	struct slot *s = &c->slots[slot];
	s->seq++;
	int n;
	if (r->kind == KIND_PING)
		n = make_ping_iq(req, sizeof req, o, slot, s->seq);
	else
		n = make_conf_iq(req, sizeof req, o, r->to, c, slot, s->seq, room_index(r->sent_total, o));
	if (n <= 0 || n >= (int)sizeof req)
		die("request too long");
	r->sent_total++;
	s->sent = t;
	c->outstanding++;
	r->in_flight++;
	buf_add(&c->out, req, (size_t)n);
	return 1;
}

/* Attribute value of `name` inside the tag [tag, tag_end). Writes at most cap-1 bytes. */
static int tag_attr(const char *tag, const char *tag_end, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = tag; p + nl + 2 < tag_end; p++) {
		if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n') && !strncmp(p, name, nl) && p[nl] == '=' &&
		    (p[nl + 1] == '\'' || p[nl + 1] == '"')) {
			char q = p[nl + 1];
			const char *v = p + nl + 2, *e = v;
			while (e < tag_end && *e != q)
				e++;
			size_t len = (size_t)(e - v);
			if (len >= cap)
				len = cap - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return 1;
		}
	}
	return 0;
}

static void record(struct run *r, double sent, double t, int ok, int ready)
{
	struct stats *s = &r->st;
	s->done++;
	r->in_flight--;
	s->last_answer = t;
	if (!ok)
		s->errors++;
	else if (r->kind == KIND_CONF && !ready)
		s->not_ready++;
	else
		s->ready++;
	if (r->o->batch || (t >= r->t_measure && t < r->t_end)) {
		if (!r->o->batch)
			s->measured++;
		if (ok)
			lat_add(s, t - sent);
	}
}

static void xmpp_stanza(struct run *r, struct conn *c, const char *st, size_t len, double t)
{
	const char *lt = memchr(st, '<', len);
	if (!lt)
		return;
	const char *gt = memchr(lt, '>', len - (size_t)(lt - st));
	if (!gt)
		return;
	if (strncmp(lt, "<iq", 3) != 0 || !(lt[3] == ' ' || lt[3] == '>' || lt[3] == '/')) {
		if (!strncmp(lt, "</stream:stream", 15) || !strncmp(lt, "<stream:error", 13)) {
			fprintf(stderr, "crload: server closed the stream: %.*s\n", (int)len, st);
			exit(2);
		}
		return; /* presence/message: ignore */
	}
	char id[64], type[16];
	if (!tag_attr(lt + 1, gt, "id", id, sizeof id) || !tag_attr(lt + 1, gt, "type", type, sizeof type))
		return;
	char *dot = strchr(id, '.');
	if (!dot)
		return;
	unsigned long slot = strtoul(id, NULL, 16), seq = strtoul(dot + 1, NULL, 16);
	if (slot >= (unsigned long)c->window)
		return;
	struct slot *s = &c->slots[slot];
	if (s->sent == 0 || s->seq != (uint32_t)seq)
		return;
	int ok = !strcmp(type, "result");
	int ready = 0;
	if (ok && r->kind == KIND_CONF) {
		/* search for ready='true' inside this stanza only */
		for (const char *p = st; p + 12 <= st + len; p++)
			if (!memcmp(p, "ready='true'", 12) || !memcmp(p, "ready=\"true\"", 12)) {
				ready = 1;
				break;
			}
	}
	if (!ok && r->st.errors < 3)
		fprintf(stderr, "crload: error answer: %.*s\n", (int)(len > 600 ? 600 : len), st);
	double sent = s->sent;
	s->sent = 0;
	c->outstanding--;
	record(r, sent, t, ok, ready);
	xmpp_send_slot(r, c, (int)slot, t);
}

/* Split c->in into top-level stanzas. Returns bytes consumed. */
static size_t xmpp_scan(struct run *r, struct conn *c, double t)
{
	const char *b = c->in.data;
	size_t len = c->in.len, pos = 0, start = 0;
	int depth = 0;
	size_t i = 0;
	while (i < len) {
		const char *lt = memchr(b + i, '<', len - i);
		if (!lt)
			break;
		const char *gt = memchr(lt, '>', len - (size_t)(lt - b));
		if (!gt)
			break;
		if (depth == 0)
			start = (size_t)(lt - b);
		if (lt[1] == '/')
			depth--;
		else if (lt[1] == '?' || lt[1] == '!' || gt[-1] == '/')
			;
		else
			depth++;
		i = (size_t)(gt - b) + 1;
		if (depth <= 0) {
			xmpp_stanza(r, c, b + start, i - start, t);
			depth = 0;
			pos = i;
		}
	}
	return pos;
}

static int contains(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	for (size_t i = 0; i + nl <= len; i++)
		if (!memcmp(hay + i, needle, nl))
			return 1;
	return 0;
}

/* HTTP: parse complete responses from c->in (FIFO order). Returns bytes consumed. */
static size_t http_scan(struct run *r, struct conn *c, double t)
{
	size_t pos = 0;
	for (;;) {
		const char *b = c->in.data + pos;
		size_t len = c->in.len - pos;
		const char *hend = NULL;
		for (size_t i = 0; i + 3 < len; i++)
			if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n') {
				hend = b + i + 4;
				break;
			}
		if (!hend)
			return pos;
		int status = 0;
		if (len < 12 || strncmp(b, "HTTP/1.", 7) != 0)
			die("bad HTTP response");
		status = atoi(b + 9);
		long clen = -1;
		for (const char *p = b; p < hend; p++) {
			if ((p == b || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) {
				clen = strtol(p + 15, NULL, 10);
				break;
			}
		}
		if (clen < 0)
			die("HTTP response without Content-Length");
		size_t hl = (size_t)(hend - b);
		if (len < hl + (size_t)clen)
			return pos;
		const char *body = hend;
		int ok = status == 200;
		int ready = ok && contains(body, (size_t)clen, "\"ready\":true");
		if (!ok && r->st.errors < 3)
			fprintf(stderr, "crload: HTTP %d: %.*s\n", status, (int)(clen > 400 ? 400 : clen), body);
		if (c->http_head < c->http_tail) {
			double sent = c->http_times[c->http_head++];
			c->outstanding--;
			record(r, sent, t, ok, ready);
		}
		pos += hl + (size_t)clen;
	}
}

static void on_readable(struct run *r, struct conn *c, double t)
{
	for (;;) {
		buf_reserve(&c->in, 65536);
		ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			die_errno("read");
		}
		if (n == 0) {
			if (c->outstanding > 0) {
				fprintf(stderr, "crload: server closed a connection with %ld answers missing\n", c->outstanding);
				exit(2);
			}
			c->closed = 1;
			epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
			return;
		}
		c->in.len += (size_t)n;
		c->in.data[c->in.len] = '\0';
		if ((size_t)n < c->in.cap - c->in.len)
			break;
	}
	size_t used = c->door == DOOR_XMPP ? xmpp_scan(r, c, t) : http_scan(r, c, t);
	buf_consume(&c->in, used);
	conn_flush(r, c);
}

/* CPU seconds used so far by process pid (every thread) from the scheduler's run time in
 * nanoseconds (first field of /proc/PID/task/TID/schedstat), or -1 when that is unavailable. */
static double proc_sched_secs(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	unsigned long long ns = 0;
	int threads = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char p2[96];
		snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", pid, e->d_name);
		FILE *f = fopen(p2, "r");
		if (!f)
			continue; /* a thread that just exited */
		unsigned long long run = 0;
		if (fscanf(f, "%llu", &run) == 1) {
			ns += run;
			threads++;
		}
		fclose(f);
	}
	closedir(d);
	return threads ? (double)ns / 1e9 : -1;
}

/* CPU seconds (user + system) used so far by process pid, or -1: the scheduler's run time when
 * /proc has it (*clock = "schedstat"), else utime + stime of /proc/PID/stat (*clock = "stat":
 * clock ticks, 10 ms steps at USER_HZ 100 = 1 % of a 1-second repetition). */
static double proc_cpu_secs(int pid, const char **clock)
{
	if (pid <= 0)
		return -1;
	double s = proc_sched_secs(pid);
	if (s >= 0) {
		*clock = "schedstat";
		return s;
	}
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	const char *p = strrchr(line, ')');
	if (!p)
		return -1;
	/* after ')': state(3) ppid(4) … utime(14) stime(15) */
	unsigned long long ut = 0, stm = 0;
	int field = 2;
	for (const char *q = p + 1; *q && field < 15;) {
		while (*q == ' ')
			q++;
		field++;
		if (field == 14)
			ut = strtoull(q, NULL, 10);
		else if (field == 15)
			stm = strtoull(q, NULL, 10);
		while (*q && *q != ' ')
			q++;
	}
	long hz = sysconf(_SC_CLK_TCK);
	*clock = "stat";
	return hz > 0 ? (double)(ut + stm) / (double)hz : -1;
}

/* One phase: start every connection's window (or batch quota), run until done; stats in r->st. */
static void run_phase(struct run *r)
{
	const struct opts *o = r->o;
	free(r->st.lat);
	memset(&r->st, 0, sizeof r->st);
	double t0 = now_s();
	r->t_start = t0;
	r->t_measure = t0 + r->warmup;
	r->t_end = r->t_measure + o->duration;
	r->sending = 1;
	r->cpu_start = r->cpu_end = -1;
	int cpu_started = 0;
	long http_room = 0;
	for (int i = 0; i < r->nconns; i++) {
		struct conn *c = &r->conns[i];
		if (c->door == DOOR_XMPP) {
			for (int s = 0; s < c->window; s++)
				xmpp_send_slot(r, c, s, t0);
		} else {
			char req[REQ_MAX];
			while (c->quota > 0) {
				int n = make_http_post(req, sizeof req, o, c, room_index(http_room++, o));
				if (n <= 0 || n >= (int)sizeof req)
					die("request too long");
				buf_add(&c->out, req, (size_t)n);
				c->http_times[c->http_tail++] = t0;
				c->outstanding++;
				c->quota--;
				r->in_flight++;
			}
		}
		conn_flush(r, c);
	}

	struct epoll_event evs[256];
	double give_up = o->batch ? t0 + o->timeout : r->t_end + o->timeout;
	for (;;) {
		double t = now_s();
		if (!o->batch && !cpu_started && t >= r->t_measure) {
			r->cpu_start = proc_cpu_secs(o->server_pid, &r->cpu_clock);
			cpu_started = 1;
		}
		if (!o->batch && r->sending && t >= r->t_end) {
			r->sending = 0;
			r->cpu_end = proc_cpu_secs(o->server_pid, &r->cpu_clock);
		}
		if ((o->batch || !r->sending) && r->in_flight == 0)
			break;
		if (t >= give_up) {
			fprintf(stderr, "crload: %ld answers missing after the timeout\n", r->in_flight);
			break;
		}
		int n = epoll_wait(r->ep, evs, 256, 10);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die_errno("epoll_wait");
		}
		t = now_s();
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			if (c->closed)
				continue;
			if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(r, c, t);
			if (!c->closed && (evs[k].events & EPOLLOUT))
				conn_flush(r, c);
		}
	}
	qsort(r->st.lat, r->st.nlat, sizeof *r->st.lat, cmp_u32);
}

static void usage(void)
{
	fprintf(stderr, "usage: crload load|batch [options]   (see the comment at the top of crload.c)\n");
	exit(2);
}

static const char *need(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage();
	return argv[++*i];
}

int main(int argc, char **argv)
{
	struct opts o = { .port = 0, .domain = "localhost", .to = "focus.localhost", .muc = "conference.localhost",
			  .room_prefix = "room", .http_path = "/conference-request/v1", .conns = 8, .window = 16,
			  .kind = KIND_CONF, .rooms = 1, .duration = 3, .warmup = 1, .first_warmup = -1, .timeout = 30,
			  .http_conns = 0, .reps = 1 };
	struct phase phases[MAX_PHASES];
	int nphases = 0;
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "batch"))
		o.batch = 1;
	else if (strcmp(argv[1], "load") != 0)
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--port")) o.port = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--domain")) o.domain = need(argc, argv, &i);
		else if (!strcmp(a, "--user")) o.user = need(argc, argv, &i);
		else if (!strcmp(a, "--pass")) o.pass = need(argc, argv, &i);
		else if (!strcmp(a, "--conns")) o.conns = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--window")) o.window = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--kind")) {
			const char *k = need(argc, argv, &i);
			if (!strcmp(k, "ping")) o.kind = KIND_PING;
			else if (!strcmp(k, "conf")) o.kind = KIND_CONF;
			else usage();
		}
		else if (!strcmp(a, "--to")) o.to = need(argc, argv, &i);
		else if (!strcmp(a, "--muc")) o.muc = need(argc, argv, &i);
		else if (!strcmp(a, "--room-prefix")) o.room_prefix = need(argc, argv, &i);
		else if (!strcmp(a, "--rooms")) o.rooms = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--duration")) o.duration = atof(need(argc, argv, &i));
		else if (!strcmp(a, "--warmup")) o.warmup = atof(need(argc, argv, &i));
		else if (!strcmp(a, "--first-warmup")) o.first_warmup = atof(need(argc, argv, &i));
		else if (!strcmp(a, "--abba")) o.abba = 1;
		else if (!strcmp(a, "--wait-signal")) o.wait_signal = 1;
		else if (!strcmp(a, "--timeout")) o.timeout = atof(need(argc, argv, &i));
		else if (!strcmp(a, "--requests")) o.requests = atol(need(argc, argv, &i));
		else if (!strcmp(a, "--http-port")) o.http_port = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--http-path")) o.http_path = need(argc, argv, &i);
		else if (!strcmp(a, "--http-requests")) o.http_requests = atol(need(argc, argv, &i));
		else if (!strcmp(a, "--http-conns")) o.http_conns = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--show-request")) o.show_request = 1;
		else if (!strcmp(a, "--reps")) o.reps = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--server-pid")) o.server_pid = atoi(need(argc, argv, &i));
		else if (!strcmp(a, "--phase")) {
			/* NAME:ping or NAME:conf:TO */
			if (nphases == MAX_PHASES)
				die("too many phases");
			char *spec = strdup(need(argc, argv, &i));
			if (!spec)
				die("out of memory");
			char *k = strchr(spec, ':');
			if (!k)
				usage();
			*k++ = '\0';
			char *to = strchr(k, ':');
			if (to)
				*to++ = '\0';
			phases[nphases].spec = spec;
			phases[nphases].name = spec;
			if (!strcmp(k, "ping"))
				phases[nphases].kind = KIND_PING;
			else if (!strcmp(k, "conf") && to)
				phases[nphases].kind = KIND_CONF;
			else
				usage();
			phases[nphases].to = to ? to : o.domain;
			nphases++;
		}
		else usage();
	}
	if (o.user && !o.pass)
		die("--user needs --pass");
	if (o.rooms < 1 || o.window < 1 || o.window > MAX_WINDOW || o.conns < 0 || o.http_conns < 0)
		die("bad --rooms/--window/--conns");
	if (o.batch && o.kind != KIND_CONF)
		die("batch sends conference requests only");
	if (o.conns > 0 && !o.port)
		die("--port is required");
	if (o.http_requests > 0 && (!o.http_port || o.http_conns < 1))
		die("--http-requests needs --http-port and --http-conns");
	if (!o.batch && o.conns < 1)
		die("load needs --conns >= 1");

	sigset_t go;
	sigemptyset(&go);
	sigaddset(&go, SIGUSR1);
	if (o.wait_signal && sigprocmask(SIG_BLOCK, &go, NULL) != 0) /* pending until sigwait */
		die_errno("sigprocmask");

	struct run r;
	memset(&r, 0, sizeof r);
	r.o = &o;
	int nx = o.conns, nh = o.http_requests > 0 ? o.http_conns : 0;
	if (o.batch && o.requests <= 0)
		nx = 0;
	r.nconns = nx + nh;
	r.conns = calloc((size_t)(r.nconns ? r.nconns : 1), sizeof *r.conns);
	if (!r.conns)
		die("out of memory");
	r.ep = epoll_create1(0);
	if (r.ep < 0)
		die_errno("epoll_create1");
	srand((unsigned)getpid());

	for (int i = 0; i < r.nconns; i++) {
		struct conn *c = &r.conns[i];
		for (int k = 0; k < 32; k++)
			c->uid[k] = "0123456789abcdef"[rand() & 15];
		c->uid[32] = '\0';
		if (i < nx) {
			c->door = DOOR_XMPP;
			c->fd = tcp_connect(o.port);
			xmpp_login(c, &o, i);
			if (o.batch) {
				c->quota = o.requests / nx + (i < o.requests % nx);
				c->window = (int)(c->quota < o.window ? (c->quota > 0 ? c->quota : 1) : o.window);
			} else {
				c->window = o.window;
			}
			c->slots = calloc((size_t)c->window, sizeof *c->slots);
			if (!c->slots)
				die("out of memory");
		} else {
			c->door = DOOR_HTTP;
			c->fd = tcp_connect(o.http_port);
			int k = i - nx;
			c->quota = o.http_requests / nh + (k < o.http_requests % nh);
			c->http_times = calloc((size_t)(c->quota ? c->quota : 1), sizeof(double));
			if (!c->http_times)
				die("out of memory");
		}
		set_nonblock(c->fd);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(r.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			die_errno("epoll_ctl");
	}
	if (o.show_request) {
		char req[REQ_MAX];
		struct conn tmpc;
		memset(&tmpc, 0, sizeof tmpc);
		memcpy(tmpc.uid, "0123456789abcdef0123456789abcdef", 33);
		int n = o.kind == KIND_PING ? make_ping_iq(req, sizeof req, &o, 3, 0x1234)
					    : make_conf_iq(req, sizeof req, &o, o.to, &tmpc, 3, 0x1234, 17);
		fprintf(stderr, "crload: request (%d bytes): %s\n", n, req);
		if (o.http_requests > 0) {
			n = make_http_post(req, sizeof req, &o, &tmpc, 17);
			fprintf(stderr, "crload: HTTP request (%d bytes):\n%s\n", n, req);
		}
	}

	/* Go: everything is connected and logged in. */
	if (o.wait_signal) {
		fprintf(stderr, "crload: logged in, waiting for SIGUSR1\n");
		fflush(stderr);
		int sig = 0;
		if (sigwait(&go, &sig) != 0)
			die("sigwait failed");
	}
	int failed = 0;
	if (o.batch) {
		r.kind = KIND_CONF;
		r.to = o.to;
		r.warmup = o.warmup;
		run_phase(&r);
		long total = (nx ? o.requests : 0) + o.http_requests;
		printf("{\"mode\":\"batch\",\"requests\":%ld,\"answered\":%ld,\"ready\":%ld,\"not_ready\":%ld,"
		       "\"errors\":%ld,\"missing\":%ld,\"secs_to_last\":%.6f,\"p50_us\":%.0f,\"p99_us\":%.0f}\n",
		       total, r.st.done, r.st.ready, r.st.not_ready, r.st.errors, r.in_flight,
		       r.st.done ? r.st.last_answer - r.t_start : 0.0, pct(&r.st, 0.5), pct(&r.st, 0.99));
		failed = r.in_flight != 0;
	} else {
		if (!nphases) {
			phases[0].spec = NULL;
			phases[0].name = o.kind == KIND_PING ? "ping" : "conf";
			phases[0].kind = o.kind;
			phases[0].to = o.to;
			nphases = 1;
		}
		for (int rep = 1; rep <= o.reps && !failed; rep++)
			for (int k = 0; k < nphases && !failed; k++) {
				int p = o.abba && rep % 2 == 0 ? nphases - 1 - k : k;
				r.kind = phases[p].kind;
				r.to = phases[p].to;
				r.warmup = rep == 1 && o.first_warmup >= 0 ? o.first_warmup : o.warmup;
				run_phase(&r);
				printf("{\"mode\":\"load\",\"phase\":\"%s\",\"rep\":%d,\"conns\":%d,\"window\":%d,"
				       "\"secs\":%.3f,\"answered\":%ld,\"rps\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
				       "\"errors\":%ld,\"not_ready\":%ld,\"missing\":%ld",
				       phases[p].name, rep, o.conns, o.window, o.duration, r.st.measured,
				       (double)r.st.measured / o.duration, pct(&r.st, 0.5), pct(&r.st, 0.99),
				       r.st.errors, r.st.not_ready, r.in_flight);
				if (r.cpu_start >= 0 && r.cpu_end >= 0 && r.st.measured > 0)
					printf(",\"server_cpu_util\":%.3f,\"server_cpu_us_per_req\":%.2f,"
					       "\"server_cpu_clock\":\"%s\"",
					       (r.cpu_end - r.cpu_start) / o.duration,
					       (r.cpu_end - r.cpu_start) * 1e6 / (double)r.st.measured, r.cpu_clock);
				printf("}\n");
				fflush(stdout);
				failed = r.in_flight != 0;
			}
	}
	for (int i = 0; i < r.nconns; i++) {
		struct conn *c = &r.conns[i];
		if (c->door == DOOR_XMPP && !c->closed) {
			static const char bye[] = "</stream:stream>";
			ssize_t w = write(c->fd, bye, sizeof bye - 1);
			(void)w;
		}
		close(c->fd);
		free(c->in.data);
		free(c->out.data);
		free(c->slots);
		free(c->http_times);
	}
	free(r.conns);
	free(r.st.lat);
	for (int p = 0; p < nphases; p++)
		free(phases[p].spec);
	close(r.ep);
	return failed;
}
