/* legacy.c — parsing of the legacy <query xmlns='jabber:iq:conference'> payload (expat), docs/protocol.md §7.
 *
 * The payload element may have any name (jabberd picked "the first child carrying an xmlns");
 * its direct children in the namespace are <nick> (repeated: the first free one is taken),
 * <secret>, <name> and the flag <privacy/>. Everything is bounded by cr_legacy_limits. */
#include "cr.h"

#include <expat.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP ' '
#define NS_PREFIX CR_LEGACY_NS " "

typedef enum { FIELD_NONE, FIELD_NICK, FIELD_SECRET, FIELD_NAME } field_kind;

struct cr_legacy_parser {
    XML_Parser xp; /* owned */
    cr_legacy_limits lim;
    /* per parse */
    cr_legacy_request *req;
    cr_error *err;
    cr_condition cond;
    size_t depth;
    bool seen_root;
    field_kind field;   /* the text field open at depth 2, if any */
    size_t field_off;   /* its first byte in req->arena */
    size_t field_limit; /* its byte limit */
    const char *field_name;
};

void cr_legacy_limits_default(cr_legacy_limits *l) {
    l->max_nicks = 16;
    l->max_nick = 1023;
    l->max_secret = 1023;
    l->max_name = 1023;
    l->max_depth = 8;
}

void cr_legacy_request_init(cr_legacy_request *r) {
    memset(r, 0, sizeof *r);
    cr_buf_init(&r->arena);
}

void cr_legacy_request_free(cr_legacy_request *r) {
    cr_buf_free(&r->arena);
    free(r->nicks);
    cr_legacy_request_init(r);
}

static void request_reset(cr_legacy_request *r) {
    cr_buf_reset(&r->arena);
    r->nnicks = 0;
    r->secret = (cr_str){0, 0, false};
    r->name = (cr_str){0, 0, false};
    r->privacy = false;
}

const char *cr_legacy_str(const cr_legacy_request *r, cr_str s) {
    if (!s.set || !r->arena.data) return s.set ? "" : NULL;
    return r->arena.data + s.off;
}

bool cr_legacy_nick_is_id(const char *nick, size_t len) {
    if (len != 40) return false;
    for (size_t i = 0; i < len; i++) {
        char c = nick[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static void fail(cr_legacy_parser *p, cr_condition c) {
    p->cond = c;
    XML_StopParser(p->xp, XML_FALSE);
}

static void fail_text(cr_legacy_parser *p, cr_condition c, const char *text) {
    cr_error_set(p->err, c, "%s", text);
    fail(p, c);
}

static void open_field(cr_legacy_parser *p, field_kind kind) {
    cr_legacy_request *r = p->req;
    if (kind == FIELD_NICK) {
        if (r->nnicks >= p->lim.max_nicks) {
            cr_error_set(p->err, CR_POLICY_VIOLATION, "more than %zu <nick> elements",
                         p->lim.max_nicks);
            fail(p, CR_POLICY_VIOLATION);
            return;
        }
        if (r->nnicks == r->nicks_cap) {
            size_t cap = r->nicks_cap ? r->nicks_cap * 2 : 4;
            if (cap > p->lim.max_nicks) cap = p->lim.max_nicks;
            cr_str *n = realloc(r->nicks, cap * sizeof *n);
            if (!n) {
                fail_text(p, CR_INTERNAL_SERVER_ERROR, "out of memory");
                return;
            }
            r->nicks = n;
            r->nicks_cap = cap;
        }
        p->field_limit = p->lim.max_nick;
        p->field_name = "nick";
    } else if (kind == FIELD_SECRET) {
        p->field_limit = p->lim.max_secret;
        p->field_name = "secret";
    } else {
        p->field_limit = p->lim.max_name;
        p->field_name = "name";
    }
    p->field = kind;
    p->field_off = r->arena.len;
}

static void close_field(cr_legacy_parser *p) {
    cr_legacy_request *r = p->req;
    if (!cr_buf_putc(&r->arena, '\0')) {
        fail_text(p, CR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    cr_str s = {p->field_off, r->arena.len - 1 - p->field_off, true};
    switch (p->field) {
    case FIELD_NICK: r->nicks[r->nnicks++] = s; break;
    case FIELD_SECRET: r->secret = s; break;
    case FIELD_NAME: r->name = s; break;
    case FIELD_NONE: break;
    }
    p->field = FIELD_NONE;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    (void)attrs;
    cr_legacy_parser *p = ud;
    if (p->cond) return;
    p->depth++;
    if (p->depth > p->lim.max_depth) {
        cr_error_set(p->err, CR_BAD_REQUEST, "payload nested deeper than %zu", p->lim.max_depth);
        fail(p, CR_BAD_REQUEST);
        return;
    }
    bool in_ns = strncmp(name, NS_PREFIX, sizeof NS_PREFIX - 1) == 0;
    if (p->depth == 1) {
        p->seen_root = true;
        if (!in_ns) fail_text(p, CR_BAD_REQUEST, "payload is not in the jabber:iq:conference namespace");
        return;
    }
    if (p->field != FIELD_NONE) {
        cr_error_set(p->err, CR_BAD_REQUEST, "<%s> must contain text only", p->field_name);
        fail(p, CR_BAD_REQUEST);
        return;
    }
    if (p->depth != 2 || !in_ns) return;
    const char *local = name + sizeof NS_PREFIX - 1;
    if (strcmp(local, "nick") == 0) open_field(p, FIELD_NICK);
    else if (strcmp(local, "secret") == 0) open_field(p, FIELD_SECRET);
    else if (strcmp(local, "name") == 0) open_field(p, FIELD_NAME);
    else if (strcmp(local, "privacy") == 0) p->req->privacy = true;
}

static void XMLCALL on_end(void *ud, const XML_Char *name) {
    (void)name;
    cr_legacy_parser *p = ud;
    if (p->cond) return;
    if (p->depth == 2 && p->field != FIELD_NONE) close_field(p);
    if (p->depth) p->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len) {
    cr_legacy_parser *p = ud;
    if (p->cond || p->field == FIELD_NONE || p->depth != 2 || len <= 0) return;
    cr_legacy_request *r = p->req;
    size_t have = r->arena.len - p->field_off;
    if ((size_t)len > p->field_limit || have > p->field_limit - (size_t)len) {
        cr_error_set(p->err, CR_POLICY_VIOLATION, "<%s> longer than %zu bytes", p->field_name,
                     p->field_limit);
        fail(p, CR_POLICY_VIOLATION);
        return;
    }
    if (!cr_buf_append(&r->arena, s, (size_t)len)) fail_text(p, CR_INTERNAL_SERVER_ERROR, "out of memory");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset) {
    (void)name; (void)sysid; (void)pubid; (void)has_internal_subset;
    fail_text(ud, CR_BAD_REQUEST, "a DTD is not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation) {
    (void)name; (void)is_param; (void)value; (void)value_len; (void)base; (void)sysid;
    (void)pubid; (void)notation;
    fail_text(ud, CR_BAD_REQUEST, "entity declarations are not allowed");
}

/* (Re)installs everything XML_ParserReset forgets. */
static void install(cr_legacy_parser *p) {
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetCharacterDataHandler(p->xp, on_text);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
}

cr_legacy_parser *cr_legacy_parser_new(const cr_legacy_limits *lim) {
    cr_legacy_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->xp = XML_ParserCreateNS(NULL, NS_SEP);
    if (!p->xp) {
        free(p);
        return NULL;
    }
    p->lim = *lim;
    install(p);
    return p;
}

void cr_legacy_parser_free(cr_legacy_parser *p) {
    if (!p) return;
    XML_ParserFree(p->xp);
    free(p);
}

cr_condition cr_legacy_parse(cr_legacy_parser *p, const char *bytes, size_t len,
                             cr_legacy_request *req, cr_error *err) {
    request_reset(req);
    if (len > INT_MAX) return cr_error_set(err, CR_POLICY_VIOLATION, "payload too large");
    if (!XML_ParserReset(p->xp, NULL))
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "parser reset failed");
    install(p);
    p->req = req;
    p->err = err;
    p->cond = CR_OK;
    p->depth = 0;
    p->seen_root = false;
    p->field = FIELD_NONE;
    enum XML_Status st = XML_Parse(p->xp, bytes, (int)len, XML_TRUE);
    cr_condition c = p->cond;
    p->req = NULL;
    p->err = NULL;
    if (c) {
        request_reset(req);
        return c; /* err already filled */
    }
    if (st != XML_STATUS_OK) {
        request_reset(req);
        enum XML_Error e = XML_GetErrorCode(p->xp);
        if (e == XML_ERROR_NO_MEMORY)
            return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        return cr_error_set(err, CR_BAD_REQUEST, "payload is not well-formed XML: %s",
                            XML_ErrorString(e));
    }
    if (!p->seen_root) return cr_error_set(err, CR_BAD_REQUEST, "empty payload");
    return CR_OK;
}
