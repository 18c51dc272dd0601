/* request.c — the request model (docs/protocol.md §2.1) and every limit on it. */
#include "cr.h"

#include <stdlib.h>
#include <string.h>

void cr_limits_default(cr_limits *l) {
    l->max_room = 3071;
    l->max_jid_part = 1023;
    l->max_properties = 64;
    l->max_property_name = 256;
    l->max_property_value = 4096;
    l->max_token = 16384;
    l->max_id = 256;
    l->max_xml_depth = 16;
    l->max_json_depth = 8;
}

bool cr_xml_safe(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t n;
        if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; n = 1; }
        else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; n = 2; }
        else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; n = 3; }
        else return false;
        if (len - i - 1 < n) return false;
        for (size_t k = 1; k <= n; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return false;
        if (cp >= 0xD800 && cp <= 0xDFFF) return false;
        if (cp == 0xFFFE || cp == 0xFFFF) return false;
        i += n + 1;
    }
    return true;
}

void cr_request_init(cr_request *r) {
    memset(r, 0, sizeof *r);
    cr_buf_init(&r->arena);
}

void cr_request_free(cr_request *r) {
    cr_buf_free(&r->arena);
    free(r->props);
    cr_request_init(r);
}

void cr_request_reset(cr_request *r) {
    cr_buf_reset(&r->arena);
    r->room.set = r->machine_uid.set = r->session_id.set = r->token.set = false;
    r->nprops = 0;
}

const char *cr_request_str(const cr_request *r, cr_str s) {
    return s.set ? r->arena.data + s.off : NULL;
}

/* Copies s into the arena (NUL-terminated) and describes it in *out. */
static cr_condition store(cr_request *r, const char *s, size_t len, cr_str *out, cr_error *err) {
    if (!cr_buf_reserve(&r->arena, len + 1))
        return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
    out->off = r->arena.len;
    out->len = len;
    out->set = true;
    if (len) memcpy(r->arena.data + r->arena.len, s, len);
    r->arena.data[r->arena.len + len] = '\0';
    r->arena.len += len + 1;
    return CR_OK;
}

cr_condition cr_request_set(cr_request *r, cr_field f, const char *s, size_t len,
                            const cr_limits *lim, cr_error *err) {
    cr_str *dst;
    switch (f) {
    case CR_FIELD_ROOM: dst = &r->room; break;
    case CR_FIELD_MACHINE_UID:
        if (len > lim->max_id)
            return cr_error_set(err, CR_POLICY_VIOLATION, "machine-uid exceeds %zu bytes",
                                lim->max_id);
        dst = &r->machine_uid;
        break;
    case CR_FIELD_SESSION_ID:
        if (len > lim->max_id)
            return cr_error_set(err, CR_POLICY_VIOLATION, "session-id exceeds %zu bytes",
                                lim->max_id);
        dst = &r->session_id;
        break;
    case CR_FIELD_TOKEN:
        if (len > lim->max_token)
            return cr_error_set(err, CR_POLICY_VIOLATION, "token exceeds %zu bytes",
                                lim->max_token);
        dst = &r->token;
        break;
    default: return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "unknown field");
    }
    if (len == 0) {
        dst->set = false;
        return CR_OK;
    }
    return store(r, s, len, dst, err);
}

cr_condition cr_request_set_attribute(cr_request *r, const char *name, size_t nlen,
                                     const char *value, size_t vlen, const cr_limits *lim,
                                     cr_error *err) {
    static const struct {
        const char *name;
        size_t len;
        cr_field field;
    } known[] = {
        {"room", 4, CR_FIELD_ROOM},
        {"machine-uid", 11, CR_FIELD_MACHINE_UID},
        {"session-id", 10, CR_FIELD_SESSION_ID},
        {"token", 5, CR_FIELD_TOKEN},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (nlen == known[i].len && memcmp(name, known[i].name, nlen) == 0)
            return cr_request_set(r, known[i].field, value, vlen, lim, err);
    return CR_OK;
}

cr_condition cr_request_add_property(cr_request *r, const char *name, size_t nlen,
                                     const char *value, size_t vlen, const cr_limits *lim,
                                     cr_error *err) {
    if (nlen == 0) return CR_OK;
    if (nlen > lim->max_property_name)
        return cr_error_set(err, CR_POLICY_VIOLATION, "property name exceeds %zu bytes",
                            lim->max_property_name);
    if (vlen > lim->max_property_value)
        return cr_error_set(err, CR_POLICY_VIOLATION, "property value exceeds %zu bytes",
                            lim->max_property_value);
    for (size_t i = 0; i < r->nprops; i++) {
        cr_prop_ref *p = &r->props[i];
        if (p->name.len == nlen && memcmp(r->arena.data + p->name.off, name, nlen) == 0)
            return store(r, value, vlen, &p->value, err);
    }
    if (r->nprops >= lim->max_properties)
        return cr_error_set(err, CR_POLICY_VIOLATION, "more than %zu properties",
                            lim->max_properties);
    if (r->nprops == r->props_cap) {
        size_t cap = r->props_cap ? r->props_cap * 2 : 16;
        cr_prop_ref *p = realloc(r->props, cap * sizeof *p);
        if (!p) return cr_error_set(err, CR_INTERNAL_SERVER_ERROR, "out of memory");
        r->props = p;
        r->props_cap = cap;
    }
    cr_prop_ref pr;
    cr_condition c = store(r, name, nlen, &pr.name, err);
    if (c) return c;
    c = store(r, value, vlen, &pr.value, err);
    if (c) return c;
    r->props[r->nprops++] = pr;
    return CR_OK;
}

cr_condition cr_request_finish(cr_request *r, const cr_limits *lim, cr_error *err) {
    if (!r->room.set) return cr_error_set(err, CR_BAD_REQUEST, "missing 'room'");
    const char *s = r->arena.data + r->room.off;
    size_t len = r->room.len;
    if (len > lim->max_room)
        return cr_error_set(err, CR_JID_MALFORMED, "room exceeds %zu bytes", lim->max_room);
    const char *at = memchr(s, '@', len);
    if (!at) return cr_error_set(err, CR_JID_MALFORMED, "room is not node@domain");
    size_t node = (size_t)(at - s), domain = len - node - 1;
    if (node == 0) return cr_error_set(err, CR_JID_MALFORMED, "room has an empty node");
    if (domain == 0) return cr_error_set(err, CR_JID_MALFORMED, "room has an empty domain");
    if (memchr(at + 1, '@', domain))
        return cr_error_set(err, CR_JID_MALFORMED, "room has more than one '@'");
    if (memchr(s, '/', len)) return cr_error_set(err, CR_JID_MALFORMED, "room has a resource");
    if (node > lim->max_jid_part || domain > lim->max_jid_part)
        return cr_error_set(err, CR_JID_MALFORMED, "a part of room exceeds %zu bytes",
                            lim->max_jid_part);
    return CR_OK;
}
