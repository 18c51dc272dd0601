/*
 * cr.h — the C core of mod_conference_request (no Lua in here).
 *
 * Ownership words used in every comment below:
 *   borrowed     the callee keeps no reference after it returns
 *   owned by X   X frees it (through the matching *_free / *_destroy)
 *   caller frees the caller must release it
 * Errors are values: a function that can fail returns a cr_condition (CR_OK == 0 on success) and
 * fills the caller-owned cr_error it was given. No global mutable state: every piece of state lives
 * in an object the caller created.
 */
#ifndef CR_H
#define CR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Conditions (condition.c)
 * ------------------------------------------------------------------------------------------- */
typedef enum {
    CR_OK = 0,
    CR_BAD_REQUEST,
    CR_JID_MALFORMED,
    CR_ITEM_NOT_FOUND,
    CR_NOT_AUTHORIZED,
    CR_NOT_ACCEPTABLE,
    CR_RESOURCE_CONSTRAINT,
    CR_INTERNAL_SERVER_ERROR,
    CR_NOT_ALLOWED,
    CR_CONFLICT,
    CR_FORBIDDEN,
    CR_SERVICE_UNAVAILABLE,
    CR_POLICY_VIOLATION,
    CR_CONDITION_COUNT
} cr_condition;

typedef struct {
    const char *name; /* XMPP stanza error condition, e.g. "bad-request" */
    const char *type; /* XMPP error type: "modify", "cancel", "auth", "wait" */
    int http;         /* HTTP status */
} cr_condition_info;

/* Static table entry for c (CR_OK < c < CR_CONDITION_COUNT), else NULL. Owned by the library. */
const cr_condition_info *cr_condition_get(cr_condition c);

#define CR_ERROR_TEXT 160
typedef struct {
    cr_condition condition;
    char text[CR_ERROR_TEXT]; /* short English sentence, NUL-terminated, possibly truncated */
} cr_error;

/* Fills err (borrowed, may be NULL) with c and a printf-style text; returns c. */
cr_condition cr_error_set(cr_error *err, cr_condition c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* True when s[0..len) is valid UTF-8 made only of characters allowed in XML 1.0 (no control
 * characters other than tab/CR/LF, no U+FFFE/U+FFFF, no surrogates). s is borrowed. */
bool cr_xml_safe(const char *s, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Hashing (hash.c), shared by the registry's and the node set's tables
 * ------------------------------------------------------------------------------------------- */
/* SipHash-1-3 of in[0..len) (borrowed) under the key (k0, k1). Pure. */
uint64_t cr_siphash13(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len);
/* Fills k with a random key from the OS (getrandom, else /dev/urandom, else a weak fallback of
 * time and pid): for per-object table keys, not for secrets. */
void cr_random_key(uint64_t k[2]);

/* ---------------------------------------------------------------------------------------------
 * cr_buf: growable byte buffer (buf.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    char *data; /* owned by the cr_buf; NULL until the first growth */
    size_t len;
    size_t cap;
} cr_buf;

/* Initializes an empty buffer (no allocation). */
void cr_buf_init(cr_buf *b);
/* Frees b's storage (b itself is the caller's); b is empty and reusable afterwards. */
void cr_buf_free(cr_buf *b);
/* Sets len to 0, keeps the storage for reuse. */
void cr_buf_reset(cr_buf *b);
/* Ensures room for `extra` more bytes; false on allocation failure (b unchanged). */
bool cr_buf_reserve(cr_buf *b, size_t extra);
/* Appends n bytes of s (borrowed); false on allocation failure (b unchanged). */
bool cr_buf_append(cr_buf *b, const void *s, size_t n);
/* Appends a NUL-terminated string (borrowed). */
bool cr_buf_puts(cr_buf *b, const char *s);
bool cr_buf_putc(cr_buf *b, char c);

/* ---------------------------------------------------------------------------------------------
 * Limits and the request model (request.c), docs/protocol.md §2.1
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    size_t max_room;           /* bytes of room (3071) */
    size_t max_jid_part;       /* bytes of each of node/domain/resource (1023) */
    size_t max_properties;     /* distinct property names (64) */
    size_t max_property_name;  /* bytes (256) */
    size_t max_property_value; /* bytes (4096) */
    size_t max_token;          /* bytes (16384) */
    size_t max_id;             /* bytes of machine-uid / session-id (256) */
    size_t max_xml_depth;      /* element nesting, <conference> is depth 1 (16) */
    size_t max_json_depth;     /* JSON nesting, top object is depth 1 (8) */
} cr_limits;

/* Fills l (caller's) with the defaults above. */
void cr_limits_default(cr_limits *l);

/* A string inside the request arena: bytes [off, off+len) of cr_request.arena; set == false means
 * absent. Arena strings are NUL-terminated. */
typedef struct {
    size_t off;
    size_t len;
    bool set;
} cr_str;

typedef struct {
    cr_str name;
    cr_str value;
} cr_prop_ref;

typedef enum { CR_FIELD_ROOM, CR_FIELD_MACHINE_UID, CR_FIELD_SESSION_ID, CR_FIELD_TOKEN } cr_field;

/* Reusable request: every string lives in one arena; cr_request_reset keeps the storage, so
 * steady-state parsing does not allocate. */
typedef struct {
    cr_buf arena;          /* owned by the request */
    cr_str room, machine_uid, session_id, token;
    cr_prop_ref *props;    /* owned by the request; props[0..nprops) */
    size_t nprops;
    size_t props_cap;
} cr_request;

/* Initializes an empty request (no allocation). */
void cr_request_init(cr_request *r);
/* Frees everything the request owns (r itself is the caller's). */
void cr_request_free(cr_request *r);
/* Forgets the content, keeps the storage. */
void cr_request_reset(cr_request *r);
/* Pointer to the bytes of s inside r's arena (owned by r, valid until the next change of r);
 * NULL when s is absent. */
const char *cr_request_str(const cr_request *r, cr_str s);

/* Sets a field from s[0..len) (borrowed). An empty string leaves the field absent. Checks the
 * byte limits of token (policy-violation) and machine-uid/session-id (policy-violation); room
 * limits are checked by cr_request_finish. */
cr_condition cr_request_set(cr_request *r, cr_field f, const char *s, size_t len,
                            const cr_limits *lim, cr_error *err);
/* Applies one attribute of the <conference> element (name/value borrowed): room, machine-uid,
 * session-id and token set their field as cr_request_set does; any other name is ignored. The one
 * place that maps attribute names to fields, shared by the expat parser and the binding's walk of
 * an already parsed stanza. */
cr_condition cr_request_set_attribute(cr_request *r, const char *name, size_t nlen,
                                     const char *value, size_t vlen, const cr_limits *lim,
                                     cr_error *err);
/* Adds a property (name/value borrowed). Empty name: skipped. A name seen before: the value is
 * replaced, the first position kept. Limits on name/value bytes and on the number of distinct
 * names → policy-violation. */
cr_condition cr_request_add_property(cr_request *r, const char *name, size_t nlen,
                                     const char *value, size_t vlen, const cr_limits *lim,
                                     cr_error *err);
/* Final checks once a document is parsed: missing room → bad-request; room over max_room, a part
 * over max_jid_part, or not plainly node@domain → jid-malformed. */
cr_condition cr_request_finish(cr_request *r, const cr_limits *lim, cr_error *err);

/* ---------------------------------------------------------------------------------------------
 * XML payload parser (xml.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct cr_xml_parser cr_xml_parser;

/* Creates a parser (one expat parser with namespace processing, a hash salt drawn once).
 * Returns NULL on allocation failure. Caller frees with cr_xml_parser_free. */
cr_xml_parser *cr_xml_parser_new(void);
void cr_xml_parser_free(cr_xml_parser *p);
/* Parses one serialized <conference xmlns='http://jitsi.org/protocol/focus'> element from
 * bytes[0..len) (borrowed) into req (reset first; owned by the caller). lim is borrowed. */
cr_condition cr_xml_parse(cr_xml_parser *p, const char *bytes, size_t len, const cr_limits *lim,
                          cr_request *req, cr_error *err);

/* ---------------------------------------------------------------------------------------------
 * JSON body parser (json.c)
 * ------------------------------------------------------------------------------------------- */
/* Parses the HTTP body bytes[0..len) (borrowed) into req (reset first; caller's). A body `token`
 * is ignored. */
cr_condition cr_json_parse(const char *bytes, size_t len, const cr_limits *lim, cr_request *req,
                           cr_error *err);

/* ---------------------------------------------------------------------------------------------
 * Answers (answer.c), docs/protocol.md §2.2
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    const char *s; /* borrowed; NULL or len 0 = absent (for optional fields) */
    size_t len;
} cr_sv;

typedef struct {
    cr_sv name;
    cr_sv value;
} cr_prop;

typedef struct {
    cr_sv room;      /* required */
    bool ready;
    cr_sv focus_jid; /* required */
    cr_sv session_id, identity, vnode; /* optional */
    cr_sv vnode_muc; /* optional: the visitor node's MUC host (property vnode-muc, JSON vnodeMuc) */
    bool visitors_supported;
    bool live_queue;
} cr_answer;

typedef struct {
    bool authentication;
    int external_auth; /* -1: no externalAuth property; 0/1: "false"/"true" */
    bool sip_gateway;
    cr_prop *extras;   /* owned by the config; sorted by name, names unique; each entry's
                          bytes are one block owned by the config */
    size_t nextras;
    cr_buf arena;      /* unused, kept zero (reserved) */
} cr_answer_config;

void cr_answer_config_init(cr_answer_config *c);
void cr_answer_config_free(cr_answer_config *c);
/* Copies an extra property (name/value borrowed) into c, keeping them sorted by name; a name
 * given twice keeps the last value. CR_INTERNAL_SERVER_ERROR on allocation failure. */
cr_condition cr_answer_config_add_extra(cr_answer_config *c, const char *name, size_t nlen,
                                        const char *value, size_t vlen, cr_error *err);
/* Upper bound of the number of properties cr_answer_properties may yield for c. */
size_t cr_answer_max_properties(const cr_answer_config *c);
/* The ordered property list of an answer (the one place of the order rule): writes entries
 * first, first+1, … (at most cap) into out (caller's); the strings are borrowed from a, c or
 * static storage. Returns the number written (0 once first is past the end). */
size_t cr_answer_properties(const cr_answer *a, const cr_answer_config *c, size_t first,
                            cr_prop *out, size_t cap);
/* Checks the strings of a: room and focus_jid present, every string valid XML-safe UTF-8.
 * CR_BAD_REQUEST with a text otherwise. */
cr_condition cr_answer_check(const cr_answer *a, cr_error *err);
/* Render a (borrowed) into out (reset first, owned by the caller). Fail on a failed check or on
 * allocation failure (CR_INTERNAL_SERVER_ERROR). */
cr_condition cr_answer_render_json(const cr_answer *a, const cr_answer_config *c, cr_buf *out,
                                   cr_error *err);
cr_condition cr_answer_render_xml(const cr_answer *a, const cr_answer_config *c, cr_buf *out,
                                  cr_error *err);
/* Escaping helpers (append to out): XML attribute value (& < > ' "), JSON string body
 * (" \ and control characters). s is borrowed. False on allocation failure. */
bool cr_xml_escape(cr_buf *out, const char *s, size_t len);
bool cr_json_escape(cr_buf *out, const char *s, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Room registry (registry.c), docs/protocol.md §3
 * ------------------------------------------------------------------------------------------- */
typedef enum { CR_ROOM_ABSENT = 0, CR_ROOM_PENDING = 1, CR_ROOM_READY = 2 } cr_room_state;

typedef struct {
    size_t max_rooms;            /* 100000 */
    size_t max_waiters_per_room; /* 10000 */
    size_t max_waiters;          /* 100000, at most CR_MAX_WAITERS_LIMIT */
} cr_registry_config;

#define CR_MAX_WAITERS_LIMIT ((size_t)1 << 30)

typedef struct {
    size_t rooms, pending, ready, waiters;
} cr_registry_stats;

typedef struct cr_registry cr_registry;

void cr_registry_config_default(cr_registry_config *c);
/* Creates a registry (cfg borrowed); NULL on allocation failure. Caller frees with
 * cr_registry_free (which drops every waiter). */
cr_registry *cr_registry_new(const cr_registry_config *cfg);
void cr_registry_free(cr_registry *r);

/* Keys (room, borrowed) are byte strings of any length ≤ UINT32_MAX. err (caller's) may be NULL. */
cr_room_state cr_registry_state(const cr_registry *r, const char *room, size_t len);
/* Number of waiters of the room (0 when not pending). */
size_t cr_registry_room_waiters(const cr_registry *r, const char *room, size_t len);
/* absent/pending → ready. Copies the ids of every waiter of the room, FIFO order, into ids
 * (caller's, cap entries; cap must be ≥ cr_registry_room_waiters) and forgets them; *n = count.
 * CR_RESOURCE_CONSTRAINT when the room is new and max_rooms are tracked. */
cr_condition cr_registry_set_ready(cr_registry *r, const char *room, size_t len, uint64_t *ids,
                                   size_t cap, size_t *n, cr_error *err);
/* absent/ready → pending (pending stays pending). CR_RESOURCE_CONSTRAINT as above. */
cr_condition cr_registry_set_pending(cr_registry *r, const char *room, size_t len, cr_error *err);
/* any → absent; hands back the room's waiter ids like set_ready. Returns the count. */
size_t cr_registry_forget(cr_registry *r, const char *room, size_t len, uint64_t *ids, size_t cap);
/* Adds a waiter to a pending room; *id = its id (> 0, < 2^63). CR_ITEM_NOT_FOUND when the room is
 * not pending, CR_RESOURCE_CONSTRAINT past max_waiters_per_room or max_waiters. */
cr_condition cr_registry_wait(cr_registry *r, const char *room, size_t len, double deadline,
                              uint64_t *id, cr_error *err);
/* Drops one waiter; false when id is unknown (already handed back or cancelled). */
bool cr_registry_cancel(cr_registry *r, uint64_t id);
/* Removes every waiter whose deadline ≤ now and copies their ids into ids (caller's, cap ≥
 * cr_registry_stats().waiters suffices), ordered by deadline then by arrival. Returns the count.
 * Touches only pending rooms. */
size_t cr_registry_expire(cr_registry *r, double now, uint64_t *ids, size_t cap);
/* True (and records now) when the room is pending and was not notified within interval. */
bool cr_registry_notify_due(cr_registry *r, const char *room, size_t len, double now,
                            double interval);
void cr_registry_stats_get(const cr_registry *r, cr_registry_stats *out);
size_t cr_registry_count(const cr_registry *r);
/* Iteration for operators: start with *cursor = 0; returns false at the end. *room points into
 * the registry (owned by it, valid until the next change). Changing the registry between calls
 * may skip or repeat rooms, never crashes. */
bool cr_registry_next(const cr_registry *r, size_t *cursor, const char **room, size_t *len,
                      cr_room_state *state, size_t *waiters);

/* ---------------------------------------------------------------------------------------------
 * Legacy jabber:iq:conference payload (legacy.c), docs/protocol.md §7 — section owned by the legacy work
 * ------------------------------------------------------------------------------------------- */
#define CR_LEGACY_NS "jabber:iq:conference"

typedef struct {
    size_t max_nicks;  /* <nick> elements in one payload (16) */
    size_t max_nick;   /* bytes of one nick (1023, a JID resource) */
    size_t max_secret; /* bytes of <secret> (1023) */
    size_t max_name;   /* bytes of <name> (1023) */
    size_t max_depth;  /* element nesting, the payload element is depth 1 (8) */
} cr_legacy_limits;

/* Fills l (caller's) with the defaults above. */
void cr_legacy_limits_default(cr_legacy_limits *l);

/* A parsed payload. Strings are cr_str into arena (NUL-terminated). Reusable: the parser resets it
 * and keeps its storage. */
typedef struct {
    cr_buf arena;      /* owned by the request */
    cr_str *nicks;     /* owned by the request; nicks[0..nnicks), document order, may be empty */
    size_t nnicks;
    size_t nicks_cap;
    cr_str secret;     /* <secret> text; set even when empty; the last one wins */
    cr_str name;       /* <name> text; the last one wins */
    bool privacy;      /* a <privacy/> child was present */
} cr_legacy_request;

/* Initializes an empty request (no allocation). */
void cr_legacy_request_init(cr_legacy_request *r);
/* Frees everything r owns (r itself is the caller's). */
void cr_legacy_request_free(cr_legacy_request *r);
/* Pointer to the bytes of s in r's arena (owned by r, valid until r changes); NULL when absent. */
const char *cr_legacy_str(const cr_legacy_request *r, cr_str s);

typedef struct cr_legacy_parser cr_legacy_parser;

/* Creates a parser (one expat parser with namespace processing, its own hash salt); lim is copied.
 * NULL on allocation failure. Caller frees with cr_legacy_parser_free. */
cr_legacy_parser *cr_legacy_parser_new(const cr_legacy_limits *lim);
void cr_legacy_parser_free(cr_legacy_parser *p);
/* Parses one serialized payload element in jabber:iq:conference (any element name) from
 * bytes[0..len) (borrowed) into req (reset first; caller's). Only direct children in the namespace
 * count: <nick> (text, repeated), <secret> (text), <name> (text), <privacy/> (flag); anything else
 * is ignored (but depth-checked). Text inside a field must be character data only.
 * Errors: not well-formed, DTD/entity declarations, depth, wrong namespace, an element inside a
 * text field → CR_BAD_REQUEST; more than max_nicks nicks, a nick/secret/name over its byte limit →
 * CR_POLICY_VIOLATION naming the limit; allocation failure → CR_INTERNAL_SERVER_ERROR. */
cr_condition cr_legacy_parse(cr_legacy_parser *p, const char *bytes, size_t len,
                             cr_legacy_request *req, cr_error *err);
/* True when nick (borrowed) is exactly 40 lowercase or uppercase hex digits: the shape of a
 * participant id, which a nick must not take. */
bool cr_legacy_nick_is_id(const char *nick, size_t len);
/* end of the legacy section */

/* ---------------------------------------------------------------------------------------------
 * JWT verification (jwt.c), issue 10 — section owned by the jwt work
 *
 * A verifier holds the configuration (HS256 secret, public keys by kid, accepted issuers and
 * audiences, domain, leeway, max token length); it is built once, then only read: cr_jwt_verify
 * takes it const and keeps all per-call state on the stack or in the caller's claims, so one
 * verifier may serve any number of verifications (OpenSSL objects inside are used read-only).
 * Verification refusals are CR_NOT_AUTHORIZED with a short text that never quotes the token.
 * ------------------------------------------------------------------------------------------- */
#define CR_JWT_MAX_TOKEN_DEFAULT 16384 /* bytes */
#define CR_JWT_MAX_JSON_DEPTH 16       /* nesting of header and claims, top object = 1 */
#define CR_JWT_MAX_KEYS 1024           /* public keys per verifier */
#define CR_JWT_MAX_NAMES 1024          /* issuers, audiences (each) */

typedef struct cr_jwt_verifier cr_jwt_verifier;

typedef enum { CR_JWT_HS256 = 1, CR_JWT_RS256, CR_JWT_ES256 } cr_jwt_alg;

/* The claims of a verified token. Strings are cr_str into arena (NUL-terminated, no NUL inside:
 * jansson refuses \u0000), read with cr_jwt_claims_str. Reusable: cr_jwt_verify resets it and
 * keeps its storage. */
typedef struct {
    cr_buf arena;   /* owned by the claims */
    cr_jwt_alg alg; /* 0 until a verification succeeded */
    cr_str kid;     /* header kid */
    cr_str iss, sub, room;
    cr_str user_id; /* context.user.id */
    cr_str group;   /* context.group */
    bool has_exp, has_nbf;
    double exp, nbf;
    int moderator;  /* context.user.moderator: -1 absent, 0 false, 1 true */
} cr_jwt_claims;

/* Creates an empty verifier: no algorithm accepted until a secret or a key is added, any iss/aud,
 * no domain, leeway 0, max token CR_JWT_MAX_TOKEN_DEFAULT. NULL on allocation failure. Caller
 * frees with cr_jwt_verifier_free (which frees every OpenSSL object it holds). */
cr_jwt_verifier *cr_jwt_verifier_new(void);
void cr_jwt_verifier_free(cr_jwt_verifier *v);
/* Configuration. Every byte string is borrowed (copied into v). Errors: CR_BAD_REQUEST with a
 * text for a bad value (empty secret, unreadable PEM, a key that is neither RSA ≥ 2048 bits nor
 * EC P-256, a kid given twice, too many keys/names), CR_INTERNAL_SERVER_ERROR on allocation
 * failure; v is unchanged on error. */
cr_condition cr_jwt_set_hs256_secret(cr_jwt_verifier *v, const void *secret, size_t len,
                                     cr_error *err);
/* pem: a PEM public key (SubjectPublicKeyInfo or PKCS#1 "RSA PUBLIC KEY") or certificate. An RSA
 * key accepts RS256 only, an EC P-256 key ES256 only. kid must be non-empty. */
cr_condition cr_jwt_add_public_key(cr_jwt_verifier *v, const char *kid, size_t kid_len,
                                   const char *pem, size_t pem_len, cr_error *err);
/* Accepted `iss` / `aud` values (exact bytes); none added = any accepted. Non-empty. */
cr_condition cr_jwt_add_issuer(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err);
cr_condition cr_jwt_add_audience(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err);
/* The domain `sub` may name (ASCII case-insensitive). Non-empty. */
cr_condition cr_jwt_set_domain(cr_jwt_verifier *v, const char *s, size_t len, cr_error *err);
/* Seconds of clock skew for exp/nbf: finite and >= 0, else CR_BAD_REQUEST. */
cr_condition cr_jwt_set_leeway(cr_jwt_verifier *v, double seconds, cr_error *err);
/* Longest token accepted, in bytes (> 0). */
cr_condition cr_jwt_set_max_token(cr_jwt_verifier *v, size_t bytes, cr_error *err);
/* Number of public keys configured. */
size_t cr_jwt_key_count(const cr_jwt_verifier *v);

void cr_jwt_claims_init(cr_jwt_claims *c);
/* Frees what c owns (c itself is the caller's). */
void cr_jwt_claims_free(cr_jwt_claims *c);
/* Bytes of s in c's arena (owned by c, valid until c changes); NULL when absent. */
const char *cr_jwt_claims_str(const cr_jwt_claims *c, cr_str s);
/* "HS256", "RS256", "ES256" (static), or NULL for 0. */
const char *cr_jwt_alg_name(cr_jwt_alg alg);

/* Verifies token[0..len) (borrowed) for the room room[0..room_len) (the room's node without
 * tenant, borrowed), at Unix time now (finite), with tenant[0..tenant_len) (borrowed; NULL or
 * empty = no tenant). On success fills out (caller's; reset first) and returns CR_OK. Refusals:
 * CR_NOT_AUTHORIZED and a text naming what failed (see native/README.md); out then holds no
 * verified claims (alg 0). CR_INTERNAL_SERVER_ERROR on allocation failure. */
cr_condition cr_jwt_verify(const cr_jwt_verifier *v, const char *token, size_t len,
                           const char *room, size_t room_len, const char *tenant,
                           size_t tenant_len, double now, cr_jwt_claims *out, cr_error *err);
/* end of the jwt section */

/* ---------------------------------------------------------------------------------------------
 * Visitor nodes (vnodes.c), docs/protocol.md §6, node choice, issue 11 — section owned by the vnodes work
 *
 * A node set: the configured visitor nodes (id, focus JID, weight, capacity, healthy flag), the
 * visitors each node reported per room and in total, and the redirects sent to each node that
 * have not arrived yet (pending, each with its time). cr_vnodes_choose picks a node for a room:
 *   1. reuse: among the healthy nodes the room already uses (visitors reported or redirects
 *      pending there), the least loaded one whose load is below its capacity;
 *   2. hash: else weighted rendezvous hashing of (room, node) among the healthy nodes whose load
 *      is below capacity: the node with the highest score -weight / ln(u), u in (0,1) from a
 *      fixed-key 64-bit hash of the room and the node id (native/README.md);
 *   3. least-loaded: else (every healthy node full) the least loaded healthy node;
 *   4. none: no healthy node.
 * Load of a node = max(sum of its per-room reports, its reported total) + its pending redirects
 * (sent within pending_window and not consumed by an arrival). "Least loaded" compares load /
 * capacity; ties go to the node configured first. Nodes are numbered 0..count-1 in the order
 * they were added. Times are the caller's clock in seconds (finite doubles).
 *
 * Bounds: max_rooms rooms with state; per room at most one (room, node) pair per node; at most
 * max_pending pending redirects in all (the oldest dropped first). A pair is forgotten when it
 * has no visitors reported and no redirect pending; a room with its last pair.
 * Costs: choose is O(nodes) (one room lookup, one pass over the room's pairs, one over the
 * nodes) and allocates only to record a new (room, node) pair: the pending redirects live in a
 * ring of max_pending entries reserved at creation (16 bytes each, pages touched as used).
 * Every allocation goes through cfg.alloc (per set; NULL = the C library's).
 * ------------------------------------------------------------------------------------------- */
#define CR_VNODES_MAX_NODES 1024                   /* nodes per set */
#define CR_VNODES_MAX_ID 1023                      /* bytes of an id / a focus JID */
#define CR_VNODES_MAX_PENDING_LIMIT ((size_t)1 << 24) /* largest max_pending */

/* Lua-style allocator: size 0 frees ptr (returns NULL); else realloc semantics (ptr NULL =
 * malloc); NULL on failure (ptr unchanged). ud is the config's alloc_ud. */
typedef void *(*cr_alloc_fn)(void *ud, void *ptr, size_t size);

typedef struct {
    double pending_window; /* seconds a redirect counts as a visitor not yet arrived (60); >= 0 */
    size_t max_rooms;      /* rooms with state (100000) */
    size_t max_pending;    /* pending redirects kept in all (1000000), <= CR_VNODES_MAX_PENDING_LIMIT */
    size_t max_node_rooms; /* rooms one node may report visitors in (0 = max_rooms); a report
                              naming one more room is refused (reports, issue 12) */
    cr_alloc_fn alloc;     /* NULL: malloc/realloc/free */
    void *alloc_ud;        /* borrowed; handed to alloc */
} cr_vnodes_config;

typedef enum {
    CR_VNODE_NONE = 0,     /* no healthy node: no redirect */
    CR_VNODE_REUSE,
    CR_VNODE_HASH,
    CR_VNODE_LEAST_LOADED
} cr_vnode_how;

typedef struct {
    const char *id, *focus_jid; /* owned by the set, NUL-terminated, valid while the set lives */
    size_t id_len, focus_jid_len;
    double weight;
    uint32_t capacity;
    bool healthy;
    uint64_t visitors;       /* max(sum of per-room reports, reported total) */
    uint64_t room_visitors;  /* sum of per-room reports */
    uint64_t reported_total; /* the last report_total (0 when none) */
    uint64_t pending;        /* redirects within pending_window not consumed by an arrival */
    uint64_t load;           /* visitors + pending */
    size_t rooms;            /* rooms with state on this node */
} cr_vnode_info;

typedef struct {
    size_t node;       /* node index */
    uint32_t visitors; /* reported for this room */
    uint32_t pending;
} cr_vnode_pair_info;

typedef struct {
    size_t nodes, rooms, pairs;
    size_t ring;        /* pending entries held in the ring (live, consumed or stale) */
    uint64_t pending;   /* sum of the nodes' pending */
    uint64_t dropped;   /* pending redirects dropped before their window ended (max_pending) */
    uint64_t unrecorded; /* choices not remembered (max_rooms reached, or allocation failure) */
} cr_vnodes_stats;

typedef struct cr_vnodes cr_vnodes;

/* Fills c (caller's) with the defaults above. */
void cr_vnodes_config_default(cr_vnodes_config *c);
/* Creates an empty set (cfg borrowed, copied). NULL on a bad config (pending_window negative or
 * not finite, max_rooms 0, max_pending 0 or over the limit) or on allocation failure. Caller
 * frees with cr_vnodes_free. */
cr_vnodes *cr_vnodes_new(const cr_vnodes_config *cfg);
void cr_vnodes_free(cr_vnodes *s);
/* Appends a node (id, focus_jid borrowed, copied into s; healthy). CR_BAD_REQUEST with a text for
 * an empty/too long/not XML-safe id or focus JID, a duplicate id, weight not finite or <= 0,
 * capacity 0, more than CR_VNODES_MAX_NODES; CR_INTERNAL_SERVER_ERROR on allocation failure. s
 * is unchanged on error. */
cr_condition cr_vnodes_add_node(cr_vnodes *s, const char *id, size_t id_len, const char *focus_jid,
                                size_t focus_jid_len, double weight, uint32_t capacity,
                                cr_error *err);
size_t cr_vnodes_count(const cr_vnodes *s);
/* Index of the node with that id (borrowed) in *node; false when unknown. O(nodes). */
bool cr_vnodes_find(const cr_vnodes *s, const char *id, size_t len, size_t *node);
/* Marks a node up/down (node < count). A down node is never chosen. */
void cr_vnodes_set_healthy(cr_vnodes *s, size_t node, bool healthy);

/* Drops the pending redirects older than pending_window at now (every function taking now does
 * this first). */
void cr_vnodes_expire(cr_vnodes *s, double now);
/* The choice for room (borrowed) at now, without recording anything: the node index in *node
 * (unless CR_VNODE_NONE). O(nodes), allocates nothing. */
cr_vnode_how cr_vnodes_pick(cr_vnodes *s, const char *room, size_t len, double now, size_t *node);
/* cr_vnodes_pick, then records one pending redirect for (room, *node) at now. Allocates only
 * when that pair is new; past max_rooms (or on allocation failure) the answer stands and nothing
 * is recorded (stats.unrecorded). */
cr_vnode_how cr_vnodes_choose(cr_vnodes *s, const char *room, size_t len, double now,
                              size_t *node);
/* True when the room has state (visitors reported or redirects pending on some node). */
bool cr_vnodes_uses(const cr_vnodes *s, const char *room, size_t len);
/* The node's reported visitor count for room (borrowed) at now. An increase consumes that
 * many of the pair's pending redirects, oldest first (arrivals); 0 forgets the pair once no
 * redirect is pending. CR_RESOURCE_CONSTRAINT when the room is new and max_rooms rooms have
 * state, or when the pair is new and the node already has max_node_rooms rooms, CR_INTERNAL_SERVER_ERROR on allocation failure (nothing changed then). node < count. */
cr_condition cr_vnodes_report(cr_vnodes *s, size_t node, const char *room, size_t len,
                              uint32_t visitors, double now, cr_error *err);
/* The node's total visitor count (a heartbeat); load uses max(this, sum of room reports). */
void cr_vnodes_report_total(cr_vnodes *s, size_t node, uint64_t visitors, double now);
/* Snapshots (the report protocol, docs/protocol.md §6.2, issue 12): a node's full report may
 * come in several parts. cr_vnodes_snapshot_begin starts one for node (< count): every report
 * for that node from then on marks its (room, node) pair as seen. cr_vnodes_snapshot_end sets
 * the node's reported visitors to 0 in every room it reported in and that no report marked since
 * the begin (pending redirects stay); the pairs left empty are freed like a report of 0. Returns
 * how many rooms were cleared. O(pairs of the set). Allocates nothing; a second end without a
 * begin clears nothing (every pair still carries the mark). */
void cr_vnodes_snapshot_begin(cr_vnodes *s, size_t node);
size_t cr_vnodes_snapshot_end(cr_vnodes *s, size_t node, double now);
/* Drops every (room, node) state of the room (room destroyed). */
void cr_vnodes_forget_room(cr_vnodes *s, const char *room, size_t len);
/* Figures of node (< count) as of the last expiry; out is the caller's. */
void cr_vnodes_node_info(const cr_vnodes *s, size_t node, cr_vnode_info *out);
/* The room's pairs into out (caller's, cap entries), in node order; returns how many the room
 * has (0: no state). At most count entries. */
size_t cr_vnodes_room_info(const cr_vnodes *s, const char *room, size_t len,
                           cr_vnode_pair_info *out, size_t cap);
void cr_vnodes_stats_get(const cr_vnodes *s, cr_vnodes_stats *out);
/* Walks the whole state and checks every internal invariant (counters equal to the sums they
 * cache, bounds, links, the ring's time order). O(everything): for tests and fuzzing; its
 * scratch array comes from the C library's allocator, not the set's. */
bool cr_vnodes_check(const cr_vnodes *s);
/* The rendezvous unit value u in (0,1) of (room, node id), both borrowed: exposed for tests. */
double cr_vnodes_unit(const char *room, size_t room_len, const char *id, size_t id_len);
/* "reuse", "hash", "least-loaded", "none" (static). */
const char *cr_vnode_how_name(cr_vnode_how how);
/* end of the vnodes section */

#endif
