/* fuzz_vnodes.c — libFuzzer harness for the visitor-node set (native/vnodes.c).
 *
 * An input is a small program: a header (pending window, max_rooms, max_pending, nodes with their
 * weights and capacities, whether allocations may fail) then operations, 3 bytes each: choose,
 * pick, report, report_total, set_healthy, forget_room, a time step (forwards, sometimes back).
 * After every operation the set's own consistency walk (cr_vnodes_check) must pass and the bounds
 * hold; every choice is recomputed here from the node figures and the rules of docs/protocol.md §6, node choice
 * (reuse / hash / least-loaded / none, the formula, the tie rule) and must agree; pick and choose
 * agree; a choice never names a down node; an allocation failure never breaks anything (the
 * allocator fails on the input's say-so), and freeing the set releases every block.
 * Built and run by `make fuzz` (tests/fuzz/README.md). */
#include "cr.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    long live;
    uint32_t fail_mask; /* allocation number k fails when bit k % 32 is set */
    uint32_t k;
} alloc_state;

static void *fz_alloc(void *ud, void *p, size_t n) {
    alloc_state *a = ud;
    if (n == 0) {
        if (p) a->live--;
        free(p);
        return NULL;
    }
    if ((a->fail_mask >> (a->k++ % 32)) & 1) return NULL;
    void *q = realloc(p, n);
    if (q && !p) a->live++;
    return q;
}

typedef struct {
    const uint8_t *d;
    size_t n, i;
} reader;

static uint8_t next(reader *r) { return r->i < r->n ? r->d[r->i++] : 0; }

static const char *const IDS[] = {"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"};

static void room_of(uint8_t b, char *buf, size_t cap, size_t *len) {
    *len = (size_t)snprintf(buf, cap, "room%u@conference.example.com", (unsigned)(b % 24));
}

/* The rules, recomputed from the node figures (after expiry at the same now). */
static cr_vnode_how expected(cr_vnodes *s, const char *room, size_t len, size_t *node) {
    size_t n = cr_vnodes_count(s);
    cr_vnode_info in[8];
    for (size_t i = 0; i < n; i++) cr_vnodes_node_info(s, i, &in[i]);
    cr_vnode_pair_info pairs[8];
    size_t np = cr_vnodes_room_info(s, room, len, pairs, 8);
    INVARIANT(np <= n);
    bool used[8] = {false};
    for (size_t k = 0; k < np; k++) used[pairs[k].node] = true;
    /* relative load compare: a/ca < b/cb */
#define LESS(a, b)                                                                                 \
    ((double)(in[a].load > UINT32_MAX ? UINT32_MAX : in[a].load) * in[b].capacity <                \
     (double)(in[b].load > UINT32_MAX ? UINT32_MAX : in[b].load) * in[a].capacity)
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        if (used[i] && in[i].healthy && in[i].load < in[i].capacity && (best == SIZE_MAX || LESS(i, best)))
            best = i;
    if (best != SIZE_MAX) {
        *node = best;
        return CR_VNODE_REUSE;
    }
    double bs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in[i].healthy || in[i].load >= in[i].capacity) continue;
        double sc = -in[i].weight / log(cr_vnodes_unit(room, len, in[i].id, in[i].id_len));
        if (best == SIZE_MAX || sc > bs) {
            best = i;
            bs = sc;
        }
    }
    if (best != SIZE_MAX) {
        *node = best;
        return CR_VNODE_HASH;
    }
    for (size_t i = 0; i < n; i++)
        if (in[i].healthy && (best == SIZE_MAX || LESS(i, best))) best = i;
    if (best != SIZE_MAX) {
        *node = best;
        return CR_VNODE_LEAST_LOADED;
    }
    return CR_VNODE_NONE;
#undef LESS
}

static void check_bounds(cr_vnodes *s, size_t max_rooms, size_t max_pending) {
    INVARIANT(cr_vnodes_check(s));
    cr_vnodes_stats st;
    cr_vnodes_stats_get(s, &st);
    INVARIANT(st.rooms <= max_rooms);
    INVARIANT(st.ring <= max_pending && st.pending <= st.ring);
    INVARIANT(st.pairs <= st.rooms * st.nodes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size, 0};
    alloc_state a = {0, 0, 0};
    uint8_t flags = next(&r);
    if (flags & 0x80) a.fail_mask = (uint32_t)next(&r) << 24 | (uint32_t)next(&r) << 8;
    cr_vnodes_config cfg;
    cr_vnodes_config_default(&cfg);
    cfg.pending_window = next(&r) % 16;
    cfg.max_rooms = 1 + next(&r) % 16;
    cfg.max_pending = 1 + next(&r) % 48;
    cfg.max_node_rooms = (flags & 0x40) ? 1 + (flags & 7) : 0; /* per-node bound (reports) */
    cfg.alloc = fz_alloc;
    cfg.alloc_ud = &a;
    cr_vnodes *s = cr_vnodes_new(&cfg);
    if (!s) {
        INVARIANT(a.live == 0);
        return 0;
    }
    size_t nn = next(&r) % 9;
    cr_error err;
    for (size_t i = 0; i < nn; i++) {
        double w = 0.25 * (1 + next(&r) % 16);
        uint32_t cap = 1 + next(&r) % 8;
        cr_condition c = cr_vnodes_add_node(s, IDS[i], 2, "focus@v.meet.jitsi", 18, w, cap, &err);
        INVARIANT(c == CR_OK || c == CR_INTERNAL_SERVER_ERROR);
    }
    nn = cr_vnodes_count(s);
    double now = 0, latest = 0;
    char room[64];
    size_t len;
    while (r.i < r.n) {
        uint8_t op = next(&r), x = next(&r), y = next(&r);
        room_of(x, room, sizeof room, &len);
        switch (op % 8) {
        case 0:
        case 1: { /* choose (and pick: the same answer, nothing recorded) */
            cr_vnodes_expire(s, now);
            size_t want = SIZE_MAX, got = SIZE_MAX, picked = SIZE_MAX;
            cr_vnode_how e = expected(s, room, len, &want);
            cr_vnode_how p = cr_vnodes_pick(s, room, len, now, &picked);
            INVARIANT(p == e && (e == CR_VNODE_NONE || picked == want));
            if (op % 8 == 1) break;
            cr_vnodes_stats before;
            cr_vnodes_stats_get(s, &before);
            cr_vnode_how h = cr_vnodes_choose(s, room, len, now, &got);
            INVARIANT(h == e && (h == CR_VNODE_NONE || got == want));
            if (h != CR_VNODE_NONE) {
                cr_vnode_info in;
                cr_vnodes_node_info(s, got, &in);
                INVARIANT(in.healthy);
                cr_vnodes_stats st;
                cr_vnodes_stats_get(s, &st);
                /* recorded (the room has state), or counted as unrecorded */
                INVARIANT(cr_vnodes_uses(s, room, len) || st.unrecorded == before.unrecorded + 1);
            }
            break;
        }
        case 2: /* report */
            if (nn) {
                cr_condition c = cr_vnodes_report(s, y % nn, room, len, (uint32_t)(y >> 3) % 6, now,
                                                  &err);
                INVARIANT(c == CR_OK || c == CR_RESOURCE_CONSTRAINT ||
                          c == CR_INTERNAL_SERVER_ERROR);
                if (c == CR_OK && (y >> 3) % 6) INVARIANT(cr_vnodes_uses(s, room, len));
            } else {
                INVARIANT(cr_vnodes_report(s, 0, room, len, 1, now, &err) == CR_ITEM_NOT_FOUND);
            }
            break;
        case 3: /* report_total, or a snapshot's begin / end (reports, issue 12) */
            if (nn && (x & 3) == 1) {
                cr_vnodes_snapshot_begin(s, y % nn);
            } else if (nn && (x & 3) == 2) {
                cr_vnodes_snapshot_end(s, y % nn, now);
                INVARIANT(cr_vnodes_snapshot_end(s, y % nn, now) == 0); /* a second end clears nothing */
            } else if (nn) {
                cr_vnodes_report_total(s, y % nn, y >> 4, now);
            }
            break;
        case 4: /* health */
            if (nn) cr_vnodes_set_healthy(s, y % nn, (y >> 4) & 1);
            break;
        case 5:
            cr_vnodes_forget_room(s, room, len);
            INVARIANT(!cr_vnodes_uses(s, room, len));
            break;
        case 6: /* time: mostly forwards */
            now += (y & 0x80) ? -(double)(y % 4) : (double)(y % 8) * 0.5;
            if (now > latest) latest = now;
            cr_vnodes_expire(s, now);
            break;
        default: { /* room figures agree with the node sums */
            cr_vnode_pair_info pi[8];
            size_t np = cr_vnodes_room_info(s, room, len, pi, 8);
            INVARIANT((np > 0) == cr_vnodes_uses(s, room, len));
            for (size_t k = 0; k < np; k++) {
                INVARIANT(pi[k].node < nn && (pi[k].visitors || pi[k].pending));
                if (k) INVARIANT(pi[k].node > pi[k - 1].node);
            }
            break;
        }
        }
        check_bounds(s, cfg.max_rooms, cfg.max_pending);
    }
    /* everything decays: far in the future, only reported visitors keep state */
    cr_vnodes_expire(s, latest + 100);
    cr_vnodes_stats st;
    cr_vnodes_stats_get(s, &st);
    INVARIANT(st.pending == 0 && st.ring == 0);
    check_bounds(s, cfg.max_rooms, cfg.max_pending);
    cr_vnodes_free(s);
    INVARIANT(a.live == 0);
    return 0;
}
