/* test_registry.c — transitions, every bound, waiters (FIFO, cancel, expire order), notify_due,
 * iteration, and 1,000,000 rooms (growth/rehash, bytes per room). */
#include "cr.h"
#include "ctest.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define K(s) s, strlen(s)
static cr_error E;
static uint64_t ids[64];

static cr_registry *mk(size_t rooms, size_t per_room, size_t total) {
    cr_registry_config c;
    cr_registry_config_default(&c);
    if (rooms) c.max_rooms = rooms;
    if (per_room) c.max_waiters_per_room = per_room;
    if (total) c.max_waiters = total;
    return cr_registry_new(&c);
}

static void test_defaults(void) {
    cr_registry_config c;
    cr_registry_config_default(&c);
    CHECK(c.max_rooms == 100000 && c.max_waiters_per_room == 10000 && c.max_waiters == 100000);
}

static void test_transitions(void) {
    cr_registry *r = mk(0, 0, 0);
    size_t n = 99;
    CHECK(cr_registry_state(r, K("a@b")) == CR_ROOM_ABSENT);
    CHECK(cr_registry_set_ready(r, K("a@b"), ids, 64, &n, &E) == CR_OK && n == 0);
    CHECK(cr_registry_state(r, K("a@b")) == CR_ROOM_READY);
    CHECK(cr_registry_set_ready(r, K("a@b"), ids, 64, &n, &E) == CR_OK && n == 0);
    CHECK(cr_registry_set_pending(r, K("a@b"), &E) == CR_OK);
    CHECK(cr_registry_state(r, K("a@b")) == CR_ROOM_PENDING);
    CHECK(cr_registry_set_pending(r, K("a@b"), &E) == CR_OK);
    CHECK(cr_registry_set_pending(r, K("c@d"), &E) == CR_OK);
    cr_registry_stats st;
    cr_registry_stats_get(r, &st);
    CHECK(st.rooms == 2 && st.pending == 2 && st.ready == 0 && st.waiters == 0);
    CHECK(cr_registry_count(r) == 2);
    /* waiters: FIFO on set_ready */
    uint64_t w1, w2, w3;
    CHECK(cr_registry_wait(r, K("a@b"), 10, &w1, &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("a@b"), 5, &w2, &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("c@d"), 1, &w3, &E) == CR_OK);
    CHECK(w1 > 0 && w2 > 0 && w3 > 0 && w1 != w2 && w2 != w3 && w1 < ((uint64_t)1 << 63));
    CHECK(cr_registry_room_waiters(r, K("a@b")) == 2);
    /* a too small buffer is refused without change */
    CHECK(cr_registry_set_ready(r, K("a@b"), ids, 1, &n, &E) == CR_INTERNAL_SERVER_ERROR);
    CHECK(cr_registry_room_waiters(r, K("a@b")) == 2);
    CHECK(cr_registry_set_ready(r, K("a@b"), ids, 64, &n, &E) == CR_OK);
    CHECK(n == 2 && ids[0] == w1 && ids[1] == w2);
    CHECK(cr_registry_state(r, K("a@b")) == CR_ROOM_READY);
    CHECK(!cr_registry_cancel(r, w1)); /* handed back already */
    /* wait on a ready / absent room */
    uint64_t x;
    CHECK(cr_registry_wait(r, K("a@b"), 1, &x, &E) == CR_ITEM_NOT_FOUND);
    CHECK(cr_registry_wait(r, K("zz@b"), 1, &x, &E) == CR_ITEM_NOT_FOUND);
    CHECK(E.text[0] != '\0');
    /* ready → pending → forget */
    CHECK(cr_registry_set_pending(r, K("a@b"), &E) == CR_OK);
    CHECK(cr_registry_state(r, K("a@b")) == CR_ROOM_PENDING);
    CHECK(cr_registry_forget(r, K("c@d"), ids, 64) == 1 && ids[0] == w3);
    CHECK(cr_registry_state(r, K("c@d")) == CR_ROOM_ABSENT);
    CHECK(cr_registry_forget(r, K("c@d"), ids, 64) == 0);
    CHECK(cr_registry_forget(r, K("a@b"), ids, 64) == 0);
    cr_registry_stats_get(r, &st);
    CHECK(st.rooms == 0 && st.pending == 0 && st.waiters == 0);
    /* keys are byte strings: embedded NUL and prefixes differ */
    CHECK(cr_registry_set_ready(r, "a\0b", 3, ids, 64, &n, &E) == CR_OK);
    CHECK(cr_registry_state(r, "a", 1) == CR_ROOM_ABSENT);
    CHECK(cr_registry_state(r, "a\0b", 3) == CR_ROOM_READY);
    CHECK(cr_registry_state(r, "", 0) == CR_ROOM_ABSENT);
    cr_registry_free(r);
}

static void test_bounds(void) {
    cr_registry *r = mk(2, 2, 3);
    size_t n;
    CHECK(cr_registry_set_pending(r, K("a"), &E) == CR_OK);
    CHECK(cr_registry_set_ready(r, K("b"), ids, 64, &n, &E) == CR_OK);
    CHECK(cr_registry_set_pending(r, K("c"), &E) == CR_RESOURCE_CONSTRAINT);
    CHECK(cr_registry_set_ready(r, K("c"), ids, 64, &n, &E) == CR_RESOURCE_CONSTRAINT);
    CHECK(cr_registry_state(r, K("c")) == CR_ROOM_ABSENT);
    CHECK(cr_registry_set_pending(r, K("b"), &E) == CR_OK); /* existing rooms still move */
    uint64_t id;
    CHECK(cr_registry_wait(r, K("a"), 1, &id, &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("a"), 1, &id, &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("a"), 1, &id, &E) == CR_RESOURCE_CONSTRAINT); /* per room */
    CHECK(cr_registry_wait(r, K("b"), 1, &id, &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("b"), 1, &id, &E) == CR_RESOURCE_CONSTRAINT); /* total */
    CHECK(cr_registry_cancel(r, id));
    CHECK(!cr_registry_cancel(r, id));
    CHECK(cr_registry_wait(r, K("b"), 1, &id, &E) == CR_OK); /* room again after cancel */
    CHECK(!cr_registry_cancel(r, 0) && !cr_registry_cancel(r, 12345) &&
          !cr_registry_cancel(r, UINT64_MAX));
    CHECK(cr_registry_forget(r, K("a"), ids, 64) == 2);
    CHECK(cr_registry_set_pending(r, K("c"), &E) == CR_OK); /* a room freed */
    cr_registry_free(r);
}

static void test_cancel_and_reuse(void) {
    cr_registry *r = mk(0, 0, 0);
    CHECK(cr_registry_set_pending(r, K("p"), &E) == CR_OK);
    uint64_t a, b, c, d;
    cr_registry_wait(r, K("p"), 1, &a, &E);
    cr_registry_wait(r, K("p"), 2, &b, &E);
    cr_registry_wait(r, K("p"), 3, &c, &E);
    CHECK(cr_registry_cancel(r, b)); /* middle */
    CHECK(cr_registry_cancel(r, a)); /* head */
    cr_registry_wait(r, K("p"), 4, &d, &E); /* reuses a freed slot with a new id */
    CHECK(d != a && d != b);
    CHECK(!cr_registry_cancel(r, a) && !cr_registry_cancel(r, b));
    size_t n;
    CHECK(cr_registry_set_ready(r, K("p"), ids, 64, &n, &E) == CR_OK);
    CHECK(n == 2 && ids[0] == c && ids[1] == d);
    cr_registry_free(r);
}

static void test_expire(void) {
    cr_registry *r = mk(0, 0, 0);
    cr_registry_set_pending(r, K("x"), &E);
    cr_registry_set_pending(r, K("y"), &E);
    size_t n;
    cr_registry_set_ready(r, K("ready"), ids, 64, &n, &E);
    uint64_t x5, x1, y3, y1, x9;
    cr_registry_wait(r, K("x"), 5, &x5, &E);
    cr_registry_wait(r, K("x"), 1, &x1, &E);
    cr_registry_wait(r, K("y"), 3, &y3, &E);
    cr_registry_wait(r, K("y"), 1, &y1, &E);
    cr_registry_wait(r, K("x"), 9, &x9, &E);
    CHECK(cr_registry_expire(r, 0.5, ids, 64) == 0);
    /* deadline order, ties by arrival */
    CHECK(cr_registry_expire(r, 3, ids, 64) == 3);
    CHECK(ids[0] == x1 && ids[1] == y1 && ids[2] == y3);
    CHECK(cr_registry_room_waiters(r, K("y")) == 0);
    CHECK(cr_registry_state(r, K("y")) == CR_ROOM_PENDING); /* rooms stay pending */
    CHECK(!cr_registry_cancel(r, x1));
    CHECK(cr_registry_expire(r, 5, ids, 64) == 1 && ids[0] == x5); /* ≤ now */
    cr_registry_stats st;
    cr_registry_stats_get(r, &st);
    CHECK(st.waiters == 1);
    CHECK(cr_registry_expire(r, 1e300, ids, 64) == 1 && ids[0] == x9);
    /* many waiters, shuffled deadlines: sorted output */
    cr_registry_stats_get(r, &st);
    CHECK(st.waiters == 0);
    uint64_t *big = malloc(5000 * sizeof *big), *all = malloc(5000 * sizeof *all);
    for (int i = 0; i < 5000; i++)
        cr_registry_wait(r, (i & 1) ? "x" : "y", 1, (double)((i * 7919) % 1000), &all[i], &E);
    n = cr_registry_expire(r, 499, big, 5000);
    CHECK(n == 2500);
    bool sorted = true;
    int prev = -1;
    double prevd = -1;
    for (size_t k = 0; k < n; k++) {
        int i = 0;
        while (i < 5000 && all[i] != big[k]) i++;
        double d = (double)((i * 7919) % 1000);
        if (i == 5000 || d > 499 || d < prevd || (d == prevd && i < prev)) sorted = false;
        prev = i;
        prevd = d;
    }
    CHECK(sorted);
    free(all);
    cr_registry_free(r); /* frees remaining waiters */
    free(big);
}

static void test_notify(void) {
    cr_registry *r = mk(0, 0, 0);
    CHECK(!cr_registry_notify_due(r, K("n"), 0, 10)); /* absent */
    size_t n;
    cr_registry_set_ready(r, K("n"), ids, 64, &n, &E);
    CHECK(!cr_registry_notify_due(r, K("n"), 0, 10)); /* ready */
    cr_registry_set_pending(r, K("n"), &E);
    CHECK(cr_registry_notify_due(r, K("n"), 100, 10));
    CHECK(!cr_registry_notify_due(r, K("n"), 105, 10));
    CHECK(!cr_registry_notify_due(r, K("n"), 109.9, 10));
    CHECK(cr_registry_notify_due(r, K("n"), 110, 10));
    CHECK(!cr_registry_notify_due(r, K("n"), 111, 10));
    /* leaving pending forgets the bookkeeping */
    cr_registry_set_ready(r, K("n"), ids, 64, &n, &E);
    cr_registry_set_pending(r, K("n"), &E);
    CHECK(cr_registry_notify_due(r, K("n"), 111, 10));
    cr_registry_free(r);
}

static void test_each(void) {
    cr_registry *r = mk(0, 0, 0);
    size_t n;
    cr_registry_set_pending(r, K("p1"), &E);
    cr_registry_set_ready(r, K("r1"), ids, 64, &n, &E);
    uint64_t id;
    cr_registry_wait(r, K("p1"), 1, &id, &E);
    size_t cur = 0, len, w, seen = 0, waiters = 0, pending = 0;
    const char *k;
    cr_room_state s;
    while (cr_registry_next(r, &cur, &k, &len, &s, &w)) {
        seen++;
        waiters += w;
        if (s == CR_ROOM_PENDING) {
            pending++;
            CHECK(len == 2 && memcmp(k, "p1", 2) == 0);
        }
    }
    CHECK(seen == 2 && waiters == 1 && pending == 1);
    CHECK(!cr_registry_next(r, &cur, &k, &len, &s, &w));
    cr_registry_free(r);
}

static void test_many(void) {
    const size_t N = 1000000;
    struct mallinfo2 before = mallinfo2();
    cr_registry *r = mk(N, 0, 0);
    char key[64];
    size_t n;
    bool ok = true;
    for (size_t i = 0; i < N; i++) {
        int len = snprintf(key, sizeof key, "room%zu@conference.meet.example.com", i);
        ok = ok && cr_registry_set_ready(r, key, (size_t)len, ids, 64, &n, &E) == CR_OK;
    }
    CHECK(ok);
    CHECK(cr_registry_count(r) == N);
    CHECK(cr_registry_set_pending(r, K("one-more@x"), &E) == CR_RESOURCE_CONSTRAINT);
    struct mallinfo2 after = mallinfo2();
    double per_room = (double)((after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd)) / (double)N;
#if defined(__SANITIZE_ADDRESS__)
    (void)per_room;
    printf("registry: %zu rooms (bytes per room not measured under ASan)\n", N);
#else
    printf("registry: %zu rooms, %.1f bytes per room (keys of 34-40 bytes)\n", N, per_room);
    CHECK(per_room <= 256.0);
#endif
    /* every room is found after all the rehashing; half of them go away (backward shift) */
    ok = true;
    for (size_t i = 0; i < N; i += 2) {
        int len = snprintf(key, sizeof key, "room%zu@conference.meet.example.com", i);
        ok = ok && cr_registry_state(r, key, (size_t)len) == CR_ROOM_READY;
        ok = ok && cr_registry_forget(r, key, (size_t)len, ids, 64) == 0;
    }
    CHECK(ok);
    ok = true;
    for (size_t i = 0; i < N; i++) {
        int len = snprintf(key, sizeof key, "room%zu@conference.meet.example.com", i);
        ok = ok && cr_registry_state(r, key, (size_t)len) ==
                       ((i & 1) ? CR_ROOM_READY : CR_ROOM_ABSENT);
    }
    CHECK(ok);
    CHECK(cr_registry_count(r) == N / 2);
    cr_registry_free(r);
}

/* The cycle the external focus drives (mod_conference_request/external_focus.lib.lua): single
 * flight, expiry without losing the room or its notification stamp, the focus joining, leaving,
 * a client going away, the room being destroyed, and a full registry. */
static void test_external_focus_cycle(void) {
    cr_registry *r = mk(2, 0, 0);
    size_t n;
    uint64_t w1, w2, w3, w4;
    CHECK(cr_registry_set_pending(r, K("e@c"), &E) == CR_OK);
    CHECK(cr_registry_wait(r, K("e@c"), 4, &w1, &E) == CR_OK);
    CHECK(cr_registry_notify_due(r, K("e@c"), 0, 4));   /* the first request notifies */
    CHECK(cr_registry_wait(r, K("e@c"), 5, &w2, &E) == CR_OK);
    CHECK(!cr_registry_notify_due(r, K("e@c"), 1, 4));  /* the others wait on it */
    /* a second set_pending (another request) keeps waiters and the notification stamp */
    CHECK(cr_registry_set_pending(r, K("e@c"), &E) == CR_OK);
    CHECK(cr_registry_room_waiters(r, K("e@c")) == 2);
    CHECK(!cr_registry_notify_due(r, K("e@c"), 3.9, 4));
    /* the first waiter times out; the room stays pending and may be notified again */
    CHECK(cr_registry_expire(r, 4, ids, 64) == 1 && ids[0] == w1);
    CHECK(cr_registry_state(r, K("e@c")) == CR_ROOM_PENDING);
    CHECK(cr_registry_room_waiters(r, K("e@c")) == 1);
    CHECK(cr_registry_notify_due(r, K("e@c"), 4, 4));
    /* the focus joins: only the live waiter is handed back */
    CHECK(cr_registry_set_ready(r, K("e@c"), ids, 64, &n, &E) == CR_OK && n == 1 && ids[0] == w2);
    CHECK(!cr_registry_notify_due(r, K("e@c"), 100, 4));
    CHECK(cr_registry_expire(r, 1e9, ids, 64) == 0);
    /* the focus leaves: pending again, nobody waits, a fresh notification is due at once */
    CHECK(cr_registry_set_pending(r, K("e@c"), &E) == CR_OK);
    CHECK(cr_registry_room_waiters(r, K("e@c")) == 0);
    CHECK(cr_registry_wait(r, K("e@c"), 20, &w3, &E) == CR_OK);
    CHECK(cr_registry_notify_due(r, K("e@c"), 10, 4));
    /* its client goes away: cancelled, not handed back later */
    CHECK(cr_registry_cancel(r, w3));
    CHECK(cr_registry_wait(r, K("e@c"), 20, &w4, &E) == CR_OK);
    /* the room is destroyed: the waiter is handed back, the room is absent, bookkeeping gone */
    CHECK(cr_registry_forget(r, K("e@c"), ids, 64) == 1 && ids[0] == w4);
    CHECK(cr_registry_state(r, K("e@c")) == CR_ROOM_ABSENT);
    CHECK(!cr_registry_notify_due(r, K("e@c"), 11, 4));
    CHECK(cr_registry_set_pending(r, K("e@c"), &E) == CR_OK);
    CHECK(cr_registry_notify_due(r, K("e@c"), 11, 4));
    /* full registry: a pending room still becomes ready when its focus joins; a new room is
     * refused (the focus joined a room nobody asked for) */
    CHECK(cr_registry_set_pending(r, K("f@c"), &E) == CR_OK);
    CHECK(cr_registry_set_ready(r, K("g@c"), ids, 64, &n, &E) == CR_RESOURCE_CONSTRAINT);
    CHECK(E.text[0] != '\0');
    CHECK(cr_registry_set_ready(r, K("f@c"), ids, 64, &n, &E) == CR_OK && n == 0);
    CHECK(cr_registry_set_pending(r, K("f@c"), &E) == CR_OK); /* and can go back to pending */
    cr_registry_stats st;
    cr_registry_stats_get(r, &st);
    CHECK(st.rooms == 2 && st.pending == 2 && st.waiters == 0);
    cr_registry_free(r);
}

int main(void) {
    test_defaults();
    test_transitions();
    test_bounds();
    test_cancel_and_reuse();
    test_expire();
    test_notify();
    test_external_focus_cycle();
    test_each();
    test_many();
    return ctest_done("test_registry");
}
