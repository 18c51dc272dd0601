/* vnodes.c — visitor nodes: the node set, reported loads, pending redirects, and the choice of
 * a node for a room (node choice of docs/protocol.md §6; rules and formula in cr.h and native/README.md).
 *
 * Layout:
 * - nodes: an array in configured order; each caches its sums (visitors reported over its rooms,
 *   pending redirects, rooms with state) so that a node's load is O(1);
 * - rooms: an open-addressing table (linear probing, backward-shift deletion, load <= 3/4) of
 *   pointers to room records {hash, key length, first pair, pair count, key bytes inline}, hashed
 *   with SipHash-1-3 keyed per set (room names are client-chosen);
 * - pairs: one (room, node) record per room and node used, in a slab with a free list (indices,
 *   a generation per slot), linked from their room;
 * - pending redirects: one ring of max_pending entries {time, pair slot, generation}, reserved at
 *   creation, in time order (a time earlier than the latest one seen is taken as the latest).
 *   Expiry pops from the head: O(1) per redirect, amortized. An arrival reported for a pair
 *   consumes its oldest pending redirects without touching the ring: the pair counts them as
 *   `consumed`, and since expiry also goes oldest first, the next `consumed` entries of that pair
 *   to leave the ring are exactly those (they are then dropped without counting again). An entry
 *   whose pair slot was freed (generation changed) is stale and skipped.
 * The rendezvous hash uses a fixed key, so a room maps to the same node in every process.
 */
#include "cr.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NIL UINT32_MAX

typedef struct {
    char *id, *focus; /* one block: id NUL focus NUL */
    size_t id_len, focus_len;
    double weight;
    uint32_t capacity;
    bool healthy;
    uint64_t idhash;        /* H(id), fixed key */
    uint64_t room_visitors; /* sum of the pairs' reported */
    uint64_t total;         /* reported total */
    uint64_t pending;       /* sum of the pairs' pending */
    size_t rooms;           /* pairs on this node */
    size_t reported_rooms;  /* pairs on this node with reported > 0 (max_node_rooms) */
    uint32_t epoch;         /* snapshot mark (cr_vnodes_snapshot_begin) */
} vnode;

typedef struct {
    uint32_t hash;
    uint32_t keylen;
    uint32_t head;   /* first pair slot */
    uint32_t npairs;
    char key[];
} vroom;

typedef struct {
    vroom *room;      /* NULL: free slot */
    uint32_t node;
    uint32_t next;    /* next pair of the room; free-list link of a free slot */
    uint32_t gen;
    uint32_t reported;
    uint32_t pending;  /* live entries in the ring not consumed */
    uint32_t consumed; /* the pair's oldest entries in the ring that an arrival consumed */
    uint32_t seen;     /* the node's epoch at the pair's last report (snapshots) */
} vpair;

typedef struct {
    double t;
    uint32_t pair, gen;
} ventry;

struct cr_vnodes {
    cr_vnodes_config cfg;
    uint64_t k0, k1;
    vnode *nodes;
    size_t nnodes, nodes_cap;
    vroom **slots;
    size_t mask, nrooms;
    vpair *pairs;
    uint32_t pcap, pfree, npairs;
    ventry *ring;
    size_t rcap, rhead, rcount;
    double latest;
    bool has_latest;
    uint64_t dropped, unrecorded;
};

/* ---- allocation ----------------------------------------------------------------------------- */
static void *mem(const cr_vnodes *s, void *p, size_t n) {
    if (s->cfg.alloc) return s->cfg.alloc(s->cfg.alloc_ud, p, n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, n);
}
static void mem_free(const cr_vnodes *s, void *p) {
    if (p) (void)mem(s, p, 0);
}

/* ---- hashing -------------------------------------------------------------------------------- */
/* The fixed key of the rendezvous hash ("cr-vnode", "rendezvs"): the same room lands on the same
 * node in every process and after every restart. */
#define RV_K0 0x63722d766e6f6465ULL
#define RV_K1 0x72656e64657a7673ULL

static uint64_t rv_hash(const char *s, size_t len) {
    return cr_siphash13(RV_K0, RV_K1, (const unsigned char *)s, len);
}

/* MurmurHash3's 64-bit finalizer: a bijection that mixes every input bit into every output bit. */
static uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* u in (0,1) for (room hash, node id hash): the top 53 bits, centred in their interval. */
static double unit_of(uint64_t room_h, uint64_t node_h) {
    uint64_t x = fmix64(room_h ^ node_h);
    return ((double)(x >> 11) + 0.5) * 0x1p-53;
}

double cr_vnodes_unit(const char *room, size_t room_len, const char *id, size_t id_len) {
    return unit_of(rv_hash(room, room_len), rv_hash(id, id_len));
}

/* ---- room table ----------------------------------------------------------------------------- */
static uint32_t room_hash(const cr_vnodes *s, const char *key, size_t len) {
    return (uint32_t)cr_siphash13(s->k0, s->k1, (const unsigned char *)key, len);
}

static size_t probe(const cr_vnodes *s, const char *key, size_t len, uint32_t h) {
    size_t i = h & s->mask;
    for (;;) {
        vroom *x = s->slots[i];
        if (!x || (x->hash == h && x->keylen == len && memcmp(x->key, key, len) == 0)) return i;
        i = (i + 1) & s->mask;
    }
}

static vroom *find_room(const cr_vnodes *s, const char *key, size_t len) {
    if (len > UINT32_MAX || s->nrooms == 0) return NULL;
    return s->slots[probe(s, key, len, room_hash(s, key, len))];
}

static bool grow_table(cr_vnodes *s) {
    size_t cap = (s->mask + 1) * 2;
    if (cap > SIZE_MAX / sizeof(vroom *)) return false;
    vroom **n = mem(s, NULL, cap * sizeof *n);
    if (!n) return false;
    memset(n, 0, cap * sizeof *n);
    for (size_t i = 0; i <= s->mask; i++) {
        vroom *x = s->slots[i];
        if (!x) continue;
        size_t j = x->hash & (cap - 1);
        while (n[j]) j = (j + 1) & (cap - 1);
        n[j] = x;
    }
    mem_free(s, s->slots);
    s->slots = n;
    s->mask = cap - 1;
    return true;
}

/* A new room record in the table; NULL past max_rooms or on allocation failure. */
static vroom *add_room(cr_vnodes *s, const char *key, size_t len) {
    if (len > UINT32_MAX || s->nrooms >= s->cfg.max_rooms) return NULL;
    if ((s->nrooms + 1) * 4 > (s->mask + 1) * 3 && !grow_table(s)) return NULL;
    if (len > SIZE_MAX - sizeof(vroom) - 1) return NULL;
    vroom *r = mem(s, NULL, sizeof *r + len + 1);
    if (!r) return NULL;
    r->hash = room_hash(s, key, len);
    r->keylen = (uint32_t)len;
    r->head = NIL;
    r->npairs = 0;
    if (len) memcpy(r->key, key, len);
    r->key[len] = 0;
    s->slots[probe(s, key, len, r->hash)] = r;
    s->nrooms++;
    return r;
}

static void remove_room(cr_vnodes *s, vroom *r) {
    size_t i = probe(s, r->key, r->keylen, r->hash);
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        vroom *x = s->slots[j];
        if (!x) break;
        size_t k = x->hash & s->mask;
        bool stay = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stay) {
            s->slots[i] = x;
            i = j;
        }
    }
    s->slots[i] = NULL;
    s->nrooms--;
    mem_free(s, r);
}

/* ---- pairs ---------------------------------------------------------------------------------- */
static uint32_t find_pair(const cr_vnodes *s, const vroom *r, size_t node) {
    for (uint32_t p = r->head; p != NIL; p = s->pairs[p].next)
        if (s->pairs[p].node == node) return p;
    return NIL;
}

static uint32_t new_pair(cr_vnodes *s, vroom *r, size_t node) {
    if (s->pfree == NIL) {
        if (s->pcap >= NIL - 1) return NIL;
        uint32_t cap = s->pcap ? (s->pcap > NIL / 2 ? NIL - 1 : s->pcap * 2) : 16;
        vpair *n = mem(s, s->pairs, (size_t)cap * sizeof *n);
        if (!n) return NIL;
        for (uint32_t i = s->pcap; i < cap; i++) {
            n[i].room = NULL;
            n[i].gen = 1;
            n[i].next = i + 1 < cap ? i + 1 : NIL;
        }
        s->pairs = n;
        s->pfree = s->pcap;
        s->pcap = cap;
    }
    uint32_t p = s->pfree;
    vpair *x = &s->pairs[p];
    s->pfree = x->next;
    x->room = r;
    x->node = (uint32_t)node;
    x->reported = x->pending = x->consumed = 0;
    x->seen = s->nodes[node].epoch - 1; /* not seen in the current snapshot */
    x->next = r->head;
    r->head = p;
    r->npairs++;
    s->npairs++;
    s->nodes[node].rooms++;
    return p;
}

/* Frees a pair (its counts must already be out of the node's sums); frees its room with its
 * last pair. */
static void free_pair(cr_vnodes *s, uint32_t p) {
    vpair *x = &s->pairs[p];
    vroom *r = x->room;
    uint32_t *link = &r->head;
    while (*link != p) link = &s->pairs[*link].next;
    *link = x->next;
    r->npairs--;
    s->npairs--;
    s->nodes[x->node].rooms--;
    x->room = NULL;
    x->gen++;
    x->next = s->pfree;
    s->pfree = p;
    if (r->npairs == 0) remove_room(s, r);
}

static void maybe_free_pair(cr_vnodes *s, uint32_t p) {
    if (s->pairs[p].reported == 0 && s->pairs[p].pending == 0) free_pair(s, p);
}

/* ---- pending ring --------------------------------------------------------------------------- */
/* Drops the oldest entry; true when it was a pending redirect still counted. */
static bool pop_head(cr_vnodes *s) {
    ventry e = s->ring[s->rhead];
    s->rhead = s->rhead + 1 == s->rcap ? 0 : s->rhead + 1;
    s->rcount--;
    if (s->rcount == 0) s->rhead = 0; /* reuse the pages already touched */
    vpair *x = &s->pairs[e.pair];
    if (!x->room || x->gen != e.gen) return false; /* stale: the pair was forgotten */
    if (x->consumed) {
        x->consumed--;
        return false;
    }
    x->pending--;
    s->nodes[x->node].pending--;
    maybe_free_pair(s, e.pair);
    return true;
}

void cr_vnodes_expire(cr_vnodes *s, double now) {
    while (s->rcount && s->ring[s->rhead].t + s->cfg.pending_window <= now) pop_head(s);
}

/* ---- load and choice ------------------------------------------------------------------------ */
static uint64_t visitors_of(const vnode *n) {
    return n->room_visitors > n->total ? n->room_visitors : n->total;
}
static uint64_t load_of(const vnode *n) { return visitors_of(n) + n->pending; }

/* a is less loaded than b relative to capacity: la/ca < lb/cb, exact without division (loads
 * saturate at 2^32 - 1, so the products fit in 64 bits). */
static bool less_loaded(uint64_t la, uint32_t ca, uint64_t lb, uint32_t cb) {
    if (la > UINT32_MAX) la = UINT32_MAX;
    if (lb > UINT32_MAX) lb = UINT32_MAX;
    return la * cb < lb * ca;
}

static cr_vnode_how decide(const cr_vnodes *s, const vroom *r, const char *room, size_t len,
                           size_t *out) {
    /* 1. reuse: the least loaded healthy node below capacity that the room already uses */
    size_t best = SIZE_MAX;
    uint64_t bl = 0;
    if (r) {
        for (uint32_t p = r->head; p != NIL; p = s->pairs[p].next) {
            size_t i = s->pairs[p].node;
            const vnode *n = &s->nodes[i];
            if (!n->healthy) continue;
            uint64_t l = load_of(n);
            if (l >= n->capacity) continue;
            if (best == SIZE_MAX || less_loaded(l, n->capacity, bl, s->nodes[best].capacity) ||
                (!less_loaded(bl, s->nodes[best].capacity, l, n->capacity) && i < best)) {
                best = i;
                bl = l;
            }
        }
        if (best != SIZE_MAX) {
            *out = best;
            return CR_VNODE_REUSE;
        }
    }
    /* 2. hash: weighted rendezvous among healthy nodes with spare capacity */
    uint64_t rh = rv_hash(room, len);
    double bs = 0;
    for (size_t i = 0; i < s->nnodes; i++) {
        const vnode *n = &s->nodes[i];
        if (!n->healthy || load_of(n) >= n->capacity) continue;
        double u = unit_of(rh, n->idhash);
        /* -ln(u) >= 1 - u, so score <= weight / (1 - u): a node whose bound is below the best
         * score (with a margin far above rounding error) cannot win; skip its logarithm. The
         * answer is the same as computing every score. */
        if (best != SIZE_MAX && n->weight < bs * (1 - u) * (1 - 1e-9)) continue;
        double score = -n->weight / log(u);
        if (best == SIZE_MAX || score > bs) {
            best = i;
            bs = score;
        }
    }
    if (best != SIZE_MAX) {
        *out = best;
        return CR_VNODE_HASH;
    }
    /* 3. least loaded healthy node */
    for (size_t i = 0; i < s->nnodes; i++) {
        const vnode *n = &s->nodes[i];
        if (!n->healthy) continue;
        uint64_t l = load_of(n);
        if (best == SIZE_MAX || less_loaded(l, n->capacity, bl, s->nodes[best].capacity)) {
            best = i;
            bl = l;
        }
    }
    if (best != SIZE_MAX) {
        *out = best;
        return CR_VNODE_LEAST_LOADED;
    }
    return CR_VNODE_NONE;
}

cr_vnode_how cr_vnodes_pick(cr_vnodes *s, const char *room, size_t len, double now, size_t *node) {
    cr_vnodes_expire(s, now);
    return decide(s, find_room(s, room, len), room, len, node);
}

cr_vnode_how cr_vnodes_choose(cr_vnodes *s, const char *room, size_t len, double now,
                              size_t *node) {
    cr_vnodes_expire(s, now);
    vroom *r = find_room(s, room, len);
    size_t i;
    cr_vnode_how how = decide(s, r, room, len, &i);
    if (how == CR_VNODE_NONE) return how;
    *node = i;
    if (s->rcount == s->rcap) { /* full: drop the oldest, which may free a pair or a room */
        if (pop_head(s)) s->dropped++;
        r = find_room(s, room, len);
    }
    bool fresh = false;
    if (!r) {
        r = add_room(s, room, len);
        if (!r) {
            s->unrecorded++;
            return how;
        }
        fresh = true;
    }
    uint32_t p = find_pair(s, r, i);
    if (p == NIL) {
        p = new_pair(s, r, i);
        if (p == NIL) {
            if (fresh) remove_room(s, r);
            s->unrecorded++;
            return how;
        }
    }
    double t = now;
    if (s->has_latest && t < s->latest) t = s->latest;
    s->latest = t;
    s->has_latest = true;
    size_t at = s->rhead + s->rcount;
    if (at >= s->rcap) at -= s->rcap;
    s->ring[at].t = t;
    s->ring[at].pair = p;
    s->ring[at].gen = s->pairs[p].gen;
    s->rcount++;
    s->pairs[p].pending++;
    s->nodes[i].pending++;
    return how;
}

/* ---- public --------------------------------------------------------------------------------- */
void cr_vnodes_config_default(cr_vnodes_config *c) {
    c->pending_window = 60;
    c->max_rooms = 100000;
    c->max_pending = 1000000;
    c->max_node_rooms = 0;
    c->alloc = NULL;
    c->alloc_ud = NULL;
}

cr_vnodes *cr_vnodes_new(const cr_vnodes_config *cfg) {
    if (!isfinite(cfg->pending_window) || cfg->pending_window < 0 || cfg->max_rooms == 0 ||
        cfg->max_pending == 0 || cfg->max_pending > CR_VNODES_MAX_PENDING_LIMIT)
        return NULL;
    cr_vnodes tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    cr_vnodes *s = mem(&tmp, NULL, sizeof *s);
    if (!s) return NULL;
    *s = tmp;
    uint64_t k[2];
    cr_random_key(k);
    s->k0 = k[0];
    s->k1 = k[1];
    s->mask = 15;
    s->pfree = NIL;
    s->slots = mem(s, NULL, (s->mask + 1) * sizeof *s->slots);
    /* the ring is reserved whole and left uninitialized: pages are touched only as entries are
     * written, and the head goes back to 0 whenever the ring empties */
    s->rcap = cfg->max_pending;
    s->ring = mem(s, NULL, s->rcap * sizeof *s->ring);
    if (!s->slots || !s->ring) {
        mem_free(s, s->slots);
        mem_free(s, s->ring);
        mem_free(s, s);
        return NULL;
    }
    memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
    return s;
}

void cr_vnodes_free(cr_vnodes *s) {
    if (!s) return;
    for (size_t i = 0; i <= s->mask; i++) mem_free(s, s->slots[i]);
    mem_free(s, s->slots);
    for (size_t i = 0; i < s->nnodes; i++) mem_free(s, s->nodes[i].id);
    mem_free(s, s->nodes);
    mem_free(s, s->pairs);
    mem_free(s, s->ring);
    mem_free(s, s);
}

cr_condition cr_vnodes_add_node(cr_vnodes *s, const char *id, size_t id_len, const char *focus_jid,
                                size_t focus_jid_len, double weight, uint32_t capacity,
                                cr_error *err) {
    if (id_len == 0 || id_len > CR_VNODES_MAX_ID || !cr_xml_safe(id, id_len))
        return cr_error_set(err, CR_BAD_REQUEST, "node id must be 1 to %d bytes of XML-safe UTF-8",
                            CR_VNODES_MAX_ID);
    if (focus_jid_len == 0 || focus_jid_len > CR_VNODES_MAX_ID ||
        !cr_xml_safe(focus_jid, focus_jid_len))
        return cr_error_set(err, CR_BAD_REQUEST,
                            "node focus_jid must be 1 to %d bytes of XML-safe UTF-8",
                            CR_VNODES_MAX_ID);
    if (!isfinite(weight) || weight <= 0)
        return cr_error_set(err, CR_BAD_REQUEST, "node weight must be a finite number > 0");
    if (capacity == 0) return cr_error_set(err, CR_BAD_REQUEST, "node capacity must be >= 1");
    size_t dup;
    if (cr_vnodes_find(s, id, id_len, &dup))
        return cr_error_set(err, CR_BAD_REQUEST, "duplicate node id");
    if (s->nnodes >= CR_VNODES_MAX_NODES)
        return cr_error_set(err, CR_BAD_REQUEST, "more than %d nodes", CR_VNODES_MAX_NODES);
    if (s->nnodes == s->nodes_cap) {
        size_t cap = s->nodes_cap ? s->nodes_cap * 2 : 8;
        vnode *n = mem(s, s->nodes, cap * sizeof *n);
        if (!n) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        s->nodes = n;
        s->nodes_cap = cap;
    }
    char *b = mem(s, NULL, id_len + focus_jid_len + 2);
    if (!b) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    memcpy(b, id, id_len);
    b[id_len] = 0;
    memcpy(b + id_len + 1, focus_jid, focus_jid_len);
    b[id_len + 1 + focus_jid_len] = 0;
    vnode *n = &s->nodes[s->nnodes++];
    memset(n, 0, sizeof *n);
    n->id = b;
    n->id_len = id_len;
    n->focus = b + id_len + 1;
    n->focus_len = focus_jid_len;
    n->weight = weight;
    n->capacity = capacity;
    n->healthy = true;
    n->idhash = rv_hash(id, id_len);
    return CR_OK;
}

size_t cr_vnodes_count(const cr_vnodes *s) { return s->nnodes; }

bool cr_vnodes_find(const cr_vnodes *s, const char *id, size_t len, size_t *node) {
    for (size_t i = 0; i < s->nnodes; i++)
        if (s->nodes[i].id_len == len && memcmp(s->nodes[i].id, id, len) == 0) {
            *node = i;
            return true;
        }
    return false;
}

void cr_vnodes_set_healthy(cr_vnodes *s, size_t node, bool healthy) {
    if (node < s->nnodes) s->nodes[node].healthy = healthy;
}

bool cr_vnodes_uses(const cr_vnodes *s, const char *room, size_t len) {
    return find_room(s, room, len) != NULL;
}

cr_condition cr_vnodes_report(cr_vnodes *s, size_t node, const char *room, size_t len,
                              uint32_t visitors, double now, cr_error *err) {
    if (node >= s->nnodes) return cr_error_set(err, CR_ITEM_NOT_FOUND, "unknown node");
    cr_vnodes_expire(s, now);
    vroom *r = find_room(s, room, len);
    bool fresh = false;
    if (!r) {
        if (visitors == 0) return CR_OK;
        if (s->nrooms >= s->cfg.max_rooms || len > UINT32_MAX)
            return cr_error_set(err, CR_RESOURCE_CONSTRAINT, "too many rooms with visitor state");
        r = add_room(s, room, len);
        if (!r) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        fresh = true;
    }
    uint32_t p = find_pair(s, r, node);
    if (p == NIL || s->pairs[p].reported == 0) {
        size_t cap = s->cfg.max_node_rooms ? s->cfg.max_node_rooms : s->cfg.max_rooms;
        if (visitors > 0 && s->nodes[node].reported_rooms >= cap) {
            if (fresh) remove_room(s, r);
            return cr_error_set(err, CR_RESOURCE_CONSTRAINT, "the node reports visitors in too many rooms");
        }
    }
    if (p == NIL) {
        if (visitors == 0) return CR_OK;
        p = new_pair(s, r, node);
        if (p == NIL) {
            if (fresh) remove_room(s, r);
            return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        }
    }
    vpair *x = &s->pairs[p];
    vnode *n = &s->nodes[node];
    if (visitors > x->reported) {
        uint32_t arrived = visitors - x->reported;
        uint32_t c = arrived < x->pending ? arrived : x->pending;
        x->pending -= c;
        x->consumed += c;
        n->pending -= c;
    }
    n->room_visitors = n->room_visitors - x->reported + visitors;
    if (x->reported == 0 && visitors > 0) n->reported_rooms++;
    else if (x->reported > 0 && visitors == 0) n->reported_rooms--;
    x->reported = visitors;
    x->seen = n->epoch;
    maybe_free_pair(s, p);
    return CR_OK;
}

void cr_vnodes_snapshot_begin(cr_vnodes *s, size_t node) {
    if (node < s->nnodes) s->nodes[node].epoch++;
}

size_t cr_vnodes_snapshot_end(cr_vnodes *s, size_t node, double now) {
    if (node >= s->nnodes) return 0;
    cr_vnodes_expire(s, now);
    vnode *n = &s->nodes[node];
    size_t cleared = 0;
    /* slots in index order: freeing one (maybe_free_pair) only clears that slot */
    for (uint32_t p = 0; p < s->pcap && n->reported_rooms > 0; p++) {
        vpair *x = &s->pairs[p];
        if (!x->room || x->node != node || x->reported == 0 || x->seen == n->epoch) continue;
        n->room_visitors -= x->reported;
        n->reported_rooms--;
        x->reported = 0;
        cleared++;
        maybe_free_pair(s, p);
    }
    return cleared;
}

void cr_vnodes_report_total(cr_vnodes *s, size_t node, uint64_t visitors, double now) {
    cr_vnodes_expire(s, now);
    if (node < s->nnodes) s->nodes[node].total = visitors;
}

void cr_vnodes_forget_room(cr_vnodes *s, const char *room, size_t len) {
    vroom *r = find_room(s, room, len);
    if (!r) return;
    for (uint32_t k = r->npairs; k > 0; k--) { /* the last free_pair frees r */
        vpair *x = &s->pairs[r->head];
        s->nodes[x->node].room_visitors -= x->reported;
        if (x->reported > 0) s->nodes[x->node].reported_rooms--;
        s->nodes[x->node].pending -= x->pending;
        free_pair(s, r->head);
    }
}

void cr_vnodes_node_info(const cr_vnodes *s, size_t node, cr_vnode_info *out) {
    memset(out, 0, sizeof *out);
    if (node >= s->nnodes) return;
    const vnode *n = &s->nodes[node];
    out->id = n->id;
    out->id_len = n->id_len;
    out->focus_jid = n->focus;
    out->focus_jid_len = n->focus_len;
    out->weight = n->weight;
    out->capacity = n->capacity;
    out->healthy = n->healthy;
    out->room_visitors = n->room_visitors;
    out->reported_total = n->total;
    out->visitors = visitors_of(n);
    out->pending = n->pending;
    out->load = load_of(n);
    out->rooms = n->rooms;
}

size_t cr_vnodes_room_info(const cr_vnodes *s, const char *room, size_t len,
                           cr_vnode_pair_info *out, size_t cap) {
    const vroom *r = find_room(s, room, len);
    if (!r) return 0;
    /* node order: a selection over the (few) pairs, at most count of them */
    size_t k = 0, last = 0;
    bool any = false;
    while (k < cap) {
        uint32_t best = NIL;
        for (uint32_t p = r->head; p != NIL; p = s->pairs[p].next) {
            size_t i = s->pairs[p].node;
            if (any && i <= last) continue;
            if (best == NIL || i < s->pairs[best].node) best = p;
        }
        if (best == NIL) break;
        out[k].node = s->pairs[best].node;
        out[k].visitors = s->pairs[best].reported;
        out[k].pending = s->pairs[best].pending;
        last = s->pairs[best].node;
        any = true;
        k++;
    }
    return r->npairs;
}

void cr_vnodes_stats_get(const cr_vnodes *s, cr_vnodes_stats *out) {
    memset(out, 0, sizeof *out);
    out->nodes = s->nnodes;
    out->rooms = s->nrooms;
    out->pairs = s->npairs;
    out->ring = s->rcount;
    for (size_t i = 0; i < s->nnodes; i++) out->pending += s->nodes[i].pending;
    out->dropped = s->dropped;
    out->unrecorded = s->unrecorded;
}

const char *cr_vnode_how_name(cr_vnode_how how) {
    switch (how) {
    case CR_VNODE_REUSE: return "reuse";
    case CR_VNODE_HASH: return "hash";
    case CR_VNODE_LEAST_LOADED: return "least-loaded";
    default: return "none";
    }
}

bool cr_vnodes_check(const cr_vnodes *s) {
    if (s->nrooms > s->cfg.max_rooms || s->rcount > s->rcap || s->rhead >= s->rcap) return false;
    if (s->nrooms * 4 > (s->mask + 1) * 3) return false;
    /* per-node sums recomputed from the pairs */
    uint64_t vis[CR_VNODES_MAX_NODES], pend[CR_VNODES_MAX_NODES];
    size_t rooms[CR_VNODES_MAX_NODES], reported[CR_VNODES_MAX_NODES];
    memset(reported, 0, sizeof reported);
    memset(vis, 0, sizeof vis);
    memset(pend, 0, sizeof pend);
    memset(rooms, 0, sizeof rooms);
    size_t nr = 0, np = 0;
    for (size_t i = 0; i <= s->mask; i++) {
        const vroom *r = s->slots[i];
        if (!r) continue;
        nr++;
        if (find_room(s, r->key, r->keylen) != r || r->npairs == 0) return false;
        uint32_t k = 0;
        uint64_t seen[(CR_VNODES_MAX_NODES + 63) / 64] = {0};
        for (uint32_t p = r->head; p != NIL; p = s->pairs[p].next) {
            if (p >= s->pcap || ++k > r->npairs) return false;
            const vpair *x = &s->pairs[p];
            if (x->room != r || x->node >= s->nnodes) return false;
            if (seen[x->node / 64] >> (x->node % 64) & 1) return false; /* one pair per node */
            seen[x->node / 64] |= (uint64_t)1 << (x->node % 64);
            if (x->reported == 0 && x->pending == 0) return false; /* would have been freed */
            vis[x->node] += x->reported;
            pend[x->node] += x->pending;
            rooms[x->node]++;
            if (x->reported > 0) reported[x->node]++;
        }
        if (k != r->npairs) return false;
        np += k;
    }
    if (nr != s->nrooms || np != s->npairs) return false;
    for (size_t i = 0; i < s->nnodes; i++)
        if (vis[i] != s->nodes[i].room_visitors || pend[i] != s->nodes[i].pending ||
            rooms[i] != s->nodes[i].rooms || reported[i] != s->nodes[i].reported_rooms)
            return false;
    /* ring: time order, and every live pair's pending + consumed equals its live entries */
    size_t nfree = 0;
    for (uint32_t p = s->pfree; p != NIL; p = s->pairs[p].next) {
        if (p >= s->pcap || s->pairs[p].room || ++nfree > s->pcap) return false;
    }
    if (nfree + s->npairs != s->pcap) return false;
    uint32_t *live = NULL;
    if (s->pcap) {
        live = calloc(s->pcap, sizeof *live);
        if (!live) return false;
    }
    bool ok = true;
    double prev = -INFINITY;
    for (size_t k = 0; k < s->rcount && ok; k++) {
        size_t at = (s->rhead + k) % s->rcap;
        const ventry *e = &s->ring[at];
        if (e->t < prev || e->pair >= s->pcap) ok = false;
        prev = e->t;
        if (ok && s->pairs[e->pair].room && s->pairs[e->pair].gen == e->gen) live[e->pair]++;
    }
    for (uint32_t p = 0; ok && p < s->pcap; p++) {
        const vpair *x = &s->pairs[p];
        if (x->room && live[p] != x->pending + x->consumed) ok = false;
    }
    free(live);
    return ok;
}
