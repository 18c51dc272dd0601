/* test_vnodes.c — the visitor-node set (native/vnodes.c): configuration checks, each choice rule
 * and their order, capacity, the pending window and arrivals, weights, stability when nodes are
 * added, removed or marked down, every bound, no allocation on the choice path (a counting
 * allocator given to the set), allocation failure at every point. Prints the weight shares and
 * the stability figures. */
#include "cr.h"
#include "ctest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define K(s) s, strlen(s)
static cr_error E;

/* ---- a counting (and optionally failing) allocator, per set ---------------------------------- */
typedef struct {
    long allocs;   /* successful malloc/realloc calls */
    long frees;    /* free calls of a non-NULL pointer */
    long live;     /* blocks alive */
    long fail_at;  /* the allocation with this number fails (-1: never) */
    long attempts;
} counter;

static void *counting(void *ud, void *p, size_t n) {
    counter *c = ud;
    if (n == 0) {
        if (p) {
            c->frees++;
            c->live--;
        }
        free(p);
        return NULL;
    }
    if (c->attempts++ == c->fail_at) return NULL;
    void *q = realloc(p, n);
    if (!q) return NULL;
    c->allocs++;
    if (!p) c->live++;
    return q;
}

static cr_vnodes *mk(double window, size_t rooms, size_t pending, counter *c) {
    cr_vnodes_config cfg;
    cr_vnodes_config_default(&cfg);
    cfg.pending_window = window;
    if (rooms) cfg.max_rooms = rooms;
    if (pending) cfg.max_pending = pending;
    if (c) {
        cfg.alloc = counting;
        cfg.alloc_ud = c;
    }
    return cr_vnodes_new(&cfg);
}

static void add(cr_vnodes *s, const char *id, double w, uint32_t cap) {
    char focus[128];
    snprintf(focus, sizeof focus, "focus@%s.meet.jitsi", id);
    cr_condition c = cr_vnodes_add_node(s, K(id), K(focus), w, cap, &E);
    if (c) fprintf(stderr, "add %s: %s\n", id, E.text);
    CHECK(c == CR_OK);
}

static size_t idx(cr_vnodes *s, const char *id) {
    size_t i = SIZE_MAX;
    CHECK(cr_vnodes_find(s, K(id), &i));
    return i;
}

static const char *name_of(cr_vnodes *s, size_t i) {
    cr_vnode_info in;
    cr_vnodes_node_info(s, i, &in);
    return in.id;
}

static uint64_t load(cr_vnodes *s, const char *id) {
    cr_vnode_info in;
    cr_vnodes_node_info(s, idx(s, id), &in);
    return in.load;
}

static uint64_t pending(cr_vnodes *s, const char *id) {
    cr_vnode_info in;
    cr_vnodes_node_info(s, idx(s, id), &in);
    return in.pending;
}

static void report(cr_vnodes *s, const char *id, const char *room, uint32_t v, double now) {
    CHECK(cr_vnodes_report(s, idx(s, id), K(room), v, now, &E) == CR_OK);
}

/* The node the rendezvous rule gives among the listed nodes (ids, weights), computed here from
 * the formula alone: the highest -w / ln(u). */
static const char *expected_hash(const char *room, const char *const *ids, const double *w,
                                 size_t n) {
    const char *best = NULL;
    double bs = 0;
    for (size_t i = 0; i < n; i++) {
        double u = cr_vnodes_unit(K(room), K(ids[i]));
        double sc = -w[i] / log(u);
        if (!best || sc > bs) {
            best = ids[i];
            bs = sc;
        }
    }
    return best;
}

static void room_name(char *buf, size_t cap, int i) {
    snprintf(buf, cap, "room%d@conference.meet.example.com", i);
}

/* ---- configuration --------------------------------------------------------------------------- */
static void test_config(void) {
    cr_vnodes_config c;
    cr_vnodes_config_default(&c);
    CHECK(c.pending_window == 60 && c.max_rooms == 100000 && c.max_pending == 1000000 && !c.alloc);
    cr_vnodes_config bad = c;
    bad.pending_window = -1;
    CHECK(cr_vnodes_new(&bad) == NULL);
    bad.pending_window = NAN;
    CHECK(cr_vnodes_new(&bad) == NULL);
    bad.pending_window = INFINITY;
    CHECK(cr_vnodes_new(&bad) == NULL);
    bad = c;
    bad.max_rooms = 0;
    CHECK(cr_vnodes_new(&bad) == NULL);
    bad = c;
    bad.max_pending = 0;
    CHECK(cr_vnodes_new(&bad) == NULL);
    bad.max_pending = CR_VNODES_MAX_PENDING_LIMIT + 1;
    CHECK(cr_vnodes_new(&bad) == NULL);

    cr_vnodes *s = mk(60, 0, 0, NULL);
    CHECK(s != NULL);
    CHECK(cr_vnodes_add_node(s, K(""), K("f@x"), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v1"), K(""), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v\x01"), K("f@x"), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@\xff"), 1, 1, &E) == CR_BAD_REQUEST);
    char big[CR_VNODES_MAX_ID + 2];
    memset(big, 'a', sizeof big);
    CHECK(cr_vnodes_add_node(s, big, CR_VNODES_MAX_ID + 1, K("f@x"), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, big, CR_VNODES_MAX_ID, K("f@x"), 1, 1, &E) == CR_OK);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), 0, 1, &E) == CR_BAD_REQUEST);
    CHECK(strstr(E.text, "weight") != NULL);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), -1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), NAN, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), INFINITY, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), 1, 0, &E) == CR_BAD_REQUEST);
    CHECK(strstr(E.text, "capacity") != NULL);
    CHECK(cr_vnodes_count(s) == 1);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("f@x"), 0.5, 1, &E) == CR_OK);
    CHECK(cr_vnodes_add_node(s, K("v1"), K("g@x"), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(strstr(E.text, "duplicate") != NULL);
    CHECK(cr_vnodes_count(s) == 2);
    cr_vnode_info in;
    cr_vnodes_node_info(s, 1, &in);
    CHECK_STR(in.id, "v1");
    CHECK_STR(in.focus_jid, "f@x");
    CHECK(in.weight == 0.5 && in.capacity == 1 && in.healthy && in.load == 0 && in.rooms == 0);
    /* at most CR_VNODES_MAX_NODES */
    char id[16];
    for (int i = 2; i < CR_VNODES_MAX_NODES; i++) {
        snprintf(id, sizeof id, "n%d", i);
        CHECK(cr_vnodes_add_node(s, K(id), K("f@x"), 1, 1, &E) == CR_OK);
    }
    CHECK(cr_vnodes_count(s) == CR_VNODES_MAX_NODES);
    CHECK(cr_vnodes_add_node(s, K("one-more"), K("f@x"), 1, 1, &E) == CR_BAD_REQUEST);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
    cr_vnodes_free(NULL);
    CHECK(strcmp(cr_vnode_how_name(CR_VNODE_REUSE), "reuse") == 0 &&
          strcmp(cr_vnode_how_name(CR_VNODE_HASH), "hash") == 0 &&
          strcmp(cr_vnode_how_name(CR_VNODE_LEAST_LOADED), "least-loaded") == 0 &&
          strcmp(cr_vnode_how_name(CR_VNODE_NONE), "none") == 0);
}

/* ---- the rules and their order ----------------------------------------------------------------- */
static void test_rules(void) {
    static const char *const ids[] = {"v1", "v2", "v3"};
    static const double w[] = {1, 1, 1};
    cr_vnodes *s = mk(60, 0, 0, NULL);
    add(s, "v1", 1, 10);
    add(s, "v2", 1, 10);
    add(s, "v3", 1, 10);
    size_t n = SIZE_MAX;
    const char *room = "big@conference.x";

    /* a room without state: rule 2 (hash), exactly the node the formula gives */
    CHECK(!cr_vnodes_uses(s, K(room)));
    CHECK(cr_vnodes_pick(s, K(room), 0, &n) == CR_VNODE_HASH);
    CHECK_STR(name_of(s, n), expected_hash(room, ids, w, 3));
    CHECK(!cr_vnodes_uses(s, K(room))); /* pick records nothing */
    const char *h = name_of(s, n);
    CHECK(cr_vnodes_choose(s, K(room), 0, &n) == CR_VNODE_HASH);
    CHECK_STR(name_of(s, n), h);
    CHECK(cr_vnodes_uses(s, K(room)));
    CHECK(pending(s, h) == 1 && load(s, h) == 1);
    /* then rule 1 (reuse) */
    CHECK(cr_vnodes_choose(s, K(room), 1, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(s, n), h);
    CHECK(load(s, h) == 2);

    /* rule 1 takes the least loaded of the nodes the room uses (relative to capacity), even when
     * the hash would give another node */
    cr_vnodes *t = mk(60, 0, 0, NULL);
    add(t, "v1", 1, 10);
    add(t, "v2", 1, 10);
    add(t, "v3", 1, 100);
    report(t, "v1", room, 5, 0);
    report(t, "v2", room, 3, 0);
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(t, n), "v2");
    CHECK(load(t, "v2") == 4); /* 3 reported + 1 pending */
    report(t, "v3", room, 40, 0); /* 40/100 ties v2's 4/10: the first configured wins */
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(t, n), "v2");
    CHECK(load(t, "v2") == 5);
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(t, n), "v3"); /* 40/100 < 5/10 */
    report(t, "v3", room, 60, 0);   /* 60/100: v1 (5/10) and v2 (5/10) tie */
    CHECK(load(t, "v3") == 60);     /* the arrival consumed the pending redirect */
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(t, n), "v1");
    /* a used node at capacity is not reused: v1, v2 full → v3 (used, 61/100) */
    report(t, "v1", room, 10, 0);
    report(t, "v2", room, 10, 0);
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_REUSE);
    CHECK_STR(name_of(t, n), "v3");
    /* a used node that is down is not reused */
    cr_vnodes_set_healthy(t, idx(t, "v3"), false);
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_LEAST_LOADED); /* v1, v2 full */
    CHECK(n == idx(t, "v1") || n == idx(t, "v2"));
    CHECK(cr_vnodes_check(t));
    cr_vnodes_free(t);

    /* rule 2 only among nodes with spare capacity: fill the hash node of a fresh room */
    t = mk(60, 0, 0, NULL);
    add(t, "v1", 1, 2);
    add(t, "v2", 1, 2);
    add(t, "v3", 1, 2);
    const char *fresh = "fresh@conference.x";
    const char *first = expected_hash(fresh, ids, w, 3);
    report(t, first, "other@conference.x", 2, 0); /* full, through another room */
    CHECK(cr_vnodes_choose(t, K(fresh), 0, &n) == CR_VNODE_HASH);
    CHECK(strcmp(name_of(t, n), first) != 0);
    const char *rest[2];
    double rw[2] = {1, 1};
    size_t k = 0;
    for (int i = 0; i < 3; i++)
        if (strcmp(ids[i], first) != 0) rest[k++] = ids[i];
    CHECK_STR(name_of(t, n), expected_hash(fresh, rest, rw, 2));
    cr_vnodes_free(t);

    /* rule 3 when every healthy node is full: least loaded relative to capacity, then the first */
    t = mk(60, 0, 0, NULL);
    add(t, "v1", 1, 2);
    add(t, "v2", 1, 4);
    add(t, "v3", 1, 2);
    report(t, "v1", "a@x", 3, 0); /* 3/2 */
    report(t, "v2", "b@x", 5, 0); /* 5/4 */
    report(t, "v3", "c@x", 2, 0); /* 2/2 */
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_LEAST_LOADED);
    CHECK_STR(name_of(t, n), "v3"); /* 1.0 < 1.25 < 1.5 */
    CHECK(cr_vnodes_choose(t, K(room), 0, &n) == CR_VNODE_LEAST_LOADED);
    CHECK_STR(name_of(t, n), "v2"); /* v3 now 3/2; 5/4 least */
    /* ties go to the first configured */
    cr_vnodes *u = mk(60, 0, 0, NULL);
    add(u, "v1", 1, 1);
    add(u, "v2", 1, 1);
    report(u, "v2", "b@x", 1, 0);
    report(u, "v1", "a@x", 1, 0);
    CHECK(cr_vnodes_pick(u, K(room), 0, &n) == CR_VNODE_LEAST_LOADED && n == 0);
    /* no healthy node: none, nothing recorded */
    cr_vnodes_set_healthy(u, 0, false);
    cr_vnodes_set_healthy(u, 1, false);
    n = 77;
    CHECK(cr_vnodes_choose(u, K(room), 0, &n) == CR_VNODE_NONE);
    CHECK(n == 77 && !cr_vnodes_uses(u, K(room)));
    cr_vnodes_set_healthy(u, 1, true);
    CHECK(cr_vnodes_choose(u, K(room), 0, &n) == CR_VNODE_LEAST_LOADED && n == 1);
    cr_vnodes_free(u);
    /* an empty set answers none */
    u = mk(60, 0, 0, NULL);
    CHECK(cr_vnodes_choose(u, K(room), 0, &n) == CR_VNODE_NONE);
    cr_vnodes_free(u);
    CHECK(cr_vnodes_check(t) && cr_vnodes_check(s));
    cr_vnodes_free(t);
    cr_vnodes_free(s);
}

/* ---- capacity, pending window, arrivals ---------------------------------------------------------- */
static void test_pending(void) {
    cr_vnodes *s = mk(10, 0, 0, NULL);
    add(s, "v1", 1, 3);
    size_t n;
    const char *room = "r@x";
    CHECK(cr_vnodes_choose(s, K(room), 0, &n) == CR_VNODE_HASH);
    CHECK(cr_vnodes_choose(s, K(room), 1, &n) == CR_VNODE_REUSE);
    CHECK(cr_vnodes_choose(s, K(room), 2, &n) == CR_VNODE_REUSE);
    CHECK(load(s, "v1") == 3);
    /* at capacity: no reuse, no hash; least-loaded (the only healthy node) */
    CHECK(cr_vnodes_pick(s, K(room), 2, &n) == CR_VNODE_LEAST_LOADED);
    /* a redirect counts while now - t < window */
    cr_vnodes_expire(s, 9.999);
    CHECK(pending(s, "v1") == 3);
    cr_vnodes_expire(s, 10);
    CHECK(pending(s, "v1") == 2);
    CHECK(cr_vnodes_pick(s, K(room), 10, &n) == CR_VNODE_REUSE);
    cr_vnodes_expire(s, 12);
    CHECK(pending(s, "v1") == 0 && load(s, "v1") == 0);
    CHECK(!cr_vnodes_uses(s, K(room))); /* nothing reported, nothing pending: forgotten */
    cr_vnodes_stats st;
    cr_vnodes_stats_get(s, &st);
    CHECK(st.rooms == 0 && st.pairs == 0 && st.ring == 0 && st.pending == 0);

    /* arrivals consume the oldest pending redirects of the pair; load = reported + the rest */
    for (int t = 20; t < 25; t++) cr_vnodes_choose(s, K(room), t, &n); /* t = 20..24; cap 3 */
    CHECK(pending(s, "v1") == 5);
    report(s, "v1", room, 2, 25);
    CHECK(pending(s, "v1") == 3 && load(s, "v1") == 5);
    report(s, "v1", room, 1, 25); /* a decrease consumes nothing */
    CHECK(pending(s, "v1") == 3 && load(s, "v1") == 4);
    report(s, "v1", room, 2, 25); /* 1 → 2: one more arrival */
    CHECK(pending(s, "v1") == 2 && load(s, "v1") == 4);
    /* the consumed ones were the oldest (t = 20, 21, 22): at 32 they leave without counting again */
    cr_vnodes_expire(s, 32);
    CHECK(pending(s, "v1") == 2);
    cr_vnodes_expire(s, 33); /* t = 23 */
    CHECK(pending(s, "v1") == 1);
    cr_vnodes_expire(s, 34); /* t = 24 */
    CHECK(pending(s, "v1") == 0 && load(s, "v1") == 2);
    CHECK(cr_vnodes_uses(s, K(room))); /* visitors reported */
    cr_vnode_pair_info pi[4];
    CHECK(cr_vnodes_room_info(s, K(room), pi, 4) == 1 && pi[0].node == 0 && pi[0].visitors == 2 &&
          pi[0].pending == 0);
    report(s, "v1", room, 0, 35); /* 0 with nothing pending: forgotten */
    CHECK(!cr_vnodes_uses(s, K(room)));
    CHECK(cr_vnodes_room_info(s, K(room), pi, 4) == 0);
    /* 0 for a room without state changes nothing */
    report(s, "v1", "nobody@x", 0, 35);
    CHECK(!cr_vnodes_uses(s, K("nobody@x")));
    /* 0 while redirects are pending keeps the pair until they expire */
    cr_vnodes_choose(s, K(room), 40, &n);
    report(s, "v1", room, 0, 40);
    CHECK(cr_vnodes_uses(s, K(room)));
    cr_vnodes_expire(s, 50);
    CHECK(!cr_vnodes_uses(s, K(room)));

    /* a time earlier than the latest seen counts as the latest (the ring stays in time order) */
    cr_vnodes_choose(s, K(room), 100, &n);
    cr_vnodes_choose(s, K(room), 95, &n);
    cr_vnodes_expire(s, 109.5);
    CHECK(pending(s, "v1") == 2);
    cr_vnodes_expire(s, 110);
    CHECK(pending(s, "v1") == 0);

    /* report_total: the node's visitors are max(sum of room reports, total) */
    report(s, "v1", "a@x", 2, 200);
    cr_vnodes_report_total(s, 0, 1, 200);
    CHECK(load(s, "v1") == 2);
    cr_vnodes_report_total(s, 0, 7, 200);
    cr_vnode_info in;
    cr_vnodes_node_info(s, 0, &in);
    CHECK(in.load == 7 && in.visitors == 7 && in.room_visitors == 2 && in.reported_total == 7);
    CHECK(cr_vnodes_pick(s, K("new@x"), 200, &n) == CR_VNODE_LEAST_LOADED); /* 7 >= 3 */
    cr_vnodes_report_total(s, 0, 0, 200);
    CHECK(load(s, "v1") == 2);

    /* window 0: redirects never count */
    cr_vnodes *z = mk(0, 0, 0, NULL);
    add(z, "v1", 1, 1);
    cr_vnodes_choose(z, K(room), 1, &n);
    CHECK(cr_vnodes_choose(z, K(room), 1, &n) == CR_VNODE_HASH);
    cr_vnodes_free(z);

    /* an unknown node index */
    CHECK(cr_vnodes_report(s, 5, K(room), 1, 0, &E) == CR_ITEM_NOT_FOUND);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
}

/* ---- forget_room ---------------------------------------------------------------------------------- */
static void test_forget(void) {
    cr_vnodes *s = mk(60, 0, 0, NULL);
    add(s, "v1", 1, 100);
    add(s, "v2", 1, 100);
    add(s, "v3", 1, 100);
    size_t n;
    report(s, "v1", "a@x", 3, 0);
    report(s, "v3", "a@x", 4, 0);
    report(s, "v3", "b@x", 1, 0);
    cr_vnodes_choose(s, K("a@x"), 0, &n);
    cr_vnodes_choose(s, K("b@x"), 0, &n);
    cr_vnode_pair_info pi[3];
    CHECK(cr_vnodes_room_info(s, K("a@x"), pi, 3) == 2);
    CHECK(pi[0].node == 0 && pi[0].visitors == 3 && pi[1].node == 2 && pi[1].visitors == 4);
    CHECK(pi[0].pending + pi[1].pending == 1);
    CHECK(cr_vnodes_room_info(s, K("a@x"), pi, 1) == 2 && pi[0].node == 0);
    cr_vnodes_forget_room(s, K("a@x"));
    CHECK(!cr_vnodes_uses(s, K("a@x")) && cr_vnodes_uses(s, K("b@x")));
    cr_vnode_info in;
    cr_vnodes_node_info(s, 0, &in);
    CHECK(in.load == 0 && in.rooms == 0);
    cr_vnodes_node_info(s, 2, &in);
    CHECK(in.room_visitors == 1 && in.rooms == 1);
    cr_vnodes_forget_room(s, K("a@x")); /* again: nothing */
    cr_vnodes_forget_room(s, K("b@x"));
    cr_vnodes_stats st;
    cr_vnodes_stats_get(s, &st);
    CHECK(st.rooms == 0 && st.pairs == 0 && st.pending == 0);
    CHECK(st.ring == 2); /* stale entries leave with their window */
    CHECK(cr_vnodes_check(s));
    cr_vnodes_expire(s, 60);
    cr_vnodes_stats_get(s, &st);
    CHECK(st.ring == 0);
    cr_vnodes_free(s);
}

/* ---- snapshots and the per-node room bound (reports, issue 12) -------------------------------- */
static uint64_t room_visitors(cr_vnodes *s, const char *id) {
    cr_vnode_info in;
    cr_vnodes_node_info(s, idx(s, id), &in);
    return in.room_visitors;
}

static void test_snapshot(void) {
    cr_vnodes *s = mk(60, 0, 0, NULL);
    add(s, "v1", 1, 100);
    add(s, "v2", 1, 100);
    size_t n;
    report(s, "v1", "a@x", 3, 0);
    report(s, "v1", "b@x", 2, 0);
    report(s, "v1", "c@x", 1, 0);
    report(s, "v2", "a@x", 5, 0);
    /* a pending redirect to v1 for a room it has not reported: stays through the snapshot */
    cr_vnodes_choose(s, K("d@x"), 0, &n);
    bool d_on_v1 = n == idx(s, "v1");
    /* snapshot of v1 in two parts: a=4 | c=1; b is absent from it */
    cr_vnodes_snapshot_begin(s, idx(s, "v1"));
    report(s, "v1", "a@x", 4, 1);
    CHECK(cr_vnodes_check(s));
    report(s, "v1", "c@x", 1, 1);
    CHECK(cr_vnodes_snapshot_end(s, idx(s, "v1"), 1) == 1);
    CHECK(room_visitors(s, "v1") == 5);
    cr_vnode_pair_info pi[2];
    CHECK(cr_vnodes_room_info(s, K("b@x"), pi, 2) == 0); /* b forgotten with its last pair */
    CHECK(room_visitors(s, "v2") == 5);                  /* the other node untouched */
    CHECK(cr_vnodes_uses(s, K("d@x")));                  /* pending kept */
    if (d_on_v1) CHECK(pending(s, "v1") == 1);
    CHECK(cr_vnodes_check(s));
    /* a second end without a begin clears nothing */
    CHECK(cr_vnodes_snapshot_end(s, idx(s, "v1"), 1) == 0);
    CHECK(room_visitors(s, "v1") == 5);
    /* an empty snapshot clears every room of the node */
    cr_vnodes_snapshot_begin(s, idx(s, "v1"));
    CHECK(cr_vnodes_snapshot_end(s, idx(s, "v1"), 2) == 2);
    CHECK(room_visitors(s, "v1") == 0 && room_visitors(s, "v2") == 5);
    CHECK(cr_vnodes_uses(s, K("a@x")) && !cr_vnodes_uses(s, K("c@x")));
    CHECK(cr_vnodes_check(s));
    cr_vnodes_snapshot_begin(s, 99); /* unknown node: nothing */
    CHECK(cr_vnodes_snapshot_end(s, 99, 2) == 0);
    cr_vnodes_free(s);
}

static void test_node_rooms(void) {
    cr_vnodes_config cfg;
    cr_vnodes_config_default(&cfg);
    cfg.max_node_rooms = 3;
    cr_vnodes *s = cr_vnodes_new(&cfg);
    add(s, "v1", 1, 100);
    add(s, "v2", 1, 100);
    char room[64];
    for (int i = 0; i < 3; i++) {
        room_name(room, sizeof room, i);
        report(s, "v1", room, 1, 0);
    }
    room_name(room, sizeof room, 3);
    CHECK(cr_vnodes_report(s, idx(s, "v1"), K(room), 1, 0, &E) == CR_RESOURCE_CONSTRAINT);
    CHECK(!cr_vnodes_uses(s, K(room))); /* nothing kept of the refused room */
    report(s, "v2", room, 1, 0);         /* the bound is per node */
    room_name(room, sizeof room, 0);
    report(s, "v1", room, 7, 0);         /* a room it has: still updated */
    report(s, "v1", room, 0, 0);         /* one freed … */
    room_name(room, sizeof room, 3);
    report(s, "v1", room, 1, 0);         /* … makes room for another */
    CHECK(room_visitors(s, "v1") == 3);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
}

/* ---- weights ------------------------------------------------------------------------------------ */
#define ROOMS 10000
static void test_weights(void) {
    cr_vnodes *s = mk(60, 0, 0, NULL);
    add(s, "v1", 1, 1000000);
    add(s, "v2", 2, 1000000);
    add(s, "v3", 3, 1000000);
    int count[3] = {0, 0, 0};
    char room[64];
    size_t n;
    for (int i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        CHECK(cr_vnodes_pick(s, K(room), 0, &n) == CR_VNODE_HASH);
        count[n]++;
    }
    double share[3];
    for (int i = 0; i < 3; i++) share[i] = (double)count[i] / ROOMS;
    printf("weights 1:2:3, %d rooms: %d / %d / %d = %.4f / %.4f / %.4f (expected %.4f / %.4f / "
           "%.4f)\n",
           ROOMS, count[0], count[1], count[2], share[0], share[1], share[2], 1 / 6.0, 2 / 6.0,
           3 / 6.0);
    /* within 2 percentage points (the binomial standard deviation is ≈ 0.5 point) */
    CHECK(fabs(share[0] - 1 / 6.0) < 0.02);
    CHECK(fabs(share[1] - 2 / 6.0) < 0.02);
    CHECK(fabs(share[2] - 3 / 6.0) < 0.02);
    /* equal weights share evenly, and a fractional weight works the same */
    cr_vnodes *e = mk(60, 0, 0, NULL);
    add(e, "a", 0.25, 1000000);
    add(e, "b", 0.25, 1000000);
    add(e, "c", 0.5, 1000000);
    int ce[3] = {0, 0, 0};
    for (int i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_pick(e, K(room), 0, &n);
        ce[n]++;
    }
    printf("weights 0.25:0.25:0.5, %d rooms: %d / %d / %d\n", ROOMS, ce[0], ce[1], ce[2]);
    CHECK(abs(ce[0] - ROOMS / 4) < 200 && abs(ce[1] - ROOMS / 4) < 200 &&
          abs(ce[2] - ROOMS / 2) < 200);
    cr_vnodes_free(e);
    cr_vnodes_free(s);

    /* 100 nodes: the choice equals the formula computed for every node (the set skips the
     * logarithm of nodes whose bound cannot win: that must not change any answer) */
    static char ids[100][16];
    static const char *idp[100];
    static double ws[100];
    s = mk(60, 0, 0, NULL);
    for (int i = 0; i < 100; i++) {
        snprintf(ids[i], sizeof ids[i], "v%d", i + 1);
        idp[i] = ids[i];
        ws[i] = 1 + i % 3 + (i % 7) * 0.125;
        add(s, ids[i], ws[i], 1000000);
    }
    int agree = 0;
    for (int i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_pick(s, K(room), 0, &n);
        agree += strcmp(name_of(s, n), expected_hash(room, idp, ws, 100)) == 0;
    }
    CHECK(agree == ROOMS);
    cr_vnodes_free(s);
}

/* ---- stability ------------------------------------------------------------------------------------ */
typedef struct {
    const char *id;
    double w;
} nd;

/* Fills out[i] with the id the set of these nodes picks for room i (no state). */
static void assign(const nd *nodes, size_t nn, const char *down, const char **out) {
    cr_vnodes *s = mk(60, 0, 0, NULL);
    for (size_t i = 0; i < nn; i++) add(s, nodes[i].id, nodes[i].w, 1000000);
    if (down) cr_vnodes_set_healthy(s, idx(s, down), false);
    char room[64];
    size_t n;
    for (int i = 0; i < ROOMS; i++) {
        room_name(room, sizeof room, i);
        CHECK(cr_vnodes_pick(s, K(room), 0, &n) == CR_VNODE_HASH);
        cr_vnode_info in;
        cr_vnodes_node_info(s, n, &in);
        out[i] = in.id[1] == '1' ? "v1" : in.id[1] == '2' ? "v2" : in.id[1] == '3' ? "v3" : "v4";
    }
    cr_vnodes_free(s);
}

static void test_stability(void) {
    static const char *a3[ROOMS], *a4[ROOMS], *a2[ROOMS], *ad[ROOMS], *ar[ROOMS], *w3[ROOMS],
        *w4[ROOMS];
    const nd three[] = {{"v1", 1}, {"v2", 1}, {"v3", 1}};
    const nd four[] = {{"v1", 1}, {"v2", 1}, {"v3", 1}, {"v4", 1}};
    const nd two[] = {{"v1", 1}, {"v3", 1}};             /* v2 removed */
    const nd reversed[] = {{"v3", 1}, {"v2", 1}, {"v1", 1}}; /* another configured order */
    assign(three, 3, NULL, a3);
    assign(four, 4, NULL, a4);
    assign(two, 2, NULL, a2);
    assign(three, 3, "v2", ad);
    assign(reversed, 3, NULL, ar);
    int moved = 0, between_old = 0, to_new = 0;
    for (int i = 0; i < ROOMS; i++) {
        if (a3[i] != a4[i]) {
            moved++;
            if (a4[i][1] == '4') to_new++;
            else between_old++;
        }
    }
    printf("adding a 4th node (equal weights), %d rooms: %d moved (%.2f%%, ideal 25%%), all to the "
           "new node: %d, between old nodes: %d\n",
           ROOMS, moved, 100.0 * moved / ROOMS, to_new, between_old);
    CHECK(between_old == 0 && to_new == moved);
    CHECK(moved > ROOMS * 22 / 100 && moved < ROOMS * 28 / 100);
    int moved_r = 0, not_of_removed = 0, of_removed = 0, down_differs = 0, order_differs = 0;
    for (int i = 0; i < ROOMS; i++) {
        if (a3[i][1] == '2') of_removed++;
        if (a3[i] != a2[i]) {
            moved_r++;
            if (a3[i][1] != '2') not_of_removed++;
        }
        if (ad[i] != a2[i]) down_differs++;
        if (ar[i] != a3[i]) order_differs++;
    }
    printf("removing 1 of 3 nodes: %d rooms moved (%.2f%%), all of them the removed node's (%d); "
           "other rooms moved: %d; marking it down instead: %d rooms differ from removing it; "
           "another configured order: %d rooms differ\n",
           moved_r, 100.0 * moved_r / ROOMS, of_removed, not_of_removed, down_differs,
           order_differs);
    CHECK(not_of_removed == 0 && moved_r == of_removed);
    CHECK(down_differs == 0 && order_differs == 0);
    /* weighted: 1:2:3 plus a node of weight 2 moves ≈ 2/8 of the rooms, all to it */
    const nd wt3[] = {{"v1", 1}, {"v2", 2}, {"v3", 3}};
    const nd wt4[] = {{"v1", 1}, {"v2", 2}, {"v3", 3}, {"v4", 2}};
    assign(wt3, 3, NULL, w3);
    assign(wt4, 4, NULL, w4);
    int wm = 0, wbad = 0;
    for (int i = 0; i < ROOMS; i++)
        if (w3[i] != w4[i]) {
            wm++;
            if (w4[i][1] != '4') wbad++;
        }
    printf("weights 1:2:3 + a node of weight 2: %d rooms moved (%.2f%%, ideal 25%%), between old "
           "nodes: %d\n",
           wm, 100.0 * wm / ROOMS, wbad);
    CHECK(wbad == 0 && wm > ROOMS * 22 / 100 && wm < ROOMS * 28 / 100);
    /* the same inputs give the same node (a second set, another random table key) */
    static const char *again[ROOMS];
    assign(three, 3, NULL, again);
    int same = 0;
    for (int i = 0; i < ROOMS; i++) same += again[i] == a3[i];
    CHECK(same == ROOMS);
}

/* ---- a down node gets nothing ------------------------------------------------------------------- */
static void test_down(void) {
    cr_vnodes *s = mk(60, 0, 0, NULL);
    add(s, "v1", 1, 5);
    add(s, "v2", 5, 1000);
    add(s, "v3", 1, 5);
    size_t v2 = idx(s, "v2");
    report(s, "v2", "used@x", 1, 0); /* a room already on v2 */
    cr_vnodes_set_healthy(s, v2, false);
    char room[64];
    size_t n;
    int got = 0;
    for (int i = 0; i < 1000; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_choose(s, K(room), 0, &n); /* v1 and v3 fill up quickly: least-loaded */
        got += n == v2;
        cr_vnodes_choose(s, K("used@x"), 0, &n);
        got += n == v2;
    }
    CHECK(got == 0);
    CHECK(pending(s, "v2") == 0);
    cr_vnodes_set_healthy(s, v2, true);
    CHECK(cr_vnodes_choose(s, K("used@x"), 0, &n) == CR_VNODE_REUSE && n == v2);
    cr_vnodes_set_healthy(s, 99, false); /* out of range: ignored */
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
}

/* ---- bounds ------------------------------------------------------------------------------------- */
static void test_bounds(void) {
    cr_vnodes *s = mk(60, 3, 0, NULL);
    add(s, "v1", 1, 100);
    add(s, "v2", 1, 100);
    size_t n;
    cr_vnodes_stats st;
    CHECK(cr_vnodes_choose(s, K("a@x"), 0, &n) == CR_VNODE_HASH);
    CHECK(cr_vnodes_choose(s, K("b@x"), 0, &n) == CR_VNODE_HASH);
    CHECK(cr_vnodes_choose(s, K("c@x"), 0, &n) == CR_VNODE_HASH);
    /* max_rooms reached: choose still answers, remembers nothing */
    CHECK(cr_vnodes_choose(s, K("d@x"), 0, &n) == CR_VNODE_HASH);
    CHECK(!cr_vnodes_uses(s, K("d@x")));
    cr_vnodes_stats_get(s, &st);
    CHECK(st.rooms == 3 && st.unrecorded == 1 && st.pending == 3);
    CHECK(cr_vnodes_report(s, 0, K("d@x"), 1, 0, &E) == CR_RESOURCE_CONSTRAINT);
    CHECK(cr_vnodes_report(s, 0, K("d@x"), 0, 0, &E) == CR_OK); /* nothing to remember */
    /* a known room may still gain a pair on another node */
    CHECK(cr_vnodes_report(s, 0, K("a@x"), 1, 0, &E) == CR_OK);
    CHECK(cr_vnodes_report(s, 1, K("a@x"), 1, 0, &E) == CR_OK);
    cr_vnodes_stats_get(s, &st);
    CHECK(st.rooms == 3 && st.pairs <= 6);
    cr_vnodes_forget_room(s, K("b@x"));
    CHECK(cr_vnodes_choose(s, K("d@x"), 0, &n) == CR_VNODE_HASH && cr_vnodes_uses(s, K("d@x")));
    /* per room at most one pair per node */
    for (int i = 0; i < 100; i++) cr_vnodes_choose(s, K("a@x"), 0, &n);
    CHECK(cr_vnodes_room_info(s, K("a@x"), NULL, 0) == 2);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);

    /* max_pending: the oldest redirect is dropped first */
    s = mk(60, 0, 4, NULL);
    add(s, "v1", 1, 100);
    for (int t = 0; t < 6; t++) cr_vnodes_choose(s, K("a@x"), t, &n);
    cr_vnodes_stats_get(s, &st);
    CHECK(st.ring == 4 && st.pending == 4 && st.dropped == 2);
    cr_vnodes_expire(s, 61); /* the drops were t = 0, 1: t = 2..5 remain */
    CHECK(pending(s, "v1") == 4);
    cr_vnodes_expire(s, 62);
    CHECK(pending(s, "v1") == 3);
    /* a full ring whose oldest entry holds the last state of a room: that room goes, another
     * choice still records */
    cr_vnodes_expire(s, 1000);
    cr_vnodes_choose(s, K("old@x"), 1000, &n);
    for (int i = 0; i < 3; i++) cr_vnodes_choose(s, K("a@x"), 1000, &n);
    cr_vnodes_choose(s, K("new@x"), 1000, &n);
    CHECK(!cr_vnodes_uses(s, K("old@x")) && cr_vnodes_uses(s, K("new@x")));
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);

    /* the largest max_pending is accepted (reserved, not touched) */
    s = mk(60, 0, CR_VNODES_MAX_PENDING_LIMIT, NULL);
    CHECK(s != NULL);
    cr_vnodes_free(s);

    /* many rooms: the table grows, every room is found, forget empties it */
    s = mk(1e9, 0, 0, NULL);
    add(s, "v1", 1, 1u << 30);
    add(s, "v2", 1, 1u << 30);
    char room[64];
    for (int i = 0; i < 20000; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_choose(s, K(room), 0, &n);
    }
    int found = 0;
    for (int i = 0; i < 20000; i++) {
        room_name(room, sizeof room, i);
        found += cr_vnodes_uses(s, K(room));
    }
    CHECK(found == 20000);
    CHECK(cr_vnodes_check(s));
    for (int i = 0; i < 20000; i += 2) {
        room_name(room, sizeof room, i);
        cr_vnodes_forget_room(s, K(room));
    }
    found = 0;
    for (int i = 0; i < 20000; i++) {
        room_name(room, sizeof room, i);
        found += cr_vnodes_uses(s, K(room)) == (i % 2 == 1);
    }
    CHECK(found == 20000);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
}

/* ---- no allocation on the choice path ------------------------------------------------------------- */
static void test_no_alloc(void) {
    counter c = {0, 0, 0, -1, 0};
    cr_vnodes *s = mk(30, 0, 0, &c);
    char id[16], room[64];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "v%d", i + 1);
        add(s, id, 1 + i % 3, 1000);
    }
    CHECK(c.allocs > 0); /* the set's own allocations go through the counter */
    size_t n;
    /* rooms with state */
    for (int i = 0; i < 200; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_choose(s, K(room), 0, &n);
    }
    long before = c.allocs;
    int reuse = 0;
    for (int k = 0; k < 20; k++)
        for (int i = 0; i < 200; i++) {
            room_name(room, sizeof room, i);
            reuse += cr_vnodes_choose(s, K(room), 0, &n) == CR_VNODE_REUSE;
        }
    CHECK(reuse == 20 * 200);
    CHECK(c.allocs == before);
    /* pick never allocates, with or without state, for any rule */
    before = c.allocs;
    for (int i = 0; i < 5000; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_pick(s, K(room), 1, &n);
    }
    for (int i = 0; i < 100; i++) cr_vnodes_set_healthy(s, (size_t)i, i % 2 == 0);
    for (int i = 0; i < 5000; i++) {
        room_name(room, sizeof room, i);
        cr_vnodes_pick(s, K(room), 1, &n);
    }
    CHECK(c.allocs == before);
    /* the counter does see the choice path's allocations: a new room records a room and a pair */
    for (int i = 0; i < 100; i++) cr_vnodes_set_healthy(s, (size_t)i, true);
    before = c.allocs;
    CHECK(cr_vnodes_choose(s, K("brand-new@x"), 1, &n) == CR_VNODE_HASH);
    CHECK(c.allocs > before);
    before = c.allocs;
    CHECK(cr_vnodes_choose(s, K("brand-new@x"), 1, &n) == CR_VNODE_REUSE);
    CHECK(c.allocs == before);
    CHECK(cr_vnodes_check(s));
    cr_vnodes_free(s);
    CHECK(c.live == 0);
}

/* ---- allocation failure at every point ------------------------------------------------------------ */
static int run_script(counter *c) {
    cr_vnodes *s = mk(5, 0, 64, c);
    if (!s) return 0;
    char id[16], room[64];
    int added = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "v%d", i + 1);
        added += cr_vnodes_add_node(s, K(id), K("focus@x"), 1 + i, 3, &E) == CR_OK;
    }
    size_t n;
    for (int i = 0; i < 40; i++) {
        room_name(room, sizeof room, i % 13);
        cr_vnodes_choose(s, K(room), i * 0.5, &n);
        cr_vnodes_report(s, (size_t)(i % 4), K(room), (uint32_t)(i % 3), i * 0.5, &E);
        if (i % 7 == 0) cr_vnodes_forget_room(s, K(room));
        if (!cr_vnodes_check(s)) {
            cr_vnodes_free(s);
            return -1;
        }
    }
    cr_vnodes_free(s);
    return added;
}

static void test_oom(void) {
    counter full = {0, 0, 0, -1, 0};
    CHECK(run_script(&full) == 4);
    CHECK(full.live == 0);
    long total = full.attempts, bad = 0, leaks = 0;
    for (long k = 0; k < total; k++) {
        counter c = {0, 0, 0, k, 0};
        if (run_script(&c) < 0) bad++;
        if (c.live != 0) leaks++;
    }
    printf("allocation failure at each of %ld allocations: %ld broken invariants, %ld leaks\n",
           total, bad, leaks);
    CHECK(bad == 0 && leaks == 0);
}

int main(void) {
    test_config();
    test_rules();
    test_pending();
    test_forget();
    test_snapshot();
    test_node_rooms();
    test_weights();
    test_stability();
    test_down();
    test_bounds();
    test_no_alloc();
    test_oom();
    return ctest_done("test_vnodes");
}
