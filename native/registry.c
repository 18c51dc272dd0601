/* registry.c — room readiness: absent → pending → ready, waiters and their bounds (docs/protocol.md §3).
 *
 * Layout (aimed at ≤ 256 bytes per tracked room at 1,000,000 rooms):
 * - an open-addressing table (linear probing, backward-shift deletion, load ≤ 3/4) of pointers to
 *   room records; a record is {hash, key length, pending extension pointer, key bytes inline};
 * - a pending room owns a small extension: its FIFO of waiters (indices into one waiter slab),
 *   its last notify time and its links in the intrusive list of pending rooms (so expire() only
 *   walks pending rooms); a ready room has none (pending == NULL);
 * - waiters live in one slab with a free list; an id is (generation << 32 | slot + 1), so cancel
 *   is O(1) and a stale id never matches a reused slot.
 * The hash is SipHash-1-3 keyed per registry, drawn at creation (room names are client-chosen).
 */
#include "cr.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NIL UINT32_MAX

typedef struct pending pending;

typedef struct {
    uint32_t hash;
    uint32_t keylen;
    pending *pending; /* NULL: ready */
    char key[];
} room;

struct pending {
    room *room;
    pending *next, *prev; /* the registry's list of pending rooms */
    uint32_t head, tail, count;
    bool notified;
    double last_notify;
};

typedef struct {
    double deadline;
    uint64_t seq;     /* arrival order */
    pending *owner;   /* NULL: free slot */
    uint32_t next, prev; /* FIFO links; next is the free-list link of a free slot */
    uint32_t gen;
} waiter;

struct cr_registry {
    cr_registry_config cfg;
    uint64_t k0, k1;
    room **slots;
    size_t mask; /* capacity - 1 */
    size_t count, npending, nwaiters;
    pending *plist;
    waiter *w;
    uint32_t wcap, wfree;
    uint64_t seq;
};

/* ---- table --------------------------------------------------------------------------------- */
static uint32_t hash_of(const cr_registry *r, const char *key, size_t len) {
    return (uint32_t)cr_siphash13(r->k0, r->k1, (const unsigned char *)key, len);
}

/* Slot of the room, or of the empty slot where it would go. */
static size_t probe(const cr_registry *r, const char *key, size_t len, uint32_t h) {
    size_t i = h & r->mask;
    for (;;) {
        room *x = r->slots[i];
        if (!x || (x->hash == h && x->keylen == len && memcmp(x->key, key, len) == 0)) return i;
        i = (i + 1) & r->mask;
    }
}

static room *find(const cr_registry *r, const char *key, size_t len) {
    if (len > UINT32_MAX) return NULL;
    return r->slots[probe(r, key, len, hash_of(r, key, len))];
}

static bool grow(cr_registry *r) {
    size_t cap = (r->mask + 1) * 2;
    room **s = calloc(cap, sizeof *s);
    if (!s) return false;
    for (size_t i = 0; i <= r->mask; i++) {
        room *x = r->slots[i];
        if (!x) continue;
        size_t j = x->hash & (cap - 1);
        while (s[j]) j = (j + 1) & (cap - 1);
        s[j] = x;
    }
    free(r->slots);
    r->slots = s;
    r->mask = cap - 1;
    return true;
}

static void remove_slot(cr_registry *r, size_t i) {
    size_t j = i;
    for (;;) {
        j = (j + 1) & r->mask;
        room *x = r->slots[j];
        if (!x) break;
        size_t k = x->hash & r->mask;
        /* move x back to i unless its home k lies cyclically in (i, j] */
        bool stay = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stay) {
            r->slots[i] = x;
            i = j;
        }
    }
    r->slots[i] = NULL;
    r->count--;
}

/* ---- waiters ------------------------------------------------------------------------------- */
static uint64_t waiter_id(const cr_registry *r, uint32_t slot) {
    return ((uint64_t)r->w[slot].gen << 32) | ((uint64_t)slot + 1);
}

static waiter *waiter_of(const cr_registry *r, uint64_t id, uint32_t *slot) {
    uint64_t s = id & 0xffffffffu;
    if (s == 0 || s > r->wcap) return NULL;
    waiter *w = &r->w[s - 1];
    if (!w->owner || w->gen != (uint32_t)(id >> 32)) return NULL;
    *slot = (uint32_t)(s - 1);
    return w;
}

/* Unlinks a waiter from its room FIFO and frees its slot. */
static void drop_waiter(cr_registry *r, uint32_t slot) {
    waiter *w = &r->w[slot];
    pending *p = w->owner;
    if (w->prev != NIL) r->w[w->prev].next = w->next; else p->head = w->next;
    if (w->next != NIL) r->w[w->next].prev = w->prev; else p->tail = w->prev;
    p->count--;
    r->nwaiters--;
    w->owner = NULL;
    w->gen = (w->gen + 1) & 0x7fffffffu;
    if (w->gen == 0) w->gen = 1;
    w->next = r->wfree;
    r->wfree = slot;
}

/* Hands back (and frees) every waiter of p in FIFO order. */
static size_t drain(cr_registry *r, pending *p, uint64_t *ids, size_t cap) {
    size_t n = 0;
    while (p->head != NIL) {
        uint32_t s = p->head;
        if (n < cap) ids[n] = waiter_id(r, s);
        n++;
        drop_waiter(r, s);
    }
    return n < cap ? n : cap;
}

static void pending_free(cr_registry *r, pending *p) {
    if (p->prev) p->prev->next = p->next; else r->plist = p->next;
    if (p->next) p->next->prev = p->prev;
    r->npending--;
    free(p);
}

static pending *pending_new(cr_registry *r, room *x) {
    pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->room = x;
    p->head = p->tail = NIL;
    p->next = r->plist;
    if (r->plist) r->plist->prev = p;
    r->plist = p;
    r->npending++;
    return p;
}

/* ---- public ------------------------------------------------------------------------------- */
void cr_registry_config_default(cr_registry_config *c) {
    c->max_rooms = 100000;
    c->max_waiters_per_room = 10000;
    c->max_waiters = 100000;
}

cr_registry *cr_registry_new(const cr_registry_config *cfg) {
    cr_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = *cfg;
    if (r->cfg.max_waiters > CR_MAX_WAITERS_LIMIT) r->cfg.max_waiters = CR_MAX_WAITERS_LIMIT;
    uint64_t k[2];
    cr_random_key(k);
    r->k0 = k[0];
    r->k1 = k[1];
    r->mask = 15;
    r->slots = calloc(r->mask + 1, sizeof *r->slots);
    if (!r->slots) {
        free(r);
        return NULL;
    }
    r->wfree = NIL;
    r->seq = 1;
    return r;
}

void cr_registry_free(cr_registry *r) {
    if (!r) return;
    for (size_t i = 0; i <= r->mask; i++) {
        room *x = r->slots[i];
        if (!x) continue;
        free(x->pending);
        free(x);
    }
    free(r->slots);
    free(r->w);
    free(r);
}

cr_room_state cr_registry_state(const cr_registry *r, const char *key, size_t len) {
    room *x = find(r, key, len);
    if (!x) return CR_ROOM_ABSENT;
    return x->pending ? CR_ROOM_PENDING : CR_ROOM_READY;
}

size_t cr_registry_room_waiters(const cr_registry *r, const char *key, size_t len) {
    room *x = find(r, key, len);
    return x && x->pending ? x->pending->count : 0;
}

/* Finds or creates the room; *created says which. NULL with err filled on failure. */
static room *get_or_create(cr_registry *r, const char *key, size_t len, bool *created,
                           cr_error *err) {
    *created = false;
    if (len > UINT32_MAX || len > SIZE_MAX - sizeof(room)) {
        cr_error_set(err, CR_JID_MALFORMED, "room too long");
        return NULL;
    }
    uint32_t h = hash_of(r, key, len);
    size_t i = probe(r, key, len, h);
    if (r->slots[i]) return r->slots[i];
    if (r->count >= r->cfg.max_rooms) {
        cr_error_set(err, CR_RESOURCE_CONSTRAINT, "too many rooms tracked (%zu)", r->cfg.max_rooms);
        return NULL;
    }
    if ((r->count + 1) * 4 > (r->mask + 1) * 3) {
        if (!grow(r)) {
            cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
            return NULL;
        }
        i = probe(r, key, len, h);
    }
    room *x = malloc(sizeof *x + len);
    if (!x) {
        cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        return NULL;
    }
    x->hash = h;
    x->keylen = (uint32_t)len;
    x->pending = NULL;
    if (len) memcpy(x->key, key, len);
    r->slots[i] = x;
    r->count++;
    *created = true;
    return x;
}

cr_condition cr_registry_set_ready(cr_registry *r, const char *key, size_t len, uint64_t *ids,
                                   size_t cap, size_t *n, cr_error *err) {
    cr_error local;
    if (!err) err = &local;
    *n = 0;
    room *x = find(r, key, len);
    if (x && x->pending && x->pending->count > cap)
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "waiter buffer too small");
    if (!x) {
        bool created;
        x = get_or_create(r, key, len, &created, err);
        return x ? CR_OK : err->condition;
    }
    if (x->pending) {
        *n = drain(r, x->pending, ids, cap);
        pending_free(r, x->pending);
        x->pending = NULL;
    }
    return CR_OK;
}

cr_condition cr_registry_set_pending(cr_registry *r, const char *key, size_t len, cr_error *err) {
    cr_error local;
    if (!err) err = &local;
    bool created;
    room *x = get_or_create(r, key, len, &created, err);
    if (!x) return err->condition;
    if (x->pending) return CR_OK;
    x->pending = pending_new(r, x);
    if (!x->pending) {
        if (created) {
            remove_slot(r, probe(r, key, len, x->hash));
            free(x);
        }
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return CR_OK;
}

size_t cr_registry_forget(cr_registry *r, const char *key, size_t len, uint64_t *ids, size_t cap) {
    if (len > UINT32_MAX) return 0;
    uint32_t h = hash_of(r, key, len);
    size_t i = probe(r, key, len, h);
    room *x = r->slots[i];
    if (!x) return 0;
    size_t n = 0;
    if (x->pending) {
        n = drain(r, x->pending, ids, cap);
        pending_free(r, x->pending);
    }
    remove_slot(r, i);
    free(x);
    return n;
}

cr_condition cr_registry_wait(cr_registry *r, const char *key, size_t len, double deadline,
                              uint64_t *id, cr_error *err) {
    room *x = find(r, key, len);
    if (!x || !x->pending) return cr_error_set(err, CR_ITEM_NOT_FOUND, "room is not pending");
    pending *p = x->pending;
    if (p->count >= r->cfg.max_waiters_per_room)
        return cr_error_set(err, CR_RESOURCE_CONSTRAINT, "too many requests waiting for this room");
    if (r->nwaiters >= r->cfg.max_waiters)
        return cr_error_set(err, CR_RESOURCE_CONSTRAINT, "too many requests waiting");
    if (r->wfree == NIL) {
        size_t cap = r->wcap ? (size_t)r->wcap * 2 : 64;
        if (cap > r->cfg.max_waiters) cap = r->cfg.max_waiters;
        if (cap <= r->wcap) cap = (size_t)r->wcap + 1;
        waiter *w = realloc(r->w, cap * sizeof *w);
        if (!w) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        r->w = w;
        for (size_t s = cap; s-- > r->wcap;) {
            w[s].owner = NULL;
            w[s].gen = 1;
            w[s].next = r->wfree;
            r->wfree = (uint32_t)s;
        }
        r->wcap = (uint32_t)cap;
    }
    uint32_t s = r->wfree;
    waiter *w = &r->w[s];
    r->wfree = w->next;
    w->owner = p;
    w->deadline = deadline;
    w->seq = r->seq++;
    w->next = NIL;
    w->prev = p->tail;
    if (p->tail != NIL) r->w[p->tail].next = s; else p->head = s;
    p->tail = s;
    p->count++;
    r->nwaiters++;
    *id = waiter_id(r, s);
    return CR_OK;
}

bool cr_registry_cancel(cr_registry *r, uint64_t id) {
    uint32_t s;
    if (!waiter_of(r, id, &s)) return false;
    drop_waiter(r, s);
    return true;
}

/* (deadline, seq) order of two live waiter ids. */
static bool before(const cr_registry *r, uint64_t a, uint64_t b) {
    const waiter *x = &r->w[(a & 0xffffffffu) - 1], *y = &r->w[(b & 0xffffffffu) - 1];
    if (x->deadline != y->deadline) return x->deadline < y->deadline;
    return x->seq < y->seq;
}

static void sift(const cr_registry *r, uint64_t *a, size_t i, size_t n) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && before(r, a[c], a[c + 1])) c++;
        if (!before(r, a[i], a[c])) return;
        uint64_t t = a[i]; a[i] = a[c]; a[c] = t;
        i = c;
    }
}

static void heapsort_ids(const cr_registry *r, uint64_t *a, size_t n) {
    for (size_t i = n / 2; i-- > 0;) sift(r, a, i, n);
    for (size_t end = n; end-- > 1;) {
        uint64_t t = a[0]; a[0] = a[end]; a[end] = t;
        sift(r, a, 0, end);
    }
}

size_t cr_registry_expire(cr_registry *r, double now, uint64_t *ids, size_t cap) {
    size_t n = 0;
    for (pending *p = r->plist; p && n < cap; p = p->next)
        for (uint32_t s = p->head; s != NIL && n < cap; s = r->w[s].next)
            if (r->w[s].deadline <= now) ids[n++] = waiter_id(r, s);
    heapsort_ids(r, ids, n);
    for (size_t i = 0; i < n; i++) drop_waiter(r, (uint32_t)((ids[i] & 0xffffffffu) - 1));
    return n;
}

bool cr_registry_notify_due(cr_registry *r, const char *key, size_t len, double now,
                            double interval) {
    room *x = find(r, key, len);
    if (!x || !x->pending) return false;
    pending *p = x->pending;
    if (p->notified && now - p->last_notify < interval) return false;
    p->notified = true;
    p->last_notify = now;
    return true;
}

void cr_registry_stats_get(const cr_registry *r, cr_registry_stats *out) {
    out->rooms = r->count;
    out->pending = r->npending;
    out->ready = r->count - r->npending;
    out->waiters = r->nwaiters;
}

size_t cr_registry_count(const cr_registry *r) { return r->count; }

bool cr_registry_next(const cr_registry *r, size_t *cursor, const char **key, size_t *len,
                      cr_room_state *state, size_t *waiters) {
    for (size_t i = *cursor; i <= r->mask; i++) {
        room *x = r->slots[i];
        if (!x) continue;
        *cursor = i + 1;
        *key = x->key;
        *len = x->keylen;
        *state = x->pending ? CR_ROOM_PENDING : CR_ROOM_READY;
        *waiters = x->pending ? x->pending->count : 0;
        return true;
    }
    *cursor = r->mask + 1;
    return false;
}
