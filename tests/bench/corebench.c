/* corebench — the C core against its floor, in one process (bench only; part 4 and 5 of
 * `make bench`).
 *
 *   xml_floor   bare expat pass over the request bytes: one parser (namespace processing, as the
 *               core's), XML_ParserReset + XML_SetHashSalt (salt drawn once) per request, no-op
 *               element handlers
 *   xml_core    cr_xml_parse + decide (registry lookup of a ready room) + cr_answer_render_xml
 *   json_floor  bare jansson json_loads + json_decref over the body bytes
 *   json_core   cr_json_parse + decide + cr_answer_render_json
 *   scale       --scale-rooms rooms in one registry: bytes per room (malloc in-use delta), one
 *               lookup, one readiness transition (ready → pending, pending → ready)
 *   vnodes      visitor-node choice at 10 and 100 nodes (weights 1..3): `hash` = a room without
 *               state (lookup miss + weighted rendezvous over every node, cr_vnodes_pick), `reuse`
 *               = cr_vnodes_choose for a room that already uses a node (lookup, its pairs, one
 *               pending redirect recorded, expiry as time advances); allocations counted through
 *               the set's allocator during the measured loops
 *
 * Usage:
 *   corebench [--iters N] [--reps R] [--scale-rooms M]   one JSON object on stdout
 *   corebench --only NAME --iters N                        runs the loop of NAME once (for
 *               valgrind --tool=callgrind --collect-atstart=no --toggle-collect=loop_NAME)
 */
#define _POSIX_C_SOURCE 200809L
#include <expat.h>
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cr.h"

/* ≈290 bytes: the <conference> element as the XMPP door hands it to the core. */
static const char XML_REQ[] =
    "<conference xmlns='http://jitsi.org/protocol/focus' room='room17@conference.localhost' "
    "machine-uid='0123456789abcdef0123456789abcdef'><property name='rtcstatsEnabled' value='false'/>"
    "<property name='visitors-version' value='1'/><property name='startAudioMuted' value='10'/>"
    "</conference>";
/* ≈170 bytes: the same request as an HTTP body. */
static const char JSON_REQ[] =
    "{\"room\":\"room17@conference.localhost\",\"machineUid\":\"0123456789abcdef0123456789abcdef\","
    "\"properties\":{\"rtcstatsEnabled\":false,\"visitors-version\":1,\"startAudioMuted\":10}}";
static const char ROOM[] = "room17@conference.localhost";
static const char FOCUS[] = "focus.localhost";

struct ctx {
	XML_Parser expat;
	unsigned long salt;
	long elements;
	cr_xml_parser *xp;
	cr_limits lim;
	cr_request req;
	cr_registry *reg;
	cr_answer_config acfg;
	cr_buf out;
	size_t checksum;
};

static void die(const char *msg)
{
	fprintf(stderr, "corebench: %s\n", msg);
	exit(2);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	(void)name;
	(void)atts;
	((struct ctx *)ud)->elements++;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	(void)ud;
	(void)name;
}

static void expat_setup(struct ctx *c)
{
	XML_SetUserData(c->expat, c);
	XML_SetElementHandler(c->expat, on_start, on_end);
	XML_SetHashSalt(c->expat, c->salt);
}

/* ---- one request of each kind ---- */
static void one_xml_floor(struct ctx *c)
{
	XML_ParserReset(c->expat, NULL);
	expat_setup(c);
	if (XML_Parse(c->expat, XML_REQ, (int)(sizeof XML_REQ - 1), 1) != XML_STATUS_OK)
		die("expat rejected the request");
}

static void decide_and_render(struct ctx *c, int xml)
{
	const char *room = cr_request_str(&c->req, c->req.room);
	if (!room)
		die("no room parsed");
	cr_room_state s = cr_registry_state(c->reg, room, c->req.room.len);
	cr_answer a;
	memset(&a, 0, sizeof a);
	a.room.s = room;
	a.room.len = c->req.room.len;
	a.ready = s == CR_ROOM_READY;
	a.focus_jid.s = FOCUS;
	a.focus_jid.len = sizeof FOCUS - 1;
	cr_error err;
	cr_condition rc = xml ? cr_answer_render_xml(&a, &c->acfg, &c->out, &err)
			      : cr_answer_render_json(&a, &c->acfg, &c->out, &err);
	if (rc != CR_OK)
		die("render failed");
	if (!a.ready)
		die("the room is not ready");
	c->checksum += c->out.len;
}

static void one_xml_core(struct ctx *c)
{
	cr_error err;
	if (cr_xml_parse(c->xp, XML_REQ, sizeof XML_REQ - 1, &c->lim, &c->req, &err) != CR_OK) {
		fprintf(stderr, "corebench: cr_xml_parse: %s\n", err.text);
		exit(2);
	}
	decide_and_render(c, 1);
}

static void one_json_floor(struct ctx *c)
{
	(void)c;
	json_error_t jerr;
	json_t *j = json_loads(JSON_REQ, 0, &jerr);
	if (!j)
		die("jansson rejected the body");
	json_decref(j);
}

static void one_json_core(struct ctx *c)
{
	cr_error err;
	if (cr_json_parse(JSON_REQ, sizeof JSON_REQ - 1, &c->lim, &c->req, &err) != CR_OK) {
		fprintf(stderr, "corebench: cr_json_parse: %s\n", err.text);
		exit(2);
	}
	decide_and_render(c, 0);
}

/* The measured loops: separate non-inlined functions so callgrind can count just them. */
#define LOOP(NAME)                                                                       \
	__attribute__((noinline)) void loop_##NAME(struct ctx *c, long n);                 \
	__attribute__((noinline)) void loop_##NAME(struct ctx *c, long n)                  \
	{                                                                                  \
		for (long i = 0; i < n; i++)                                               \
			one_##NAME(c);                                                     \
	}
LOOP(xml_floor)
LOOP(xml_core)
LOOP(json_floor)
LOOP(json_core)

struct bench {
	const char *name;
	void (*one)(struct ctx *);
	void (*loop)(struct ctx *, long);
};

static const struct bench BENCHES[] = {
	{ "xml_floor", one_xml_floor, loop_xml_floor },
	{ "xml_core", one_xml_core, loop_xml_core },
	{ "json_floor", one_json_floor, loop_json_floor },
	{ "json_core", one_json_core, loop_json_core },
};
#define NBENCH (sizeof BENCHES / sizeof BENCHES[0])

static void ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof *c);
	c->expat = XML_ParserCreateNS(NULL, ' ');
	if (!c->expat)
		die("XML_ParserCreateNS failed");
	c->salt = (unsigned long)now_ns() ^ 0x5bd1e995UL;
	expat_setup(c);
	c->xp = cr_xml_parser_new();
	if (!c->xp)
		die("cr_xml_parser_new failed");
	cr_limits_default(&c->lim);
	cr_request_init(&c->req);
	cr_registry_config rcfg;
	cr_registry_config_default(&rcfg);
	c->reg = cr_registry_new(&rcfg);
	if (!c->reg)
		die("cr_registry_new failed");
	cr_error err;
	size_t n = 0;
	uint64_t ids[1];
	/* a few other rooms, then the ready room of the request */
	char key[64];
	for (int i = 0; i < 1000; i++) {
		int kl = snprintf(key, sizeof key, "other%d@conference.localhost", i);
		if (cr_registry_set_ready(c->reg, key, (size_t)kl, ids, 1, &n, &err) != CR_OK)
			die("cr_registry_set_ready failed");
	}
	if (cr_registry_set_ready(c->reg, ROOM, sizeof ROOM - 1, ids, 1, &n, &err) != CR_OK)
		die("cr_registry_set_ready failed");
	cr_answer_config_init(&c->acfg);
	cr_buf_init(&c->out);
}

static void ctx_free(struct ctx *c)
{
	XML_ParserFree(c->expat);
	cr_xml_parser_free(c->xp);
	cr_request_free(&c->req);
	cr_registry_free(c->reg);
	cr_answer_config_free(&c->acfg);
	cr_buf_free(&c->out);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- scale ---- */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void scale(long nrooms, FILE *out)
{
	/* keys first (not counted), then the registry */
	const size_t KW = 40;
	char *keys = malloc((size_t)nrooms * KW);
	uint32_t *klen = malloc((size_t)nrooms * sizeof *klen);
	uint32_t *order = malloc((size_t)nrooms * sizeof *order);
	if (!keys || !klen || !order)
		die("out of memory");
	size_t keybytes = 0;
	for (long i = 0; i < nrooms; i++) {
		int n = snprintf(keys + (size_t)i * KW, KW, "room%ld@conference.localhost", i);
		klen[i] = (uint32_t)n;
		keybytes += (size_t)n;
		order[i] = (uint32_t)i;
	}
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (long i = nrooms - 1; i > 0; i--) {
		long j = (long)(rng_next(&seed) % (uint64_t)(i + 1));
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}

	cr_registry_config cfg;
	cr_registry_config_default(&cfg);
	cfg.max_rooms = (size_t)nrooms;
	size_t before = heap_in_use();
	cr_registry *reg = cr_registry_new(&cfg);
	if (!reg)
		die("cr_registry_new failed");
	cr_error err;
	uint64_t ids[1];
	size_t n;
	double t0 = now_ns();
	for (long i = 0; i < nrooms; i++)
		if (cr_registry_set_ready(reg, keys + (size_t)i * KW, klen[i], ids, 1, &n, &err) != CR_OK) {
			fprintf(stderr, "corebench: set_ready #%ld: %s\n", i, err.text);
			exit(2);
		}
	double t_insert = now_ns() - t0;
	size_t after = heap_in_use();
	if (cr_registry_count(reg) != (size_t)nrooms)
		die("registry count mismatch");

	/* lookups in random order */
	long ready = 0;
	t0 = now_ns();
	for (long i = 0; i < nrooms; i++) {
		uint32_t k = order[i];
		ready += cr_registry_state(reg, keys + (size_t)k * KW, klen[k]) == CR_ROOM_READY;
	}
	double t_lookup = now_ns() - t0;
	if (ready != nrooms)
		die("a room is not ready");
	/* transitions: ready → pending, then pending → ready, random order */
	t0 = now_ns();
	for (long i = 0; i < nrooms; i++) {
		uint32_t k = order[i];
		if (cr_registry_set_pending(reg, keys + (size_t)k * KW, klen[k], &err) != CR_OK)
			die("set_pending failed");
	}
	double t_pending = now_ns() - t0;
	t0 = now_ns();
	for (long i = 0; i < nrooms; i++) {
		uint32_t k = order[i];
		if (cr_registry_set_ready(reg, keys + (size_t)k * KW, klen[k], ids, 1, &n, &err) != CR_OK)
			die("set_ready failed");
	}
	double t_ready = now_ns() - t0;
	cr_registry_stats st;
	cr_registry_stats_get(reg, &st);
	if (st.ready != (size_t)nrooms)
		die("ready count mismatch");
	cr_registry_free(reg);
	fprintf(out,
		"\"scale_rooms\":%ld,\"scale_key_bytes_avg\":%.1f,\"bytes_per_room\":%.1f,"
		"\"scale_insert_ns\":%.1f,\"scale_lookup_ns\":%.1f,\"scale_set_pending_ns\":%.1f,"
		"\"scale_set_ready_ns\":%.1f,\"scale_transition_ns\":%.1f",
		nrooms, (double)keybytes / (double)nrooms, (double)(after - before) / (double)nrooms,
		t_insert / (double)nrooms, t_lookup / (double)nrooms, t_pending / (double)nrooms,
		t_ready / (double)nrooms, (t_pending + t_ready) / (2.0 * (double)nrooms));
	free(keys);
	free(klen);
	free(order);
}

/* ---- visitor nodes ---- */
struct vcount {
	long allocs;
};

static void *vn_alloc(void *ud, void *p, size_t n)
{
	if (n == 0) {
		free(p);
		return NULL;
	}
	((struct vcount *)ud)->allocs++;
	return realloc(p, n);
}

#define VROOMS 4096

static void vnodes_part(int nodes, long iters, int reps, FILE *out)
{
	struct vcount cnt = { 0 };
	cr_vnodes_config cfg;
	cr_vnodes_config_default(&cfg);
	cfg.alloc = vn_alloc;
	cfg.alloc_ud = &cnt;
	cr_vnodes *s = cr_vnodes_new(&cfg);
	if (!s)
		die("cr_vnodes_new failed");
	char id[32], focus[64];
	cr_error err;
	for (int i = 0; i < nodes; i++) {
		int il = snprintf(id, sizeof id, "v%d", i + 1);
		int fl = snprintf(focus, sizeof focus, "focus@v%d.meet.jitsi", i + 1);
		if (cr_vnodes_add_node(s, id, (size_t)il, focus, (size_t)fl, 1 + i % 3, 1u << 30, &err) != CR_OK)
			die("cr_vnodes_add_node failed");
	}
	static char used[VROOMS][48], fresh[VROOMS][48];
	static size_t used_len[VROOMS], fresh_len[VROOMS];
	size_t node;
	for (int i = 0; i < VROOMS; i++) {
		used_len[i] = (size_t)snprintf(used[i], sizeof used[i], "room%d@conference.localhost", i);
		fresh_len[i] = (size_t)snprintf(fresh[i], sizeof fresh[i], "new%d@conference.localhost", i);
		if (cr_vnodes_choose(s, used[i], used_len[i], 0, &node) != CR_VNODE_HASH)
			die("first choice is not hash");
	}
	double hash_ns[100], reuse_ns[100], now = 0;
	size_t sum = 0;
	long allocs0 = cnt.allocs;
	for (int r = 0; r < reps; r++) {
		double t0 = now_ns();
		for (long i = 0; i < iters; i++) {
			int k = (int)(i & (VROOMS - 1));
			if (cr_vnodes_pick(s, fresh[k], fresh_len[k], now, &node) != CR_VNODE_HASH)
				die("pick is not hash");
			sum += node;
		}
		hash_ns[r] = (now_ns() - t0) / (double)iters;
		t0 = now_ns();
		for (long i = 0; i < iters; i++) {
			int k = (int)(i & (VROOMS - 1));
			now += 1e-4; /* 10,000 choices per second of the caller's clock */
			if (cr_vnodes_choose(s, used[k], used_len[k], now, &node) != CR_VNODE_REUSE)
				die("choose is not reuse");
			sum += node;
		}
		reuse_ns[r] = (now_ns() - t0) / (double)iters;
	}
	long allocs = cnt.allocs - allocs0;
	cr_vnodes_free(s);
	double hmin = hash_ns[0], hmax = hash_ns[0], rmin = reuse_ns[0], rmax = reuse_ns[0];
	for (int r = 1; r < reps; r++) {
		if (hash_ns[r] < hmin) hmin = hash_ns[r];
		if (hash_ns[r] > hmax) hmax = hash_ns[r];
		if (reuse_ns[r] < rmin) rmin = reuse_ns[r];
		if (reuse_ns[r] > rmax) rmax = reuse_ns[r];
	}
	fprintf(out,
		"\"vnodes_hash_%d_ns\":%.1f,\"vnodes_hash_%d_ns_min\":%.1f,\"vnodes_hash_%d_ns_max\":%.1f,"
		"\"vnodes_reuse_%d_ns\":%.1f,\"vnodes_reuse_%d_ns_min\":%.1f,\"vnodes_reuse_%d_ns_max\":%.1f,"
		"\"vnodes_allocs_%d\":%ld,\"vnodes_checksum_%d\":%zu",
		nodes, median(hash_ns, reps), nodes, hmin, nodes, hmax, nodes, median(reuse_ns, reps), nodes, rmin,
		nodes, rmax, nodes, allocs, nodes, sum);
}

int main(int argc, char **argv)
{
	long iters = 200000, scale_rooms = 1000000;
	int reps = 5;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--scale-rooms") && i + 1 < argc)
			scale_rooms = atol(argv[++i]);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: corebench [--iters N] [--reps R] [--scale-rooms M] [--only NAME]\n");
			return 2;
		}
	}
	if (iters < 1 || reps < 1 || reps > 99 || scale_rooms < 0)
		die("bad arguments");

	struct ctx c;
	ctx_init(&c);
	/* warm-up: every path once per 100 iterations, outside the measured loops */
	for (size_t b = 0; b < NBENCH; b++)
		for (int i = 0; i < 100; i++)
			BENCHES[b].one(&c);

	if (only) {
		size_t b;
		for (b = 0; b < NBENCH; b++)
			if (!strcmp(BENCHES[b].name, only))
				break;
		if (b == NBENCH)
			die("unknown --only name");
		BENCHES[b].loop(&c, iters);
		printf("{\"only\":\"%s\",\"iters\":%ld,\"checksum\":%zu}\n", only, iters, c.checksum);
		ctx_free(&c);
		return 0;
	}

	/* alternate floor and core: rep 1 of every loop, rep 2 of every loop, … */
	double ns[NBENCH][100];
	for (int r = 0; r < reps; r++)
		for (size_t b = 0; b < NBENCH; b++) {
			double t0 = now_ns();
			BENCHES[b].loop(&c, iters);
			ns[b][r] = (now_ns() - t0) / (double)iters;
		}
	double med[NBENCH], lo[NBENCH], hi[NBENCH];
	for (size_t b = 0; b < NBENCH; b++) {
		med[b] = median(ns[b], reps); /* sorts */
		lo[b] = ns[b][0];
		hi[b] = ns[b][reps - 1];
	}
	printf("{\"xml_bytes\":%zu,\"json_bytes\":%zu,\"iters\":%ld,\"reps\":%d,", sizeof XML_REQ - 1,
	       sizeof JSON_REQ - 1, iters, reps);
	for (size_t b = 0; b < NBENCH; b++)
		printf("\"%s_ns\":%.1f,\"%s_ns_min\":%.1f,\"%s_ns_max\":%.1f,\"%s_rps\":%.0f,", BENCHES[b].name, med[b],
		       BENCHES[b].name, lo[b], BENCHES[b].name, hi[b], BENCHES[b].name, 1e9 / med[b]);
	printf("\"core_xml_ratio\":%.3f,\"core_json_ratio\":%.3f,\"core_xml_rps\":%.0f,\"core_json_rps\":%.0f",
	       med[1] / med[0], med[3] / med[2], 1e9 / med[1], 1e9 / med[3]);
	if (scale_rooms > 0) {
		printf(",");
		scale(scale_rooms, stdout);
	}
	printf(",\"vnodes_iters\":%ld,", iters);
	vnodes_part(10, iters, reps, stdout);
	printf(",");
	vnodes_part(100, iters, reps, stdout);
	printf(",\"checksum\":%zu}\n", c.checksum);
	ctx_free(&c);
	return 0;
}
