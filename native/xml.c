/* xml.c — parsing of the <conference xmlns='http://jitsi.org/protocol/focus'> payload (expat). */
#include "cr.h"

#include <expat.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define FOCUS_NS "http://jitsi.org/protocol/focus"
#define NS_SEP ' '

struct cr_xml_parser {
    XML_Parser xp;      /* owned */
    unsigned long salt; /* drawn once, set again after every reset */
    /* per parse */
    const cr_limits *lim;
    cr_request *req;
    cr_error *err;
    cr_condition cond;
    size_t depth;
    bool seen_root;
};

static unsigned long draw_salt(void) {
    unsigned long s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
            close(fd);
        }
        if (s == 0) s = (unsigned long)(uintptr_t)&s ^ (unsigned long)getpid() * 2654435761u;
    }
    return s ? s : 0x9e3779b9ul; /* expat treats 0 as "draw one yourself" */
}

static void fail(cr_xml_parser *p, cr_condition c) {
    p->cond = c;
    XML_StopParser(p->xp, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
    cr_xml_parser *p = ud;
    if (p->cond) return;
    p->depth++;
    if (p->depth > p->lim->max_xml_depth) {
        cr_error_set(p->err, CR_BAD_REQUEST, "payload nested deeper than %zu", p->lim->max_xml_depth);
        fail(p, CR_BAD_REQUEST);
        return;
    }
    if (p->depth == 1) {
        p->seen_root = true;
        if (strcmp(name, FOCUS_NS " conference") != 0) {
            cr_error_set(p->err, CR_BAD_REQUEST,
                         "payload is not <conference xmlns='" FOCUS_NS "'>");
            fail(p, CR_BAD_REQUEST);
            return;
        }
        for (size_t i = 0; attrs[i]; i += 2) {
            const char *k = attrs[i], *v = attrs[i + 1];
            cr_condition c =
                cr_request_set_attribute(p->req, k, strlen(k), v, strlen(v), p->lim, p->err);
            if (c) { fail(p, c); return; }
        }
        return;
    }
    if (p->depth == 2 && strcmp(name, FOCUS_NS " property") == 0) {
        const char *pn = NULL, *pv = NULL;
        for (size_t i = 0; attrs[i]; i += 2) {
            if (strcmp(attrs[i], "name") == 0) pn = attrs[i + 1];
            else if (strcmp(attrs[i], "value") == 0) pv = attrs[i + 1];
        }
        if (!pn || !*pn) return;
        if (!pv) pv = "";
        cr_condition c =
            cr_request_add_property(p->req, pn, strlen(pn), pv, strlen(pv), p->lim, p->err);
        if (c) fail(p, c);
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name) {
    (void)name;
    cr_xml_parser *p = ud;
    if (p->depth) p->depth--;
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset) {
    (void)name; (void)sysid; (void)pubid; (void)has_internal_subset;
    cr_xml_parser *p = ud;
    cr_error_set(p->err, CR_BAD_REQUEST, "a DTD is not allowed");
    fail(p, CR_BAD_REQUEST);
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation) {
    (void)name; (void)is_param; (void)value; (void)value_len; (void)base; (void)sysid;
    (void)pubid; (void)notation;
    cr_xml_parser *p = ud;
    cr_error_set(p->err, CR_BAD_REQUEST, "entity declarations are not allowed");
    fail(p, CR_BAD_REQUEST);
}

/* (Re)installs everything a reset forgets: handlers, user data, the salt. */
static void install(cr_xml_parser *p) {
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, on_start, on_end);
    XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
    XML_SetEntityDeclHandler(p->xp, on_entity_decl);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    XML_SetHashSalt(p->xp, p->salt);
}

cr_xml_parser *cr_xml_parser_new(void) {
    cr_xml_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->xp = XML_ParserCreateNS(NULL, NS_SEP);
    if (!p->xp) {
        free(p);
        return NULL;
    }
    p->salt = draw_salt();
    install(p);
    return p;
}

void cr_xml_parser_free(cr_xml_parser *p) {
    if (!p) return;
    XML_ParserFree(p->xp);
    free(p);
}

cr_condition cr_xml_parse(cr_xml_parser *p, const char *bytes, size_t len, const cr_limits *lim,
                          cr_request *req, cr_error *err) {
    cr_request_reset(req);
    if (len > INT_MAX) return cr_error_set(err, CR_POLICY_VIOLATION, "payload too large");
    if (!XML_ParserReset(p->xp, NULL))
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "parser reset failed");
    install(p);
    p->lim = lim;
    p->req = req;
    p->err = err;
    p->cond = CR_OK;
    p->depth = 0;
    p->seen_root = false;
    enum XML_Status st = XML_Parse(p->xp, bytes, (int)len, XML_TRUE);
    cr_condition c = p->cond;
    p->req = NULL;
    p->err = NULL;
    if (c) return c; /* err already filled */
    if (st != XML_STATUS_OK) {
        enum XML_Error e = XML_GetErrorCode(p->xp);
        if (e == XML_ERROR_NO_MEMORY)
            return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        return cr_error_set(err, CR_BAD_REQUEST, "payload is not well-formed XML: %s",
                            XML_ErrorString(e));
    }
    if (!p->seen_root) return cr_error_set(err, CR_BAD_REQUEST, "empty payload");
    return cr_request_finish(req, lim, err);
}
