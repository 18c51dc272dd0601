/* fuzz_check.h — the invariants the fuzz harnesses (tests/fuzz/fuzz_*.c) and the corpus replay
 * test (tests/c/test_corpus.c) check on one input. Header-only so both build it: the harness with
 * clang + libFuzzer, the replay test with the normal gcc build.
 *
 * FUZZ_ASSERT(cond) reports a broken invariant. Default: print and abort() (libFuzzer records the
 * input as a crash). The replay test defines it as CHECK before including this file.
 *
 * Every check runs the input twice: with the default limits and with tiny limits (so the limit
 * paths are reached by short inputs), and checks that what passes the tiny limits passes the
 * default ones with the same result. A parsed request is then rendered as an answer (room,
 * session-id, and its properties as the codec's extra properties), XML and JSON, and the rendered
 * bytes are parsed again: the room, session-id and properties must come back unchanged. A legacy
 * payload is re-serialized and parsed again to the same fields. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include "cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_ASSERT
#define FUZZ_ASSERT(cond)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                           \
        }                                                                                      \
    } while (0)
#endif

/* Everything one checker needs, made once (the parsers are reused across inputs, as the module
 * reuses them, so reset paths are exercised). */
typedef struct {
    cr_limits lim, tiny, big;
    cr_xml_parser *xp;
    cr_legacy_limits llim, ltiny;
    cr_legacy_parser *lp, *lp_tiny;
    cr_request req, req2, req3;
    cr_legacy_request lreq, lreq2;
    cr_buf out;
} fuzz_ctx;

static inline bool fuzz_ctx_init(fuzz_ctx *f) {
    memset(f, 0, sizeof *f);
    cr_limits_default(&f->lim);
    f->tiny = (cr_limits){.max_room = 24, .max_jid_part = 12, .max_properties = 3,
                          .max_property_name = 6, .max_property_value = 10, .max_token = 8,
                          .max_id = 8, .max_xml_depth = 2, .max_json_depth = 2};
    /* room stays within the default limits, so a rendered room parses again */
    f->big = f->lim;
    f->big.max_properties = 100000;
    f->big.max_property_name = (size_t)1 << 30;
    f->big.max_property_value = (size_t)1 << 30;
    f->big.max_id = (size_t)1 << 30;
    f->big.max_xml_depth = 4;
    f->big.max_json_depth = 4;
    cr_legacy_limits_default(&f->llim);
    f->ltiny = (cr_legacy_limits){.max_nicks = 2, .max_nick = 6, .max_secret = 6, .max_name = 6,
                                  .max_depth = 2};
    cr_request_init(&f->req);
    cr_request_init(&f->req2);
    cr_request_init(&f->req3);
    cr_legacy_request_init(&f->lreq);
    cr_legacy_request_init(&f->lreq2);
    cr_buf_init(&f->out);
    f->xp = cr_xml_parser_new();
    f->lp = cr_legacy_parser_new(&f->llim);
    f->lp_tiny = cr_legacy_parser_new(&f->ltiny);
    return f->xp && f->lp && f->lp_tiny;
}

static inline void fuzz_ctx_free(fuzz_ctx *f) {
    cr_xml_parser_free(f->xp);
    cr_legacy_parser_free(f->lp);
    cr_legacy_parser_free(f->lp_tiny);
    cr_request_free(&f->req);
    cr_request_free(&f->req2);
    cr_request_free(&f->req3);
    cr_legacy_request_free(&f->lreq);
    cr_legacy_request_free(&f->lreq2);
    cr_buf_free(&f->out);
}

/* A failure: a known condition, err filled with it, a non-empty NUL-terminated text. */
static inline void fuzz_check_error(cr_condition c, const cr_error *err) {
    FUZZ_ASSERT(c > CR_OK && c < CR_CONDITION_COUNT);
    FUZZ_ASSERT(cr_condition_get(c) != NULL);
    FUZZ_ASSERT(err->condition == c);
    FUZZ_ASSERT(memchr(err->text, '\0', sizeof err->text) != NULL);
    FUZZ_ASSERT(err->text[0] != '\0');
}

static inline bool fuzz_str_eq(const cr_request *a, cr_str x, const cr_request *b, cr_str y) {
    if (x.set != y.set) return false;
    if (!x.set) return true;
    return x.len == y.len && memcmp(cr_request_str(a, x), cr_request_str(b, y), x.len) == 0;
}

/* The value of property name in r, or NULL. */
static inline const cr_prop_ref *fuzz_prop(const cr_request *r, const char *name, size_t len) {
    for (size_t i = 0; i < r->nprops; i++)
        if (r->props[i].name.len == len && memcmp(cr_request_str(r, r->props[i].name), name, len) == 0)
            return &r->props[i];
    return NULL;
}

static inline bool fuzz_same_request(const cr_request *a, const cr_request *b) {
    if (!fuzz_str_eq(a, a->room, b, b->room) || !fuzz_str_eq(a, a->machine_uid, b, b->machine_uid) ||
        !fuzz_str_eq(a, a->session_id, b, b->session_id) || !fuzz_str_eq(a, a->token, b, b->token) ||
        a->nprops != b->nprops)
        return false;
    for (size_t i = 0; i < a->nprops; i++)
        if (!fuzz_str_eq(a, a->props[i].name, b, b->props[i].name) ||
            !fuzz_str_eq(a, a->props[i].value, b, b->props[i].value))
            return false;
    return true;
}

static inline void fuzz_check_str(const cr_request *r, cr_str s, size_t max) {
    if (!s.set) return;
    const char *p = cr_request_str(r, s);
    FUZZ_ASSERT(p != NULL);
    FUZZ_ASSERT(s.len > 0 && s.len <= max);
    FUZZ_ASSERT(s.off + s.len < r->arena.len && p[s.len] == '\0');
    FUZZ_ASSERT(cr_xml_safe(p, s.len));
}

/* A parsed request keeps every rule of docs/protocol.md §2.1 under lim. */
static inline void fuzz_check_request(const cr_request *r, const cr_limits *lim) {
    FUZZ_ASSERT(r->room.set);
    fuzz_check_str(r, r->room, lim->max_room);
    const char *room = cr_request_str(r, r->room);
    const char *at = memchr(room, '@', r->room.len);
    FUZZ_ASSERT(at != NULL && at != room && at != room + r->room.len - 1);
    FUZZ_ASSERT(memchr(at + 1, '@', (size_t)(room + r->room.len - at - 1)) == NULL);
    FUZZ_ASSERT(memchr(room, '/', r->room.len) == NULL);
    FUZZ_ASSERT((size_t)(at - room) <= lim->max_jid_part);
    FUZZ_ASSERT((size_t)(room + r->room.len - at - 1) <= lim->max_jid_part);
    fuzz_check_str(r, r->machine_uid, lim->max_id);
    fuzz_check_str(r, r->session_id, lim->max_id);
    fuzz_check_str(r, r->token, lim->max_token);
    FUZZ_ASSERT(r->nprops <= lim->max_properties);
    for (size_t i = 0; i < r->nprops; i++) {
        fuzz_check_str(r, r->props[i].name, lim->max_property_name);
        const cr_prop_ref *p = &r->props[i];
        FUZZ_ASSERT(p->value.set && p->value.len <= lim->max_property_value);
        FUZZ_ASSERT(cr_request_str(r, p->value)[p->value.len] == '\0');
        FUZZ_ASSERT(cr_xml_safe(cr_request_str(r, p->value), p->value.len));
        for (size_t k = 0; k < i; k++) /* names are distinct */
            FUZZ_ASSERT(!fuzz_str_eq(r, r->props[k].name, r, p->name));
    }
}

static inline bool fuzz_fixed_name(const char *s, size_t len) {
    static const char *const fixed[] = {"authentication", "externalAuth", "sipGatewayEnabled",
                                        "live", "visitors-supported"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (len == strlen(fixed[i]) && memcmp(s, fixed[i], len) == 0) return true;
    return false;
}

/* What parsed renders (XML and JSON), and the rendered answer parses back to the same room,
 * session-id and properties (those not named like a built-in answer property). */
static inline void fuzz_check_render(fuzz_ctx *f, const cr_request *r) {
    cr_answer a = {0};
    a.room = (cr_sv){cr_request_str(r, r->room), r->room.len};
    a.ready = r->nprops % 2 == 0;
    a.focus_jid = (cr_sv){"focus@auth.example.com/focus", 28};
    if (r->session_id.set) a.session_id = (cr_sv){cr_request_str(r, r->session_id), r->session_id.len};
    a.visitors_supported = r->token.set;
    cr_answer_config cfg;
    cr_answer_config_init(&cfg);
    cr_error err;
    for (size_t i = 0; i < r->nprops; i++) {
        const cr_prop_ref *p = &r->props[i];
        if (fuzz_fixed_name(cr_request_str(r, p->name), p->name.len)) continue;
        FUZZ_ASSERT(cr_answer_config_add_extra(&cfg, cr_request_str(r, p->name), p->name.len,
                                               cr_request_str(r, p->value), p->value.len,
                                               &err) == CR_OK);
    }
    FUZZ_ASSERT(cr_answer_check(&a, &err) == CR_OK);
    for (int pass = 0; pass < 2; pass++) {
        cr_condition c = pass == 0 ? cr_answer_render_xml(&a, &cfg, &f->out, &err)
                                   : cr_answer_render_json(&a, &cfg, &f->out, &err);
        FUZZ_ASSERT(c == CR_OK);
        if (c) break;
        c = pass == 0 ? cr_xml_parse(f->xp, f->out.data, f->out.len, &f->big, &f->req3, &err)
                      : cr_json_parse(f->out.data, f->out.len, &f->big, &f->req3, &err);
        if (c) fprintf(stderr, "rendered answer does not parse: %s\n%.*s\n", err.text,
                       (int)(f->out.len > 2000 ? 2000 : f->out.len), f->out.data);
        FUZZ_ASSERT(c == CR_OK);
        if (c) break;
        FUZZ_ASSERT(fuzz_str_eq(r, r->room, &f->req3, f->req3.room));
        FUZZ_ASSERT(fuzz_str_eq(r, r->session_id, &f->req3, f->req3.session_id));
        for (size_t i = 0; i < r->nprops; i++) {
            const cr_prop_ref *p = &r->props[i];
            const char *name = cr_request_str(r, p->name);
            if (fuzz_fixed_name(name, p->name.len)) continue;
            const cr_prop_ref *q = fuzz_prop(&f->req3, name, p->name.len);
            FUZZ_ASSERT(q != NULL);
            if (q) FUZZ_ASSERT(fuzz_str_eq(r, p->value, &f->req3, q->value));
        }
    }
    cr_answer_config_free(&cfg);
}

typedef cr_condition (*fuzz_parse_fn)(fuzz_ctx *f, const char *s, size_t n, const cr_limits *lim,
                                      cr_request *req, cr_error *err);

static inline cr_condition fuzz_parse_xml(fuzz_ctx *f, const char *s, size_t n,
                                          const cr_limits *lim, cr_request *req, cr_error *err) {
    return cr_xml_parse(f->xp, s, n, lim, req, err);
}

static inline cr_condition fuzz_parse_json(fuzz_ctx *f, const char *s, size_t n,
                                           const cr_limits *lim, cr_request *req, cr_error *err) {
    (void)f;
    return cr_json_parse(s, n, lim, req, err);
}

/* One input through a request parser; returns the outcome under the default limits. */
static inline cr_condition fuzz_check_request_input(fuzz_ctx *f, fuzz_parse_fn parse,
                                                    const char *s, size_t n) {
    cr_error err = {CR_OK, ""}, err2 = {CR_OK, ""};
    cr_condition c = parse(f, s, n, &f->lim, &f->req, &err);
    if (c) fuzz_check_error(c, &err);
    else {
        fuzz_check_request(&f->req, &f->lim);
        fuzz_check_render(f, &f->req);
    }
    cr_condition t = parse(f, s, n, &f->tiny, &f->req2, &err2);
    if (t) fuzz_check_error(t, &err2);
    else {
        fuzz_check_request(&f->req2, &f->tiny);
        /* what passes the tiny limits passes the default ones, to the same request */
        FUZZ_ASSERT(c == CR_OK);
        if (!c) FUZZ_ASSERT(fuzz_same_request(&f->req, &f->req2));
    }
    /* the same bytes parse the same way a second time (reused parser state is reset) */
    cr_condition again = parse(f, s, n, &f->lim, &f->req2, &err2);
    FUZZ_ASSERT(again == c);
    if (!c && !again) FUZZ_ASSERT(fuzz_same_request(&f->req, &f->req2));
    return c;
}

/* ---- legacy jabber:iq:conference payload ------------------------------------------------------ */

static inline bool fuzz_lstr_eq(const cr_legacy_request *a, cr_str x, const cr_legacy_request *b,
                                cr_str y) {
    if (x.set != y.set) return false;
    if (!x.set) return true;
    return x.len == y.len && (x.len == 0 || memcmp(cr_legacy_str(a, x), cr_legacy_str(b, y), x.len) == 0);
}

static inline bool fuzz_same_legacy(const cr_legacy_request *a, const cr_legacy_request *b) {
    if (a->nnicks != b->nnicks || a->privacy != b->privacy || !fuzz_lstr_eq(a, a->secret, b, b->secret) ||
        !fuzz_lstr_eq(a, a->name, b, b->name))
        return false;
    for (size_t i = 0; i < a->nnicks; i++)
        if (!fuzz_lstr_eq(a, a->nicks[i], b, b->nicks[i])) return false;
    return true;
}

static inline void fuzz_check_lstr(const cr_legacy_request *r, cr_str s, size_t max) {
    if (!s.set) return;
    const char *p = cr_legacy_str(r, s);
    FUZZ_ASSERT(p != NULL);
    FUZZ_ASSERT(s.len <= max);
    FUZZ_ASSERT(p[s.len] == '\0');
    FUZZ_ASSERT(cr_xml_safe(p, s.len));
}

static inline void fuzz_check_legacy_request(const cr_legacy_request *r, const cr_legacy_limits *lim) {
    FUZZ_ASSERT(r->nnicks <= lim->max_nicks);
    for (size_t i = 0; i < r->nnicks; i++) {
        FUZZ_ASSERT(r->nicks[i].set);
        fuzz_check_lstr(r, r->nicks[i], lim->max_nick);
    }
    fuzz_check_lstr(r, r->secret, lim->max_secret);
    fuzz_check_lstr(r, r->name, lim->max_name);
}

static inline bool fuzz_put_field(cr_buf *o, const char *tag, const cr_legacy_request *r, cr_str s) {
    if (!s.set) return true;
    return cr_buf_putc(o, '<') && cr_buf_puts(o, tag) && cr_buf_putc(o, '>') &&
           cr_xml_escape(o, cr_legacy_str(r, s), s.len) && cr_buf_puts(o, "</") &&
           cr_buf_puts(o, tag) && cr_buf_putc(o, '>');
}

/* The payload serialized again (as util.stanza would), parsed again: the same fields. */
static inline void fuzz_check_legacy_render(fuzz_ctx *f, const cr_legacy_request *r) {
    cr_buf_reset(&f->out);
    bool ok = cr_buf_puts(&f->out, "<query xmlns='" CR_LEGACY_NS "'>");
    for (size_t i = 0; ok && i < r->nnicks; i++) ok = fuzz_put_field(&f->out, "nick", r, r->nicks[i]);
    ok = ok && fuzz_put_field(&f->out, "secret", r, r->secret) &&
         fuzz_put_field(&f->out, "name", r, r->name) &&
         (!r->privacy || cr_buf_puts(&f->out, "<privacy/>")) && cr_buf_puts(&f->out, "</query>");
    FUZZ_ASSERT(ok);
    if (!ok) return;
    cr_error err = {CR_OK, ""};
    cr_condition c = cr_legacy_parse(f->lp, f->out.data, f->out.len, &f->lreq2, &err);
    if (c) fprintf(stderr, "re-serialized payload does not parse: %s\n", err.text);
    FUZZ_ASSERT(c == CR_OK);
    if (!c) FUZZ_ASSERT(fuzz_same_legacy(r, &f->lreq2));
}

static inline cr_condition fuzz_check_legacy_input(fuzz_ctx *f, const char *s, size_t n) {
    cr_error err = {CR_OK, ""}, err2 = {CR_OK, ""};
    cr_condition c = cr_legacy_parse(f->lp, s, n, &f->lreq, &err);
    if (c) fuzz_check_error(c, &err);
    else {
        fuzz_check_legacy_request(&f->lreq, &f->llim);
        fuzz_check_legacy_render(f, &f->lreq);
    }
    cr_condition t = cr_legacy_parse(f->lp_tiny, s, n, &f->lreq2, &err2);
    if (t) fuzz_check_error(t, &err2);
    else {
        fuzz_check_legacy_request(&f->lreq2, &f->ltiny);
        FUZZ_ASSERT(c == CR_OK);
        if (!c) FUZZ_ASSERT(fuzz_same_legacy(&f->lreq, &f->lreq2));
    }
    cr_condition again = cr_legacy_parse(f->lp, s, n, &f->lreq2, &err2);
    FUZZ_ASSERT(again == c);
    if (!c && !again) FUZZ_ASSERT(fuzz_same_legacy(&f->lreq, &f->lreq2));
    return c;
}

#endif
