/* answer.c — the answer model (docs/protocol.md §2.2): the ordered property list, XML and JSON rendering. */
#include "cr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOCUS_NS "http://jitsi.org/protocol/focus"
#define SV(lit) ((cr_sv){lit, sizeof(lit) - 1})

void cr_answer_config_init(cr_answer_config *c) {
    c->authentication = false;
    c->external_auth = -1;
    c->sip_gateway = false;
    c->extras = NULL;
    c->nextras = 0;
    cr_buf_init(&c->arena);
}

void cr_answer_config_free(cr_answer_config *c) {
    for (size_t i = 0; i < c->nextras; i++) free((void *)c->extras[i].name.s);
    free(c->extras);
    cr_buf_free(&c->arena);
    cr_answer_config_init(c);
}

static int cmp_sv(cr_sv a, const char *b, size_t blen) {
    size_t n = a.len < blen ? a.len : blen;
    int r = n ? memcmp(a.s, b, n) : 0;
    if (r) return r;
    return a.len < blen ? -1 : a.len > blen ? 1 : 0;
}

/* Each extra is one malloc'd block "name\0value\0" owned by the config (name.s points at it). */
cr_condition cr_answer_config_add_extra(cr_answer_config *c, const char *name, size_t nlen,
                                        const char *value, size_t vlen, cr_error *err) {
    if (nlen > SIZE_MAX / 2 - 2 || vlen > SIZE_MAX / 2)
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "property too large");
    char *blk = malloc(nlen + vlen + 2);
    if (!blk) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    cr_prop *ex = realloc(c->extras, (c->nextras + 1) * sizeof *ex);
    if (!ex) {
        free(blk);
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    }
    c->extras = ex;
    if (nlen) memcpy(blk, name, nlen);
    blk[nlen] = '\0';
    char *vp = blk + nlen + 1;
    if (vlen) memcpy(vp, value, vlen);
    vp[vlen] = '\0';
    size_t i = 0;
    while (i < c->nextras && cmp_sv(c->extras[i].name, name, nlen) < 0) i++;
    if (i < c->nextras && cmp_sv(c->extras[i].name, name, nlen) == 0) {
        free((void *)c->extras[i].name.s);
        c->extras[i] = (cr_prop){{blk, nlen}, {vp, vlen}};
        return CR_OK;
    }
    memmove(&c->extras[i + 1], &c->extras[i], (c->nextras - i) * sizeof *ex);
    c->extras[i] = (cr_prop){{blk, nlen}, {vp, vlen}};
    c->nextras++;
    return CR_OK;
}

size_t cr_answer_max_properties(const cr_answer_config *c) { return 6 + c->nextras; }

static bool present(cr_sv v) { return v.s != NULL && v.len > 0; }

static cr_sv boolsv(bool b) { return b ? SV("true") : SV("false"); }

size_t cr_answer_properties(const cr_answer *a, const cr_answer_config *c, size_t first,
                            cr_prop *out, size_t cap) {
    cr_prop fixed[6];
    size_t nf = 0;
    fixed[nf++] = (cr_prop){SV("authentication"), boolsv(c->authentication)};
    if (c->external_auth >= 0) fixed[nf++] = (cr_prop){SV("externalAuth"), boolsv(c->external_auth != 0)};
    if (c->sip_gateway) fixed[nf++] = (cr_prop){SV("sipGatewayEnabled"), SV("true")};
    if (a->live_queue) fixed[nf++] = (cr_prop){SV("live"), SV("false")};
    else fixed[nf++] = (cr_prop){SV("visitors-supported"), boolsv(a->visitors_supported)};
    if (present(a->vnode_muc)) fixed[nf++] = (cr_prop){SV("vnode-muc"), a->vnode_muc};
    size_t total = nf + c->nextras, n = 0;
    for (size_t i = first; i < total && n < cap; i++, n++)
        out[n] = i < nf ? fixed[i] : c->extras[i - nf];
    return n;
}

cr_condition cr_answer_check(const cr_answer *a, cr_error *err) {
    if (!present(a->room)) return cr_error_set(err, CR_BAD_REQUEST, "answer without room");
    if (!present(a->focus_jid)) return cr_error_set(err, CR_BAD_REQUEST, "answer without focus_jid");
    const cr_sv *all[] = {&a->room,     &a->focus_jid, &a->session_id,
                          &a->identity, &a->vnode,     &a->vnode_muc};
    static const char *const names[] = {"room",     "focus_jid", "session_id",
                                        "identity", "vnode",     "vnode_muc"};
    for (size_t i = 0; i < 6; i++)
        if (present(*all[i]) && !cr_xml_safe(all[i]->s, all[i]->len))
            return cr_error_set(err, CR_BAD_REQUEST, "answer %s is not XML-safe UTF-8", names[i]);
    return CR_OK;
}

bool cr_xml_escape(cr_buf *out, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\'': rep = "&apos;"; break;
        case '"': rep = "&quot;"; break;
        case '\t': rep = "&#9;"; break;
        case '\n': rep = "&#10;"; break;
        case '\r': rep = "&#13;"; break;
        default: continue;
        }
        if (!cr_buf_append(out, s + start, i - start) || !cr_buf_puts(out, rep)) return false;
        start = i + 1;
    }
    return cr_buf_append(out, s + start, len - start);
}

bool cr_json_escape(cr_buf *out, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];
        const char *rep;
        if (ch == '"') rep = "\\\"";
        else if (ch == '\\') rep = "\\\\";
        else if (ch == '\n') rep = "\\n";
        else if (ch == '\r') rep = "\\r";
        else if (ch == '\t') rep = "\\t";
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\u%04x", ch);
            rep = tmp;
        } else continue;
        if (!cr_buf_append(out, s + start, i - start) || !cr_buf_puts(out, rep)) return false;
        start = i + 1;
    }
    return cr_buf_append(out, s + start, len - start);
}

static bool json_str(cr_buf *o, cr_sv v) {
    return cr_buf_putc(o, '"') && cr_json_escape(o, v.s, v.len) && cr_buf_putc(o, '"');
}

static bool json_field(cr_buf *o, const char *key, cr_sv v) {
    if (!present(v)) return true;
    return cr_buf_putc(o, ',') && json_str(o, (cr_sv){key, strlen(key)}) && cr_buf_putc(o, ':') &&
           json_str(o, v);
}

cr_condition cr_answer_render_json(const cr_answer *a, const cr_answer_config *c, cr_buf *o,
                                   cr_error *err) {
    cr_condition cond = cr_answer_check(a, err);
    if (cond) return cond;
    cr_buf_reset(o);
    bool ok = cr_buf_puts(o, "{\"room\":") && json_str(o, a->room) &&
              cr_buf_puts(o, a->ready ? ",\"ready\":true" : ",\"ready\":false") &&
              json_field(o, "focusJid", a->focus_jid) &&
              json_field(o, "sessionId", a->session_id) &&
              json_field(o, "identity", a->identity) && json_field(o, "vnode", a->vnode) &&
              json_field(o, "vnodeMuc", a->vnode_muc) && cr_buf_puts(o, ",\"properties\":{");
    cr_prop chunk[16];
    size_t done = 0, n;
    while (ok && (n = cr_answer_properties(a, c, done, chunk, 16)) > 0) {
        for (size_t i = 0; ok && i < n; i++)
            ok = (done + i == 0 || cr_buf_putc(o, ',')) && json_str(o, chunk[i].name) &&
                 cr_buf_putc(o, ':') && json_str(o, chunk[i].value);
        done += n;
    }
    ok = ok && cr_buf_puts(o, "}}");
    if (!ok) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    return CR_OK;
}

static bool xml_attr(cr_buf *o, const char *name, cr_sv v) {
    if (!present(v)) return true;
    return cr_buf_putc(o, ' ') && cr_buf_puts(o, name) && cr_buf_puts(o, "='") &&
           cr_xml_escape(o, v.s, v.len) && cr_buf_putc(o, '\'');
}

cr_condition cr_answer_render_xml(const cr_answer *a, const cr_answer_config *c, cr_buf *o,
                                  cr_error *err) {
    cr_condition cond = cr_answer_check(a, err);
    if (cond) return cond;
    cr_buf_reset(o);
    bool ok = cr_buf_puts(o, "<conference xmlns='" FOCUS_NS "'") && xml_attr(o, "room", a->room) &&
              xml_attr(o, "ready", boolsv(a->ready)) && xml_attr(o, "focusjid", a->focus_jid) &&
              xml_attr(o, "session-id", a->session_id) && xml_attr(o, "identity", a->identity) &&
              xml_attr(o, "vnode", a->vnode) && cr_buf_putc(o, '>');
    cr_prop chunk[16];
    size_t done = 0, n;
    while (ok && (n = cr_answer_properties(a, c, done, chunk, 16)) > 0) {
        for (size_t i = 0; ok && i < n; i++)
            ok = cr_buf_puts(o, "<property name='") &&
                 cr_xml_escape(o, chunk[i].name.s, chunk[i].name.len) &&
                 cr_buf_puts(o, "' value='") &&
                 cr_xml_escape(o, chunk[i].value.s, chunk[i].value.len) && cr_buf_puts(o, "'/>");
        done += n;
    }
    ok = ok && cr_buf_puts(o, "</conference>");
    if (!ok) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    return CR_OK;
}
