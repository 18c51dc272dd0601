/* json.c — parsing of the HTTP body (jansson). */
#include "cr.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Depth of v (a scalar is depth 1 relative to where it sits); fails past max. */
static bool depth_ok(json_t *v, size_t depth, size_t max) {
    if (depth > max) return false;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            if (json_is_object(x) || json_is_array(x)) {
                if (!depth_ok(x, depth + 1, max)) return false;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (json_is_object(x) || json_is_array(x)) {
                if (!depth_ok(x, depth + 1, max)) return false;
            }
        }
    }
    return true;
}

/* Shortest %g form that reads back to the same double. buf has ≥ 32 bytes. */
static size_t shortest_real(double d, char *buf, size_t size) {
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    return n > 0 ? (size_t)n : 0;
}

/* An optional string field: absent or null → absent; other non-string types → bad-request. */
static cr_condition opt_string(json_t *root, const char *key, cr_field f, cr_request *req,
                               const cr_limits *lim, cr_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return CR_OK;
    if (!json_is_string(v)) return cr_error_set(err, CR_BAD_REQUEST, "'%s' is not a string", key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!cr_xml_safe(s, len))
        return cr_error_set(err, CR_BAD_REQUEST, "'%s' contains characters not allowed in XML", key);
    return cr_request_set(req, f, s, len, lim, err);
}

static cr_condition parse_root(json_t *root, const cr_limits *lim, cr_request *req,
                               cr_error *err) {
    if (!json_is_object(root)) return cr_error_set(err, CR_BAD_REQUEST, "body is not a JSON object");
    if (!depth_ok(root, 1, lim->max_json_depth))
        return cr_error_set(err, CR_BAD_REQUEST, "body nested deeper than %zu", lim->max_json_depth);
    cr_condition c;
    json_t *room = json_object_get(root, "room");
    if (room && !json_is_null(room)) {
        if (!json_is_string(room)) return cr_error_set(err, CR_BAD_REQUEST, "'room' is not a string");
    }
    if ((c = opt_string(root, "room", CR_FIELD_ROOM, req, lim, err))) return c;
    if ((c = opt_string(root, "machineUid", CR_FIELD_MACHINE_UID, req, lim, err))) return c;
    if ((c = opt_string(root, "sessionId", CR_FIELD_SESSION_ID, req, lim, err))) return c;
    json_t *props = json_object_get(root, "properties");
    if (props && !json_is_null(props)) {
        if (!json_is_object(props))
            return cr_error_set(err, CR_BAD_REQUEST, "'properties' is not an object");
        const char *k;
        json_t *v;
        json_object_foreach(props, k, v) {
            size_t klen = strlen(k); /* keys cannot hold NUL: JSON_ALLOW_NUL is not set */
            if (!cr_xml_safe(k, klen))
                return cr_error_set(err, CR_BAD_REQUEST,
                                    "a property name contains characters not allowed in XML");
            char num[40];
            const char *s;
            size_t len;
            switch (json_typeof(v)) {
            case JSON_STRING:
                s = json_string_value(v);
                len = json_string_length(v);
                if (!cr_xml_safe(s, len))
                    return cr_error_set(err, CR_BAD_REQUEST,
                                        "property '%.64s' contains characters not allowed in XML", k);
                break;
            case JSON_TRUE: s = "true"; len = 4; break;
            case JSON_FALSE: s = "false"; len = 5; break;
            case JSON_INTEGER:
                len = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                s = num;
                break;
            case JSON_REAL:
                len = shortest_real(json_real_value(v), num, sizeof num);
                s = num;
                break;
            case JSON_NULL: continue;
            default:
                return cr_error_set(err, CR_BAD_REQUEST, "property '%.64s' is not a scalar", k);
            }
            if ((c = cr_request_add_property(req, k, klen, s, len, lim, err))) return c;
        }
    }
    return cr_request_finish(req, lim, err);
}

cr_condition cr_json_parse(const char *bytes, size_t len, const cr_limits *lim, cr_request *req,
                           cr_error *err) {
    cr_request_reset(req);
    json_error_t je;
    json_t *root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return cr_error_set(err, CR_BAD_REQUEST, "malformed JSON: %s", je.text);
    cr_condition c = parse_root(root, lim, req, err);
    json_decref(root);
    return c;
}
