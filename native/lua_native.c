/* lua_native.c — the Lua 5.4 binding of the C core: require "conference_request_native".
 *
 * The only file that includes lua.h. Bad input → `nil, condition, text`; bad arguments raise.
 * Memory the C side allocates always lives inside a userdata (freed by __gc/__close), so a Lua
 * error raised at any point never leaks it.
 *
 * Argument discipline, in every function: the arguments are checked first (luaL_check*, extra
 * arguments are ignored), then the stack is cut to the arguments (lua_settop) before any fixed
 * index is used; a pointer into a Lua string is only used while that string is on the stack.
 * A Lua error (out of memory included) never loses a waiter: see push_waiters.
 */
#include "cr.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CODEC_MT "conference_request_native.codec"
#define REGISTRY_MT "conference_request_native.registry"
#define FOCUS_NS "http://jitsi.org/protocol/focus"
#define NATIVE_VERSION "1.0.0"

/* ---- helpers ------------------------------------------------------------------------------ */

static int push_error(lua_State *L, const cr_error *err) {
    const cr_condition_info *ci = cr_condition_get(err->condition);
    lua_pushnil(L);
    lua_pushstring(L, ci ? ci->name : "internal-server-error");
    lua_pushstring(L, err->text);
    return 3;
}

/* Reads a positive integer option of table idx; keeps *out when the field is nil. */
static void opt_limit(lua_State *L, int idx, const char *key, size_t *out) {
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER) luaL_error(L, "option '%s' must be a positive integer", key);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v <= 0) luaL_error(L, "option '%s' must be a positive integer", key);
        *out = (size_t)v;
    }
    lua_pop(L, 1);
}

static bool opt_bool(lua_State *L, int idx, const char *key, bool def) {
    int t = lua_getfield(L, idx, key);
    bool v = def;
    if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL) luaL_error(L, "option '%s' must be a boolean", key);
    lua_pop(L, 1);
    return v;
}

/* Raises on a key of table idx not in names (NULL-terminated). */
static void check_keys(lua_State *L, int idx, const char *const *names) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "unknown option (non-string key)");
        const char *k = lua_tostring(L, -1);
        bool known = false;
        for (size_t i = 0; names[i]; i++)
            if (strcmp(names[i], k) == 0) known = true;
        if (!known) luaL_error(L, "unknown option '%s'", k);
    }
}

/* ---- conditions --------------------------------------------------------------------------- */

static void push_conditions(lua_State *L) {
    lua_createtable(L, 0, CR_CONDITION_COUNT);
    for (int c = CR_OK + 1; c < CR_CONDITION_COUNT; c++) {
        const cr_condition_info *ci = cr_condition_get((cr_condition)c);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, ci->type);
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, ci->http);
        lua_setfield(L, -2, "http");
        lua_setfield(L, -2, ci->name);
    }
}

/* ---- codec -------------------------------------------------------------------------------- */

typedef struct {
    cr_limits lim;
    cr_xml_parser *xp;     /* owned */
    cr_request req;        /* owned, reused */
    cr_buf out;            /* owned, reused */
    cr_answer_config acfg; /* owned */
    bool closed;
} codec;

static void codec_release(codec *c) {
    if (c->closed) return;
    c->closed = true;
    cr_xml_parser_free(c->xp);
    c->xp = NULL;
    cr_request_free(&c->req);
    cr_buf_free(&c->out);
    cr_answer_config_free(&c->acfg);
}

static codec *check_codec(lua_State *L) {
    codec *c = luaL_checkudata(L, 1, CODEC_MT);
    if (c->closed) luaL_error(L, "codec is closed");
    return c;
}

/* native.codec([config]) -> codec */
static int l_codec(lua_State *L) {
    static const char *const keys[] = {
        "max_room", "max_jid_part", "max_properties", "max_property_name", "max_property_value",
        "max_token", "max_id", "max_xml_depth", "max_json_depth", "authentication",
        "external_auth", "sip_gateway", "extra_properties", "stanza_mt", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    codec *c = lua_newuserdatauv(L, sizeof *c, 1); /* 2 */
    memset(c, 0, sizeof *c);
    c->closed = true; /* nothing to free until initialized */
    cr_limits_default(&c->lim);
    cr_request_init(&c->req);
    cr_buf_init(&c->out);
    cr_answer_config_init(&c->acfg);
    c->closed = false;
    luaL_setmetatable(L, CODEC_MT);

    check_keys(L, 1, keys);
    opt_limit(L, 1, "max_room", &c->lim.max_room);
    opt_limit(L, 1, "max_jid_part", &c->lim.max_jid_part);
    opt_limit(L, 1, "max_properties", &c->lim.max_properties);
    opt_limit(L, 1, "max_property_name", &c->lim.max_property_name);
    opt_limit(L, 1, "max_property_value", &c->lim.max_property_value);
    opt_limit(L, 1, "max_token", &c->lim.max_token);
    opt_limit(L, 1, "max_id", &c->lim.max_id);
    opt_limit(L, 1, "max_xml_depth", &c->lim.max_xml_depth);
    opt_limit(L, 1, "max_json_depth", &c->lim.max_json_depth);
    c->acfg.authentication = opt_bool(L, 1, "authentication", false);
    c->acfg.sip_gateway = opt_bool(L, 1, "sip_gateway", false);
    int t = lua_getfield(L, 1, "external_auth");
    if (t == LUA_TBOOLEAN) c->acfg.external_auth = lua_toboolean(L, -1) ? 1 : 0;
    else if (t != LUA_TNIL) luaL_error(L, "option 'external_auth' must be a boolean or nil");
    lua_pop(L, 1);

    t = lua_getfield(L, 1, "extra_properties"); /* 3 */
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "option 'extra_properties' must map strings to strings");
            size_t nl, vl;
            const char *n = lua_tolstring(L, -2, &nl), *v = lua_tolstring(L, -1, &vl);
            if (nl == 0 || !cr_xml_safe(n, nl) || !cr_xml_safe(v, vl))
                luaL_error(L, "option 'extra_properties': names must be non-empty, names and "
                              "values XML-safe UTF-8");
            cr_error err;
            if (cr_answer_config_add_extra(&c->acfg, n, nl, v, vl, &err))
                luaL_error(L, "%s", err.text);
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'extra_properties' must be a table");
    }
    lua_pop(L, 1);

    t = lua_getfield(L, 1, "stanza_mt"); /* 3 */
    if (t != LUA_TNIL && t != LUA_TTABLE) luaL_error(L, "option 'stanza_mt' must be a table");
    lua_setiuservalue(L, 2, 1);

    c->xp = cr_xml_parser_new();
    if (!c->xp) luaL_error(L, "out of memory");
    lua_settop(L, 2);
    return 1;
}

static void set_str(lua_State *L, const cr_request *r, cr_str s, const char *key) {
    if (!s.set) return;
    lua_pushlstring(L, cr_request_str(r, s), s.len);
    lua_setfield(L, -2, key);
}

static int push_request(lua_State *L, const cr_request *r) {
    lua_createtable(L, 0, 5);
    set_str(L, r, r->room, "room");
    set_str(L, r, r->machine_uid, "machine_uid");
    set_str(L, r, r->session_id, "session_id");
    set_str(L, r, r->token, "token");
    lua_createtable(L, (int)(r->nprops * 2), 0);
    for (size_t i = 0; i < r->nprops; i++) {
        lua_pushlstring(L, cr_request_str(r, r->props[i].name), r->props[i].name.len);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 1));
        lua_pushlstring(L, cr_request_str(r, r->props[i].value), r->props[i].value.len);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 2));
    }
    lua_setfield(L, -2, "properties");
    return 1;
}

/* codec:parse_xml(bytes) -> request | nil, condition, text */
static int l_parse_xml(lua_State *L) {
    codec *c = check_codec(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    cr_error err;
    if (cr_xml_parse(c->xp, s, len, &c->lim, &c->req, &err)) return push_error(L, &err);
    return push_request(L, &c->req);
}

/* codec:parse_json(bytes) -> request | nil, condition, text */
static int l_parse_json(lua_State *L) {
    codec *c = check_codec(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    cr_error err;
    if (cr_json_parse(s, len, &c->lim, &c->req, &err)) return push_error(L, &err);
    return push_request(L, &c->req);
}

/* ---- parse_stanza: the request from an element Prosody has already parsed ------------------
 *
 * A util.stanza element is { name = , attr = { xmlns = , … }, tags = { child, … }, … }. Prosody's
 * stream parser (expat, through lua-expat) has parsed and checked the bytes already, so the XMPP
 * door hands the tree over instead of serializing it for a second expat pass. The rules are those
 * of cr_xml_parse: the same request model (cr_request_set_attribute, cr_request_add_property,
 * cr_request_finish), the same depth limit, the same conditions; children inherit the namespace of
 * their parent unless attr.xmlns says otherwise. Strings are checked to be XML-safe UTF-8, since a
 * tree built in Lua never went through a parser. */

/* Pushes field key of the table at idx (one slot, whatever its type) and returns it when it is
 * a string, else NULL (*len = 0). The pointer is valid while that slot stays on the stack: the
 * caller pops it (lua_settop) only once done with the bytes. (Popping it here would leave the
 * string to the table alone, and a metamethod run by a later lua_getfield may drop it from the
 * table and collect it.) */
static const char *field_str(lua_State *L, int idx, const char *key, size_t *len) {
    *len = 0;
    if (lua_getfield(L, idx, key) == LUA_TSTRING) return lua_tolstring(L, -1, len);
    return NULL;
}

/* s[0..len) is exactly the NUL-terminated lit (a Lua string may hold a NUL). */
static bool str_is(const char *s, size_t len, const char *lit) {
    return s && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static cr_condition unsafe(cr_error *err, const char *what) {
    return cr_error_set(err, CR_BAD_REQUEST, "%s contains characters not allowed in XML", what);
}

/* Checks that no element below the element at idx, itself at `depth`, lies deeper than limit.
 * Iterative: the path is kept on the Lua stack as (tags, next index) pairs, so a deep tree costs
 * Lua stack slots (checked), never C stack. */
static cr_condition check_depth(lua_State *L, int idx, size_t depth, size_t limit,
                                cr_error *err) {
    int base = lua_gettop(L);
    if (lua_getfield(L, idx, "tags") != LUA_TTABLE) {
        lua_settop(L, base);
        return CR_OK;
    }
    lua_pushinteger(L, 1); /* level: tags, next index; `depth` is the depth of its owner */
    cr_condition c = CR_OK;
    while (lua_gettop(L) > base) {
        lua_Integer i = lua_tointeger(L, -1);
        if (lua_rawgeti(L, -2, i) != LUA_TTABLE) { /* this level is done */
            lua_pop(L, 3);
            depth--;
            continue;
        }
        lua_pushinteger(L, i + 1);
        lua_replace(L, -3);
        if (depth + 1 > limit) {
            c = cr_error_set(err, CR_BAD_REQUEST, "payload nested deeper than %zu", limit);
            break;
        }
        if (lua_getfield(L, -1, "tags") == LUA_TTABLE && lua_rawlen(L, -1) > 0) {
            if (!lua_checkstack(L, 4)) {
                c = cr_error_set(err, CR_BAD_REQUEST, "payload nested too deeply");
                break;
            }
            lua_remove(L, -2); /* the child's tags become the current level */
            lua_pushinteger(L, 1);
            depth++;
        } else {
            lua_pop(L, 2);
        }
    }
    lua_settop(L, base);
    return c;
}

/* The request from the element at index el, the top of the stack on entry (every string in use
 * stays on the stack until it has been copied into req). Slot numbers in the comments are for
 * el = 2; I(n) is slot n for this el. */
#define I(n) (el + (n) - 2)
static cr_condition stanza_request(lua_State *L, int el, const cr_limits *lim, cr_request *req,
                                   cr_error *err) {
    cr_request_reset(req);
    size_t len, nslen;
    const char *s = field_str(L, el, "name", &len);     /* 3 */
    if (lua_getfield(L, el, "attr") != LUA_TTABLE)      /* 4 */
        return cr_error_set(err, CR_BAD_REQUEST, "payload is not an element");
    const char *ns = field_str(L, I(4), "xmlns", &nslen); /* 5 */
    if (!str_is(s, len, "conference") || !str_is(ns, nslen, FOCUS_NS))
        return cr_error_set(err, CR_BAD_REQUEST, "payload is not <conference xmlns='" FOCUS_NS "'>");
    lua_settop(L, I(4));
    if (lim->max_xml_depth < 1)
        return cr_error_set(err, CR_BAD_REQUEST, "payload nested deeper than %zu", lim->max_xml_depth);
    static const char *const attrs[] = {"room", "machine-uid", "session-id", "token"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        const char *v = field_str(L, I(4), attrs[i], &len); /* 5 */
        if (v) {
            if (!cr_xml_safe(v, len)) return unsafe(err, attrs[i]);
            cr_condition c = cr_request_set_attribute(req, attrs[i], strlen(attrs[i]), v, len, lim, err);
            if (c) return c;
        }
        lua_settop(L, I(4));
    }
    if (lua_getfield(L, el, "tags") == LUA_TTABLE) { /* 5 */
        for (lua_Integer i = 1; lua_rawgeti(L, I(5), i) == LUA_TTABLE; i++) { /* 6 */
            if (lim->max_xml_depth < 2)
                return cr_error_set(err, CR_BAD_REQUEST, "payload nested deeper than %zu",
                                    lim->max_xml_depth);
            cr_condition c;
            if (lua_getfield(L, I(6), "attr") == LUA_TTABLE) { /* 7 */
                const char *name = field_str(L, I(6), "name", &len);  /* 8 */
                const char *cns = field_str(L, I(7), "xmlns", &nslen); /* 9 */
                if (str_is(name, len, "property") && (!cns || str_is(cns, nslen, FOCUS_NS))) {
                    size_t nl, vl;
                    const char *pn = field_str(L, I(7), "name", &nl);  /* 10 */
                    const char *pv = field_str(L, I(7), "value", &vl); /* 11 */
                    if (pn && nl) {
                        if (!pv) pv = "", vl = 0;
                        if (!cr_xml_safe(pn, nl)) return unsafe(err, "a property name");
                        if (!cr_xml_safe(pv, vl)) return unsafe(err, "a property value");
                        c = cr_request_add_property(req, pn, nl, pv, vl, lim, err);
                        if (c) return c;
                    }
                }
            }
            lua_settop(L, I(6));
            /* after the element's own attributes, as expat meets them */
            c = check_depth(L, I(6), 2, lim->max_xml_depth, err);
            if (c) return c;
            lua_settop(L, I(5));
        }
    }
    return cr_request_finish(req, lim, err);
}
#undef I

/* codec:parse_stanza(element) -> request | nil, condition, text
 * element: the <conference/> util.stanza element of the IQ (stanza.tags[1]). */
static int l_parse_stanza(lua_State *L) {
    codec *c = check_codec(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    luaL_checkstack(L, 16, NULL); /* stanza_request uses up to 11 slots, check_depth grows its own */
    cr_error err;
    if (stanza_request(L, 2, &c->lim, &c->req, &err)) {
        lua_settop(L, 2);
        return push_error(L, &err);
    }
    lua_settop(L, 2);
    return push_request(L, &c->req);
}

/* Reads field key of the answer table (index 2) as a string; the value stays on the stack so the
 * pointer remains valid. */
static cr_sv answer_str(lua_State *L, const char *key, bool required) {
    int t = lua_getfield(L, 2, key);
    if (t == LUA_TNIL && !required) return (cr_sv){NULL, 0};
    if (t != LUA_TSTRING) luaL_error(L, "answer.%s must be a string%s", key, required ? "" : " or nil");
    cr_sv v;
    v.s = lua_tolstring(L, -1, &v.len);
    return v;
}

static bool answer_bool(lua_State *L, const char *key, bool required) {
    int t = lua_getfield(L, 2, key);
    bool v = false;
    if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL || required)
        luaL_error(L, "answer.%s must be a boolean%s", key, required ? "" : " or nil");
    lua_pop(L, 1);
    return v;
}

/* Fills a from the table at index 2 (the stack is cut to codec, answer first); pushes the string
 * values, which stay on the stack while a points into them. */
static void read_answer(lua_State *L, cr_answer *a) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    luaL_checkstack(L, 8, NULL);
    a->room = answer_str(L, "room", true);
    a->ready = answer_bool(L, "ready", true);
    a->focus_jid = answer_str(L, "focus_jid", true);
    a->session_id = answer_str(L, "session_id", false);
    a->identity = answer_str(L, "identity", false);
    a->vnode = answer_str(L, "vnode", false);
    a->vnode_muc = answer_str(L, "vnode_muc", false);
    a->visitors_supported = answer_bool(L, "visitors_supported", false);
    a->live_queue = answer_bool(L, "live_queue", false);
    cr_error err;
    if (cr_answer_check(a, &err)) luaL_error(L, "bad answer: %s", err.text);
}

/* codec:render_json(answer) -> string */
static int l_render_json(lua_State *L) {
    codec *c = check_codec(L);
    cr_answer a;
    read_answer(L, &a);
    cr_error err;
    if (cr_answer_render_json(&a, &c->acfg, &c->out, &err)) luaL_error(L, "%s", err.text);
    lua_pushlstring(L, c->out.data, c->out.len);
    return 1;
}

/* codec:render_xml(answer) -> string */
static int l_render_xml(lua_State *L) {
    codec *c = check_codec(L);
    cr_answer a;
    read_answer(L, &a);
    cr_error err;
    if (cr_answer_render_xml(&a, &c->acfg, &c->out, &err)) luaL_error(L, "%s", err.text);
    lua_pushlstring(L, c->out.data, c->out.len);
    return 1;
}

static void set_sv(lua_State *L, const char *key, cr_sv v) {
    if (!v.s || !v.len) return;
    lua_pushlstring(L, v.s, v.len);
    lua_setfield(L, -2, key);
}

/* Pushes the <conference/> element of a (strings borrowed, on the stack) as a util.stanza table
 * whose metatable (and its children's) is the table at index mt. */
static void push_stanza(lua_State *L, const codec *c, const cr_answer *ap, int mt) {
    const cr_answer a = *ap;
    luaL_checkstack(L, 10, NULL);
    /* tables sized exactly: this runs once per answered IQ, and every spare slot is garbage */
    cr_prop chunk[16];
    size_t total = 0, n;
    while ((n = cr_answer_properties(&a, &c->acfg, total, chunk, 16)) > 0) total += n;
    int nprops = total < 1024 ? (int)total : 1024;
    lua_createtable(L, nprops, 3); /* element: children in the array part; name, attr, tags */
    int el = lua_gettop(L);
    lua_pushliteral(L, "conference");
    lua_setfield(L, el, "name");
    lua_createtable(L, 0, 4 + (a.session_id.len > 0) + (a.identity.len > 0) + (a.vnode.len > 0));
    lua_pushliteral(L, FOCUS_NS);
    lua_setfield(L, -2, "xmlns");
    set_sv(L, "room", a.room);
    lua_pushstring(L, a.ready ? "true" : "false");
    lua_setfield(L, -2, "ready");
    set_sv(L, "focusjid", a.focus_jid);
    set_sv(L, "session-id", a.session_id);
    set_sv(L, "identity", a.identity);
    set_sv(L, "vnode", a.vnode);
    lua_setfield(L, el, "attr");
    lua_createtable(L, nprops, 0);
    int tags = lua_gettop(L);
    size_t done = 0;
    while ((n = cr_answer_properties(&a, &c->acfg, done, chunk, 16)) > 0) {
        for (size_t i = 0; i < n; i++) {
            lua_createtable(L, 0, 3);
            lua_pushliteral(L, "property");
            lua_setfield(L, -2, "name");
            lua_createtable(L, 0, 2);
            lua_pushlstring(L, chunk[i].name.s, chunk[i].name.len);
            lua_setfield(L, -2, "name");
            lua_pushlstring(L, chunk[i].value.s, chunk[i].value.len);
            lua_setfield(L, -2, "value");
            lua_setfield(L, -2, "attr");
            lua_createtable(L, 0, 0);
            lua_setfield(L, -2, "tags");
            lua_pushvalue(L, mt);
            lua_setmetatable(L, -2);
            lua_pushvalue(L, -1);
            lua_rawseti(L, tags, (lua_Integer)(done + i + 1));
            lua_rawseti(L, el, (lua_Integer)(done + i + 1));
        }
        done += n;
    }
    lua_setfield(L, el, "tags");
    lua_pushvalue(L, mt);
    lua_setmetatable(L, el);
}

/* codec:render_stanza(answer) -> util.stanza element (metatable: config.stanza_mt) */
static int l_render_stanza(lua_State *L) {
    codec *c = check_codec(L);
    cr_answer a;
    read_answer(L, &a);
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE)
        luaL_error(L, "render_stanza needs the codec option 'stanza_mt'");
    push_stanza(L, c, &a, lua_gettop(L));
    return 1;
}

static int l_codec_gc(lua_State *L) {
    codec_release(luaL_checkudata(L, 1, CODEC_MT));
    return 0;
}

static int l_codec_tostring(lua_State *L) {
    codec *c = luaL_checkudata(L, 1, CODEC_MT);
    lua_pushfstring(L, "conference_request_native.codec (%p)%s", (void *)c,
                    c->closed ? " closed" : "");
    return 1;
}

/* ---- registry ----------------------------------------------------------------------------- */

typedef struct {
    cr_registry *r; /* owned; NULL once closed */
    uint64_t *ids;  /* owned scratch for handing back waiter ids; ids[0..nheld) are held */
    size_t idcap;
    size_t nheld;   /* expired waiters the core has dropped but Lua has not received yet (a Lua
                       error, e.g. out of memory, interrupted registry:expire): the next expire
                       hands them back first */
    size_t ncached; /* entries of the answer cache (user value 2), see codec:ready_json */
} lregistry;

/* The answer cache of codec:ready_json (issue 15): user value 2 of the registry, a table
 * { [1] = focus JID, [2] = codec, [room] = rendered answer, … } holding the answer of rooms that
 * are ready, as Lua strings, so that a request for a cached room allocates nothing on the Lua
 * side (a room of at most 40 bytes is an interned string, found again without allocation). An
 * entry exists only while its room is ready: set_pending and forget drop it (the only ways out of
 * ready), and a hit is trusted without asking the core again. At most CACHE_MAX entries: the
 * table is replaced by an empty one when full (about 270 bytes per entry with a 26-byte room:
 * ≈ 1.1 MB at most). A call with another codec or focus JID starts a new table. */
#define CACHE_MAX 4096

/* Drops the cached answer of the room at index room_idx (a string) of the registry at index 1. */
static void cache_drop(lua_State *L, lregistry *g, int room_idx) {
    if (g->ncached == 0) return;
    if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE) {
        lua_pushvalue(L, room_idx);
        if (lua_rawget(L, -2) != LUA_TNIL) {
            lua_pushvalue(L, room_idx);
            lua_pushnil(L);
            lua_rawset(L, -4); /* an existing key set to nil: allocates nothing */
            g->ncached--;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static lregistry *check_registry_at(lua_State *L, int arg) {
    lregistry *g = luaL_checkudata(L, arg, REGISTRY_MT);
    if (!g->r) luaL_error(L, "registry is closed");
    return g;
}

static lregistry *check_registry(lua_State *L) { return check_registry_at(L, 1); }

/* Makes room for n ids after the held ones in the scratch (raises on allocation failure; nothing
 * is lost: the held ids stay where they are). */
static void ensure_ids(lua_State *L, lregistry *g, size_t n) {
    if (n > SIZE_MAX / sizeof *g->ids - g->nheld) luaL_error(L, "out of memory");
    n += g->nheld;
    if (n <= g->idcap) return;
    size_t cap = g->idcap ? g->idcap : 64;
    while (cap < n) cap *= 2;
    uint64_t *p = realloc(g->ids, cap * sizeof *p);
    if (!p) luaL_error(L, "out of memory");
    g->ids = p;
    g->idcap = cap;
}

/* Moves the waiter values of ids[0..n) from the id table (user value 1 of the registry at index
 * 1) into the array on top of the stack, which the caller created with room for n entries
 * (lua_createtable(L, n, 0)) BEFORE the core handed the ids over. Allocates nothing, so no Lua
 * error (out of memory included) can come between the core forgetting a waiter and Lua receiving
 * it. Ids without a value (none in practice) are skipped. */
static void push_waiters(lua_State *L, const uint64_t *ids, size_t n) {
    int res = lua_gettop(L);
    lua_getiuservalue(L, 1, 1);
    int tbl = lua_gettop(L);
    lua_Integer k = 0;
    for (size_t i = 0; i < n; i++) {
        lua_Integer id = (lua_Integer)ids[i];
        if (lua_rawgeti(L, tbl, id) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawseti(L, res, ++k); /* preallocated array slot */
        lua_pushnil(L);
        lua_rawseti(L, tbl, id); /* an existing key set to nil */
    }
    lua_settop(L, res);
}

/* Table size hint for n entries (lua_createtable takes an int; n is bounded by max_waiters). */
static int narr(size_t n) { return n < (size_t)INT32_MAX ? (int)n : INT32_MAX; }

/* A number argument that is not NaN (a NaN deadline would never expire nor order). */
static double check_time(lua_State *L, int arg) {
    double v = (double)luaL_checknumber(L, arg);
    luaL_argcheck(L, !isnan(v), arg, "number expected, got NaN");
    return v;
}

/* native.registry([config]) -> registry */
static int l_registry(lua_State *L) {
    static const char *const keys[] = {"max_rooms", "max_waiters_per_room", "max_waiters", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, keys);
    cr_registry_config cfg;
    cr_registry_config_default(&cfg);
    opt_limit(L, 1, "max_rooms", &cfg.max_rooms);
    opt_limit(L, 1, "max_waiters_per_room", &cfg.max_waiters_per_room);
    opt_limit(L, 1, "max_waiters", &cfg.max_waiters);
    if (cfg.max_waiters > CR_MAX_WAITERS_LIMIT) luaL_error(L, "option 'max_waiters' is too large");
    lregistry *g = lua_newuserdatauv(L, sizeof *g, 2);
    memset(g, 0, sizeof *g);
    luaL_setmetatable(L, REGISTRY_MT);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    g->r = cr_registry_new(&cfg);
    if (!g->r) luaL_error(L, "out of memory");
    return 1;
}

static void registry_release(lregistry *g) {
    cr_registry_free(g->r);
    g->r = NULL;
    free(g->ids);
    g->ids = NULL;
    g->idcap = 0;
    g->nheld = 0;
}

static const char *state_name(cr_room_state s) {
    return s == CR_ROOM_PENDING ? "pending" : s == CR_ROOM_READY ? "ready" : "absent";
}

/* registry:state(room) -> "absent" | "pending" | "ready" */
static int l_state(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    lua_pushstring(L, state_name(cr_registry_state(g->r, room, len)));
    return 1;
}

/* registry:set_ready(room) -> waiters | nil, condition, text */
static int l_set_ready(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len, n;
    const char *room = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    size_t count = cr_registry_room_waiters(g->r, room, len);
    ensure_ids(L, g, count);
    lua_createtable(L, narr(count), 0); /* 3: before the core lets go of anything */
    uint64_t *ids = g->ids + g->nheld;
    cr_error err;
    if (cr_registry_set_ready(g->r, room, len, ids, g->idcap - g->nheld, &n, &err))
        return push_error(L, &err);
    push_waiters(L, ids, n);
    return 1;
}

/* registry:set_pending(room) -> true | nil, condition, text */
static int l_set_pending(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    cr_error err;
    cache_drop(L, g, 2);
    if (cr_registry_set_pending(g->r, room, len, &err)) return push_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* registry:forget(room) -> waiters */
static int l_forget(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    size_t count = cr_registry_room_waiters(g->r, room, len);
    ensure_ids(L, g, count);
    lua_createtable(L, narr(count), 0); /* 3: before the core lets go of anything */
    uint64_t *ids = g->ids + g->nheld;
    size_t n = cr_registry_forget(g->r, room, len, ids, g->idcap - g->nheld);
    push_waiters(L, ids, n);
    cache_drop(L, g, 2);
    return 1;
}

/* Stores waiter (3) under id (2) in the id table (1); run protected by l_wait. */
static int store_waiter(lua_State *L) {
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

/* registry:wait(room, waiter, deadline) -> id | nil, condition, text
 * waiter: any value but nil; deadline: a number, not NaN (math.huge: never expires). */
static int l_wait(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, !lua_isnoneornil(L, 3), 3, "waiter must not be nil");
    double deadline = check_time(L, 4);
    lua_settop(L, 4);
    lua_pushcfunction(L, store_waiter); /* 5 */
    lua_getiuservalue(L, 1, 1);         /* 6 */
    uint64_t id;
    cr_error err;
    if (cr_registry_wait(g->r, room, len, deadline, &id, &err)) return push_error(L, &err);
    lua_pushinteger(L, (lua_Integer)id); /* 7 */
    lua_pushvalue(L, 3);                 /* 8 */
    /* A new key in the id table may need memory: if storing fails, the core forgets the waiter
     * again, so the core never holds an id Lua has no value for. */
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        cr_registry_cancel(g->r, id);
        return lua_error(L);
    }
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* registry:cancel(id) -> boolean */
static int l_cancel(lua_State *L) {
    lregistry *g = check_registry(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_settop(L, 2);
    bool ok = id > 0 && cr_registry_cancel(g->r, (uint64_t)id);
    for (size_t i = 0; !ok && id > 0 && i < g->nheld; i++) {
        if (g->ids[i] != (uint64_t)id) continue;
        memmove(g->ids + i, g->ids + i + 1, (g->nheld - i - 1) * sizeof *g->ids);
        g->nheld--;
        ok = true;
    }
    if (ok) {
        lua_getiuservalue(L, 1, 1);
        lua_pushnil(L);
        lua_rawseti(L, -2, id);
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* registry:expire(now) -> waiters (deadline order, then arrival; after any held back by an
 * interrupted earlier call). now: a number, not NaN. */
static int l_expire(lua_State *L) {
    lregistry *g = check_registry(L);
    double now = check_time(L, 2);
    lua_settop(L, 2);
    cr_registry_stats st;
    cr_registry_stats_get(g->r, &st);
    ensure_ids(L, g, st.waiters);
    /* How many expire is only known once the core has dropped them: they are held (nheld) until
     * the array holding them exists, and a Lua error in between leaves them for the next call. */
    g->nheld += cr_registry_expire(g->r, now, g->ids + g->nheld, g->idcap - g->nheld);
    lua_createtable(L, narr(g->nheld), 0); /* 3 */
    push_waiters(L, g->ids, g->nheld);
    g->nheld = 0;
    return 1;
}

/* registry:notify_due(room, now, interval) -> boolean */
static int l_notify_due(lua_State *L) {
    lregistry *g = check_registry(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    double now = check_time(L, 3);
    double interval = check_time(L, 4);
    lua_settop(L, 4);
    lua_pushboolean(L, cr_registry_notify_due(g->r, room, len, now, interval));
    return 1;
}

/* registry:stats() -> { rooms =, pending =, ready =, waiters = }
 * waiters counts the held ones too (not handed back yet). */
static int l_stats(lua_State *L) {
    lregistry *g = check_registry(L);
    lua_settop(L, 1);
    cr_registry_stats st;
    cr_registry_stats_get(g->r, &st);
    st.waiters += g->nheld;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st.rooms);
    lua_setfield(L, -2, "rooms");
    lua_pushinteger(L, (lua_Integer)st.pending);
    lua_setfield(L, -2, "pending");
    lua_pushinteger(L, (lua_Integer)st.ready);
    lua_setfield(L, -2, "ready");
    lua_pushinteger(L, (lua_Integer)st.waiters);
    lua_setfield(L, -2, "waiters");
    return 1;
}

static int each_step(lua_State *L) {
    lregistry *g = luaL_checkudata(L, lua_upvalueindex(1), REGISTRY_MT);
    if (!g->r) return 0;
    size_t cursor = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    const char *room;
    size_t len, waiters;
    cr_room_state st;
    if (!cr_registry_next(g->r, &cursor, &room, &len, &st, &waiters)) return 0;
    lua_pushinteger(L, (lua_Integer)cursor);
    lua_replace(L, lua_upvalueindex(2));
    lua_pushlstring(L, room, len);
    lua_pushstring(L, state_name(st));
    lua_pushinteger(L, (lua_Integer)waiters);
    return 3;
}

/* registry:each() -> iterator → room, state, waiter count */
static int l_each(lua_State *L) {
    check_registry(L);
    lua_settop(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, each_step, 2);
    return 1;
}

/* #registry -> number of rooms tracked */
static int l_len(lua_State *L) {
    lregistry *g = luaL_checkudata(L, 1, REGISTRY_MT);
    lua_pushinteger(L, g->r ? (lua_Integer)cr_registry_count(g->r) : 0);
    return 1;
}

static int l_registry_gc(lua_State *L) {
    lregistry *g = luaL_checkudata(L, 1, REGISTRY_MT);
    registry_release(g);
    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) { /* drop the waiter references */
        lua_newtable(L);
        lua_setiuservalue(L, 1, 1);
    }
    lua_pushnil(L); /* and the answer cache */
    lua_setiuservalue(L, 1, 2);
    g->ncached = 0;
    return 0;
}

static int l_registry_tostring(lua_State *L) {
    lregistry *g = luaL_checkudata(L, 1, REGISTRY_MT);
    if (!g->r) lua_pushliteral(L, "conference_request_native.registry (closed)");
    else
        lua_pushfstring(L, "conference_request_native.registry (%d rooms)",
                        (int)cr_registry_count(g->r));
    return 1;
}

/* ---- module ------------------------------------------------------------------------------- */

/* ---- the HTTP door's common case in one call (issue 15) ------------------------------------ */

/* codec:ready_json(body, registry, focus_jid) -> answer, room | nil
 * body: the HTTP body; registry: a native.registry; focus_jid: the focus's JID for ready answers.
 * Parses body exactly as parse_json does; when it is a valid request whose `room` string is, byte
 * for byte, a ready key of registry, returns the answer the general flow gives a ready room
 * (render_json of { room = room, ready = true, focus_jid = focus_jid,
 * visitors_supported = false }) and the room. Anything else (a parse error, a room that is
 * absent, pending or not in normalized form, a render failure) → nil: the caller takes the
 * general path, which parses again and answers what is due. Builds no Lua table; answers come
 * from the registry's answer cache (above) when there. */
static int l_ready_json(lua_State *L) {
    codec *c = check_codec(L);
    size_t len, flen;
    const char *body = luaL_checklstring(L, 2, &len);
    lregistry *g = check_registry_at(L, 3);
    const char *fj = luaL_checklstring(L, 4, &flen);
    lua_settop(L, 4);
    cr_error err;
    const cr_request *r = &c->req;
    if (cr_json_parse(body, len, &c->lim, &c->req, &err) != CR_OK || !r->room.set) {
        lua_pushnil(L);
        return 1;
    }
    const char *room = cr_request_str(r, r->room);
    size_t rlen = r->room.len;
    /* 5: the cache, if it was made for this codec and focus JID */
    bool own = false;
    if (lua_getiuservalue(L, 3, 2) == LUA_TTABLE) {
        lua_rawgeti(L, 5, 1);
        lua_rawgeti(L, 5, 2);
        own = lua_rawequal(L, -2, 4) && lua_rawequal(L, -1, 1);
        lua_pop(L, 2);
    }
    lua_pushlstring(L, room, rlen); /* 6 */
    if (own) {
        lua_pushvalue(L, 6);
        if (lua_rawget(L, 5) == LUA_TSTRING) { /* 7: a hit (the room is ready) */
            lua_pushvalue(L, 6);
            return 2;
        }
        lua_pop(L, 1);
    }
    if (cr_registry_state(g->r, room, rlen) != CR_ROOM_READY) {
        lua_pushnil(L);
        return 1;
    }
    cr_answer a;
    memset(&a, 0, sizeof a);
    a.room = (cr_sv){room, rlen};
    a.ready = true;
    a.focus_jid = (cr_sv){fj, flen};
    if (cr_answer_render_json(&a, &c->acfg, &c->out, &err) != CR_OK) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, c->out.data, c->out.len); /* 7 */
    if (!own || g->ncached >= CACHE_MAX) { /* a new cache for this codec and focus JID */
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, 4);
        lua_rawseti(L, -2, 1);
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, 2);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 3, 2);
        lua_replace(L, 5);
        g->ncached = 0;
    }
    lua_pushvalue(L, 6);
    lua_pushvalue(L, 7);
    lua_rawset(L, 5);
    g->ncached++;
    lua_pushvalue(L, 6);
    return 2;
}

/* codec:ready_stanza(element, registry, focus_jid) -> answer element, room | nil
 * The XMPP door's common case in one call: reads element (the IQ's <conference/>, as
 * parse_stanza does) and, when it is a valid request whose `room` string is, byte for byte, a
 * ready key of registry, returns what render_stanza gives for { room = room, ready = true,
 * focus_jid = focus_jid, visitors_supported = false } (a fresh element: the caller adds it to its
 * reply) and the room. Anything else → nil (the caller takes the general path). Builds no request
 * table. Needs the codec option stanza_mt (else nil). */
static int l_ready_stanza(lua_State *L) {
    codec *c = check_codec(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lregistry *g = check_registry_at(L, 3);
    size_t flen;
    const char *fj = luaL_checklstring(L, 4, &flen);
    lua_settop(L, 4);
    luaL_checkstack(L, 16, NULL); /* as parse_stanza */
    lua_pushvalue(L, 2);          /* 5: the element, the top for stanza_request */
    cr_error err;
    const cr_request *r = &c->req;
    if (stanza_request(L, 5, &c->lim, &c->req, &err) != CR_OK || !r->room.set) {
        lua_settop(L, 4);
        lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 4);
    const char *room = cr_request_str(r, r->room);
    cr_answer a;
    memset(&a, 0, sizeof a);
    a.room = (cr_sv){room, r->room.len};
    a.ready = true;
    a.focus_jid = (cr_sv){fj, flen};
    if (cr_registry_state(g->r, room, r->room.len) != CR_ROOM_READY || cr_answer_check(&a, &err) != CR_OK ||
        lua_getiuservalue(L, 1, 1) != LUA_TTABLE) { /* 5: stanza_mt */
        lua_settop(L, 4);
        lua_pushnil(L);
        return 1;
    }
    push_stanza(L, c, &a, 5); /* 6 */
    lua_pushlstring(L, room, r->room.len);
    return 2;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *meta) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* ---- legacy jabber:iq:conference payload (legacy section) --------------------------------- */

#define LEGACY_MT "conference_request_native.legacy_parser"

typedef struct {
    cr_legacy_parser *p;   /* owned */
    cr_legacy_request req; /* owned, reused */
    bool closed;
} legacy_parser;

static void legacy_release(legacy_parser *lp) {
    if (lp->closed) return;
    lp->closed = true;
    cr_legacy_parser_free(lp->p);
    lp->p = NULL;
    cr_legacy_request_free(&lp->req);
}

/* native.legacy_parser([config]) -> parser
 * config: max_nicks (16), max_nick (1023), max_secret (1023), max_name (1023), max_depth (8) */
static int l_legacy_parser(lua_State *L) {
    static const char *const keys[] = {"max_nicks", "max_nick", "max_secret", "max_name",
                                       "max_depth", NULL};
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, keys);
    cr_legacy_limits lim;
    cr_legacy_limits_default(&lim);
    opt_limit(L, 1, "max_nicks", &lim.max_nicks);
    opt_limit(L, 1, "max_nick", &lim.max_nick);
    opt_limit(L, 1, "max_secret", &lim.max_secret);
    opt_limit(L, 1, "max_name", &lim.max_name);
    opt_limit(L, 1, "max_depth", &lim.max_depth);
    legacy_parser *lp = lua_newuserdatauv(L, sizeof *lp, 0);
    memset(lp, 0, sizeof *lp);
    lp->closed = true; /* nothing to free until initialized */
    luaL_setmetatable(L, LEGACY_MT);
    cr_legacy_request_init(&lp->req);
    lp->p = cr_legacy_parser_new(&lim);
    if (!lp->p) return luaL_error(L, "out of memory");
    lp->closed = false;
    return 1;
}

static legacy_parser *check_legacy(lua_State *L) {
    legacy_parser *lp = luaL_checkudata(L, 1, LEGACY_MT);
    if (lp->closed) luaL_error(L, "legacy parser is closed");
    return lp;
}

static void legacy_set_str(lua_State *L, const cr_legacy_request *r, cr_str s, const char *key) {
    if (!s.set) return;
    lua_pushlstring(L, cr_legacy_str(r, s), s.len);
    lua_setfield(L, -2, key);
}

/* parser:parse(bytes) -> { nicks = { … }, secret = s|nil, name = s|nil, privacy = boolean }
 *                      | nil, condition, text */
static int l_legacy_parse(lua_State *L) {
    legacy_parser *lp = check_legacy(L);
    size_t len;
    const char *bytes = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    cr_error err = {CR_OK, ""};
    if (cr_legacy_parse(lp->p, bytes, len, &lp->req, &err) != CR_OK) return push_error(L, &err);
    const cr_legacy_request *r = &lp->req;
    lua_createtable(L, 0, 4);
    lua_createtable(L, (int)r->nnicks, 0);
    for (size_t i = 0; i < r->nnicks; i++) {
        lua_pushlstring(L, cr_legacy_str(r, r->nicks[i]), r->nicks[i].len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "nicks");
    legacy_set_str(L, r, r->secret, "secret");
    legacy_set_str(L, r, r->name, "name");
    lua_pushboolean(L, r->privacy);
    lua_setfield(L, -2, "privacy");
    return 1;
}

/* native.legacy_nick_is_id(nick) -> boolean (40 hex digits: the shape of a participant id) */
static int l_legacy_nick_is_id(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    lua_pushboolean(L, cr_legacy_nick_is_id(s, len));
    return 1;
}

static int l_legacy_gc(lua_State *L) {
    legacy_release(luaL_checkudata(L, 1, LEGACY_MT));
    return 0;
}

static int l_legacy_tostring(lua_State *L) {
    legacy_parser *lp = luaL_checkudata(L, 1, LEGACY_MT);
    lua_pushfstring(L, "legacy_parser: %p%s", (void *)lp, lp->closed ? " (closed)" : "");
    return 1;
}

/* Registers the legacy class and adds legacy_parser / legacy_nick_is_id to the module table on
 * top of the stack. */
static void open_legacy(lua_State *L) {
    static const luaL_Reg methods[] = {{"parse", l_legacy_parse}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_legacy_gc}, {"__close", l_legacy_gc},
                                    {"__tostring", l_legacy_tostring}, {NULL, NULL}};
    new_class(L, LEGACY_MT, methods, meta);
    lua_pushcfunction(L, l_legacy_parser);
    lua_setfield(L, -2, "legacy_parser");
    lua_pushcfunction(L, l_legacy_nick_is_id);
    lua_setfield(L, -2, "legacy_nick_is_id");
}
/* ---- end of the legacy section ------------------------------------------------------------ */

/* ---- JWT verification (jwt section) ------------------------------------------------------- */

#include <math.h> /* isfinite, floor; here so that this section stays self-contained */

#define JWT_MT "conference_request_native.jwt_verifier"

typedef struct {
    cr_jwt_verifier *v;   /* owned; NULL once closed */
    cr_jwt_claims claims; /* owned, reused by every verify */
} ljwt;

static void jwt_release(ljwt *j) {
    cr_jwt_verifier_free(j->v);
    j->v = NULL;
    cr_jwt_claims_free(&j->claims);
}

static ljwt *check_jwt(lua_State *L) {
    ljwt *j = luaL_checkudata(L, 1, JWT_MT);
    if (!j->v) luaL_error(L, "jwt verifier is closed");
    return j;
}

/* Raises "option 'key': text" for a failed cr_jwt_* configuration call. */
static void jwt_config_check(lua_State *L, cr_condition c, const char *key, const cr_error *err) {
    if (c) luaL_error(L, "option '%s': %s", key, err->text);
}

/* Adds every string of the array option `key` of the config (index 1) with add. */
static void jwt_opt_names(lua_State *L, ljwt *j, const char *key,
                          cr_condition (*add)(cr_jwt_verifier *, const char *, size_t, cr_error *)) {
    int t = lua_getfield(L, 1, key); /* 3 */
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != LUA_TTABLE) luaL_error(L, "option '%s' must be an array of strings", key);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        if (!lua_isinteger(L, -2) || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be an array of strings", key);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len); /* used while the value is on the stack */
        cr_error err;
        jwt_config_check(L, add(j->v, s, len, &err), key, &err);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* native.jwt_verifier(config) -> verifier
 * config: hs256_secret = s, public_keys = { [kid] = PEM text }, issuers = { s, … },
 *         audiences = { s, … }, domain = s, leeway = seconds (>= 0), max_token = bytes.
 * Raises on a wrong type, an unknown option, an unreadable PEM or an unsupported key. */
static int l_jwt_verifier(lua_State *L) {
    static const char *const keys[] = {"hs256_secret", "public_keys", "issuers", "audiences",
                                       "domain", "leeway", "max_token", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, keys);
    ljwt *j = lua_newuserdatauv(L, sizeof *j, 0); /* 2 */
    memset(j, 0, sizeof *j);
    cr_jwt_claims_init(&j->claims);
    luaL_setmetatable(L, JWT_MT); /* from here on, __gc frees whatever was built */
    j->v = cr_jwt_verifier_new();
    if (!j->v) return luaL_error(L, "out of memory");
    cr_error err;

    int t = lua_getfield(L, 1, "hs256_secret"); /* 3 */
    if (t == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 3, &len);
        jwt_config_check(L, cr_jwt_set_hs256_secret(j->v, s, len, &err), "hs256_secret", &err);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'hs256_secret' must be a string");
    }
    lua_pop(L, 1);

    t = lua_getfield(L, 1, "public_keys"); /* 3 */
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "option 'public_keys' must map key ids (strings) to PEM text");
            size_t kl, pl;
            const char *kid = lua_tolstring(L, -2, &kl), *pem = lua_tolstring(L, -1, &pl);
            cr_condition c = cr_jwt_add_public_key(j->v, kid, kl, pem, pl, &err);
            if (c) luaL_error(L, "option 'public_keys': key '%s': %s", kid, err.text);
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'public_keys' must be a table");
    }
    lua_pop(L, 1);

    jwt_opt_names(L, j, "issuers", cr_jwt_add_issuer);
    jwt_opt_names(L, j, "audiences", cr_jwt_add_audience);

    t = lua_getfield(L, 1, "domain"); /* 3 */
    if (t == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 3, &len);
        jwt_config_check(L, cr_jwt_set_domain(j->v, s, len, &err), "domain", &err);
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'domain' must be a string");
    }
    lua_pop(L, 1);

    t = lua_getfield(L, 1, "leeway"); /* 3 */
    if (t == LUA_TNUMBER) {
        if (cr_jwt_set_leeway(j->v, (double)lua_tonumber(L, 3), &err))
            luaL_error(L, "option 'leeway' must be a finite number >= 0");
    } else if (t != LUA_TNIL) {
        luaL_error(L, "option 'leeway' must be a finite number >= 0");
    }
    lua_pop(L, 1);

    size_t max_token = CR_JWT_MAX_TOKEN_DEFAULT;
    opt_limit(L, 1, "max_token", &max_token);
    jwt_config_check(L, cr_jwt_set_max_token(j->v, max_token, &err), "max_token", &err);
    lua_settop(L, 2);
    return 1;
}

static void jwt_set_str(lua_State *L, const cr_jwt_claims *c, cr_str s, const char *key) {
    if (!s.set) return;
    lua_pushlstring(L, cr_jwt_claims_str(c, s), s.len);
    lua_setfield(L, -2, key);
}

/* An integral time as a Lua integer, any other as a float. */
static void jwt_push_time(lua_State *L, double d) {
    if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, (lua_Number)d);
}

/* verifier:verify(token, room_name, now [, tenant]) -> claims | nil, condition, text
 * token, room_name, tenant: strings; now: a finite number (Unix time, seconds). A refusal is
 * nil, "not-authorized", text (the text never quotes the token). Wrong argument types raise. */
static int l_jwt_verify(lua_State *L) {
    lua_settop(L, 5);
    ljwt *j = check_jwt(L);
    luaL_checktype(L, 2, LUA_TSTRING);
    luaL_checktype(L, 3, LUA_TSTRING);
    luaL_checktype(L, 4, LUA_TNUMBER);
    double now = (double)lua_tonumber(L, 4);
    luaL_argcheck(L, isfinite(now), 4, "now must be a finite number");
    const char *tenant = NULL;
    size_t tl = 0, len, rl;
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TSTRING);
        tenant = lua_tolstring(L, 5, &tl);
    }
    const char *token = lua_tolstring(L, 2, &len), *room = lua_tolstring(L, 3, &rl);
    cr_error err;
    if (cr_jwt_verify(j->v, token, len, room, rl, tenant, tl, now, &j->claims, &err))
        return push_error(L, &err);
    const cr_jwt_claims *c = &j->claims;
    lua_createtable(L, 0, 11);
    lua_pushstring(L, cr_jwt_alg_name(c->alg));
    lua_setfield(L, -2, "alg");
    jwt_set_str(L, c, c->kid, "kid");
    jwt_set_str(L, c, c->iss, "iss");
    jwt_set_str(L, c, c->sub, "sub");
    jwt_set_str(L, c, c->room, "room");
    jwt_set_str(L, c, c->user_id, "user_id");
    jwt_set_str(L, c, c->group, "group");
    if (c->has_exp) {
        jwt_push_time(L, c->exp);
        lua_setfield(L, -2, "exp");
    }
    if (c->has_nbf) {
        jwt_push_time(L, c->nbf);
        lua_setfield(L, -2, "nbf");
    }
    if (c->moderator >= 0) {
        lua_pushboolean(L, c->moderator);
        lua_setfield(L, -2, "moderator");
    }
    return 1;
}

static int l_jwt_gc(lua_State *L) {
    jwt_release(luaL_checkudata(L, 1, JWT_MT));
    return 0;
}

static int l_jwt_tostring(lua_State *L) {
    ljwt *j = luaL_checkudata(L, 1, JWT_MT);
    if (!j->v) lua_pushliteral(L, "conference_request_native.jwt_verifier (closed)");
    else
        lua_pushfstring(L, "conference_request_native.jwt_verifier (%d public keys)",
                        (int)cr_jwt_key_count(j->v));
    return 1;
}

/* Registers the verifier class and adds jwt_verifier to the module table on top of the stack. */
static void open_jwt(lua_State *L) {
    static const luaL_Reg methods[] = {{"verify", l_jwt_verify}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_jwt_gc}, {"__close", l_jwt_gc},
                                    {"__tostring", l_jwt_tostring}, {NULL, NULL}};
    new_class(L, JWT_MT, methods, meta);
    lua_pushcfunction(L, l_jwt_verifier);
    lua_setfield(L, -2, "jwt_verifier");
}
/* ---- end of the jwt section --------------------------------------------------------------- */

/* ---- visitor nodes (vnodes section) -------------------------------------------------------- */

#define VNODES_MT "conference_request_native.vnodes"

typedef struct {
    cr_vnodes *s; /* owned; NULL once closed */
} lvnodes;

static lvnodes *check_vnodes(lua_State *L) {
    lvnodes *v = luaL_checkudata(L, 1, VNODES_MT);
    if (!v->s) luaL_error(L, "vnodes set is closed");
    return v;
}

/* A time argument: a finite number (the caller's clock, seconds). */
static double vnodes_time(lua_State *L, int arg) {
    double t = (double)luaL_checknumber(L, arg);
    luaL_argcheck(L, isfinite(t), arg, "now must be a finite number");
    return t;
}

/* The index of the node named by the string argument arg; false when unknown. */
static bool vnodes_node(lua_State *L, const lvnodes *v, int arg, size_t *node) {
    size_t len;
    const char *id = luaL_checklstring(L, arg, &len);
    return cr_vnodes_find(v->s, id, len, node);
}

static int vnodes_unknown(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "item-not-found");
    lua_pushliteral(L, "unknown visitor node");
    return 3;
}

/* Reads node table at index idx (a config entry, position pos) into the set. */
static void vnodes_add(lua_State *L, lvnodes *v, int idx, lua_Integer pos) {
    static const char *const keys[] = {"id", "focus_jid", "weight", "capacity", NULL};
    if (lua_type(L, idx) != LUA_TTABLE) luaL_error(L, "option 'nodes': entry %I is not a table", pos);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool known = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (size_t i = 0; keys[i]; i++)
                if (strcmp(keys[i], lua_tostring(L, -1)) == 0) known = true;
        if (!known) luaL_error(L, "option 'nodes': entry %I has an unknown field", pos);
    }
    if (lua_getfield(L, idx, "id") != LUA_TSTRING) /* +1 */
        luaL_error(L, "option 'nodes': entry %I needs a string 'id'", pos);
    if (lua_getfield(L, idx, "focus_jid") != LUA_TSTRING) /* +2 */
        luaL_error(L, "option 'nodes': entry %I needs a string 'focus_jid'", pos);
    double weight = 1;
    int t = lua_getfield(L, idx, "weight"); /* +3 */
    if (t == LUA_TNUMBER) weight = (double)lua_tonumber(L, -1);
    else if (t != LUA_TNIL) weight = -1;
    if (!(isfinite(weight) && weight > 0))
        luaL_error(L, "option 'nodes': entry %I: 'weight' must be a finite number > 0", pos);
    lua_Integer cap = 500;
    t = lua_getfield(L, idx, "capacity"); /* +4 */
    if (t != LUA_TNIL) {
        int isnum = 0;
        cap = t == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
        if (!isnum) cap = 0;
    }
    if (cap < 1 || cap > (lua_Integer)UINT32_MAX)
        luaL_error(L, "option 'nodes': entry %I: 'capacity' must be an integer from 1 to %I", pos,
                   (lua_Integer)UINT32_MAX);
    size_t il, fl;
    const char *id = lua_tolstring(L, -4, &il), *focus = lua_tolstring(L, -3, &fl);
    cr_error err;
    if (cr_vnodes_add_node(v->s, id, il, focus, fl, weight, (uint32_t)cap, &err))
        luaL_error(L, "option 'nodes': entry %I: %s", pos, err.text);
    lua_pop(L, 4);
}

/* native.vnodes(config) -> set
 * config: nodes = { { id = s, focus_jid = s, weight = n (1), capacity = n (500) }, … },
 *         pending_window = seconds (60), max_rooms = n (100000), max_pending = n (1000000),
 *         max_node_rooms = n (max_rooms: rooms one node may report visitors in).
 * Raises on a bad config (duplicate id, weight <= 0, capacity < 1, unknown field, …). */
static int l_vnodes(lua_State *L) {
    static const char *const keys[] = {"nodes", "pending_window", "max_rooms", "max_pending",
                                       "max_node_rooms", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, keys);
    cr_vnodes_config cfg;
    cr_vnodes_config_default(&cfg);
    int t = lua_getfield(L, 1, "pending_window");
    if (t != LUA_TNIL) {
        double w = t == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(isfinite(w) && w >= 0))
            luaL_error(L, "option 'pending_window' must be a finite number >= 0");
        cfg.pending_window = w;
    }
    lua_pop(L, 1);
    opt_limit(L, 1, "max_rooms", &cfg.max_rooms);
    opt_limit(L, 1, "max_pending", &cfg.max_pending);
    opt_limit(L, 1, "max_node_rooms", &cfg.max_node_rooms);
    if (cfg.max_pending > CR_VNODES_MAX_PENDING_LIMIT)
        luaL_error(L, "option 'max_pending' is too large (at most %I)",
                   (lua_Integer)CR_VNODES_MAX_PENDING_LIMIT);
    if (lua_getfield(L, 1, "nodes") != LUA_TTABLE) /* 2 */
        luaL_error(L, "option 'nodes' must be an array of node tables");
    lvnodes *v = lua_newuserdatauv(L, sizeof *v, 0); /* 3 */
    v->s = NULL;
    luaL_setmetatable(L, VNODES_MT); /* from here on, __gc frees whatever was built */
    v->s = cr_vnodes_new(&cfg);
    if (!v->s) return luaL_error(L, "out of memory");
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2), count = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) { /* only the array part: keys 1..n */
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
            luaL_error(L, "option 'nodes' must be an array of node tables");
        count++;
    }
    if (count != n) luaL_error(L, "option 'nodes' must be an array of node tables");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i); /* 4 */
        vnodes_add(L, v, 4, i);
        lua_pop(L, 1);
    }
    lua_settop(L, 3);
    return 1;
}

/* set:choose(room, now) -> node_id, focus_jid, how | nil, "none"
 * Records one pending redirect for (room, node) at now. */
static int l_vnodes_choose(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t len, node;
    const char *room = luaL_checklstring(L, 2, &len);
    double now = vnodes_time(L, 3);
    lua_settop(L, 3);
    cr_vnode_how how = cr_vnodes_choose(v->s, room, len, now, &node);
    if (how == CR_VNODE_NONE) {
        lua_pushnil(L);
        lua_pushliteral(L, "none");
        return 2;
    }
    cr_vnode_info in;
    cr_vnodes_node_info(v->s, node, &in);
    lua_pushlstring(L, in.id, in.id_len);
    lua_pushlstring(L, in.focus_jid, in.focus_jid_len);
    lua_pushstring(L, cr_vnode_how_name(how));
    return 3;
}

/* set:uses(room [, now]) -> boolean: the room has visitors reported or redirects pending on some
 * node (with now: redirects older than the window dropped first). */
static int l_vnodes_uses(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    if (!lua_isnoneornil(L, 3)) cr_vnodes_expire(v->s, vnodes_time(L, 3));
    lua_settop(L, 3);
    lua_pushboolean(L, cr_vnodes_uses(v->s, room, len));
    return 1;
}

/* A visitor count argument: an integer (raises otherwise); out of 0..max → false. */
static bool vnodes_count_arg(lua_State *L, int arg, lua_Integer max, lua_Integer *out) {
    lua_Integer n = luaL_checkinteger(L, arg);
    *out = n;
    return n >= 0 && n <= max;
}

static int vnodes_bad_count(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "bad-request");
    lua_pushliteral(L, "visitor count out of range");
    return 3;
}

/* set:report(node_id, room, visitors, now) -> true | nil, condition, text */
static int l_vnodes_report(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t node, len;
    bool known = vnodes_node(L, v, 2, &node);
    const char *room = luaL_checklstring(L, 3, &len);
    lua_Integer visitors;
    bool in_range = vnodes_count_arg(L, 4, (lua_Integer)UINT32_MAX, &visitors);
    double now = vnodes_time(L, 5);
    lua_settop(L, 5);
    if (!known) return vnodes_unknown(L);
    if (!in_range) return vnodes_bad_count(L);
    cr_error err;
    if (cr_vnodes_report(v->s, node, room, len, (uint32_t)visitors, now, &err))
        return push_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* set:report_total(node_id, visitors, now) -> true | nil, condition, text */
static int l_vnodes_report_total(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t node;
    bool known = vnodes_node(L, v, 2, &node);
    lua_Integer visitors;
    bool in_range = vnodes_count_arg(L, 3, LUA_MAXINTEGER, &visitors);
    double now = vnodes_time(L, 4);
    lua_settop(L, 4);
    if (!known) return vnodes_unknown(L);
    if (!in_range) return vnodes_bad_count(L);
    cr_vnodes_report_total(v->s, node, (uint64_t)visitors, now);
    lua_pushboolean(L, 1);
    return 1;
}

/* set:snapshot_begin(node_id) -> true | nil, "item-not-found", text
 * Reports for the node from now on mark their rooms (a full report in parts, issue 12). */
static int l_vnodes_snapshot_begin(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t node;
    bool known = vnodes_node(L, v, 2, &node);
    lua_settop(L, 2);
    if (!known) return vnodes_unknown(L);
    cr_vnodes_snapshot_begin(v->s, node);
    lua_pushboolean(L, 1);
    return 1;
}

/* set:snapshot_end(node_id, now) -> cleared | nil, "item-not-found", text
 * The node's rooms not reported since snapshot_begin get 0 visitors; cleared = how many. */
static int l_vnodes_snapshot_end(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t node;
    bool known = vnodes_node(L, v, 2, &node);
    double now = vnodes_time(L, 3);
    lua_settop(L, 3);
    if (!known) return vnodes_unknown(L);
    size_t cleared = cr_vnodes_snapshot_end(v->s, node, now);
    lua_pushinteger(L, (lua_Integer)cleared);
    return 1;
}

/* set:set_healthy(node_id, boolean) -> true | nil, "item-not-found", text */
static int l_vnodes_set_healthy(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t node;
    bool known = vnodes_node(L, v, 2, &node);
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    lua_settop(L, 3);
    if (!known) return vnodes_unknown(L);
    cr_vnodes_set_healthy(v->s, node, lua_toboolean(L, 3));
    lua_pushboolean(L, 1);
    return 1;
}

/* set:forget_room(room): drops every (room, node) state of the room. */
static int l_vnodes_forget_room(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    lua_settop(L, 2);
    cr_vnodes_forget_room(v->s, room, len);
    return 0;
}

/* A count as a Lua integer (counts are far below 2^63). */
static void vnodes_setint(lua_State *L, const char *key, uint64_t n) {
    lua_pushinteger(L, n > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)n);
    lua_setfield(L, -2, key);
}

/* set:nodes(now) -> { { id =, focus_jid =, weight =, capacity =, healthy =, load =, visitors =,
 *                       pending =, rooms =, room_visitors =, reported_total = }, … }
 * in configured order. */
static int l_vnodes_nodes(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    double now = vnodes_time(L, 2);
    lua_settop(L, 2);
    cr_vnodes_expire(v->s, now);
    size_t n = cr_vnodes_count(v->s);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        cr_vnode_info in;
        cr_vnodes_node_info(v->s, i, &in);
        lua_createtable(L, 0, 11);
        lua_pushlstring(L, in.id, in.id_len);
        lua_setfield(L, -2, "id");
        lua_pushlstring(L, in.focus_jid, in.focus_jid_len);
        lua_setfield(L, -2, "focus_jid");
        if (in.weight == floor(in.weight) && in.weight <= 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)in.weight);
        else
            lua_pushnumber(L, (lua_Number)in.weight);
        lua_setfield(L, -2, "weight");
        vnodes_setint(L, "capacity", in.capacity);
        lua_pushboolean(L, in.healthy);
        lua_setfield(L, -2, "healthy");
        vnodes_setint(L, "load", in.load);
        vnodes_setint(L, "visitors", in.visitors);
        vnodes_setint(L, "pending", in.pending);
        vnodes_setint(L, "rooms", in.rooms);
        vnodes_setint(L, "room_visitors", in.room_visitors);
        vnodes_setint(L, "reported_total", in.reported_total);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* set:room(room, now) -> { [node_id] = { visitors =, pending = } } | nil */
static int l_vnodes_room(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    size_t len;
    const char *room = luaL_checklstring(L, 2, &len);
    double now = vnodes_time(L, 3);
    lua_settop(L, 3);
    cr_vnodes_expire(v->s, now);
    cr_vnode_pair_info pairs[CR_VNODES_MAX_NODES];
    size_t n = cr_vnodes_room_info(v->s, room, len, pairs, CR_VNODES_MAX_NODES);
    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        cr_vnode_info in;
        cr_vnodes_node_info(v->s, pairs[i].node, &in);
        lua_createtable(L, 0, 2);
        vnodes_setint(L, "visitors", pairs[i].visitors);
        vnodes_setint(L, "pending", pairs[i].pending);
        lua_setfield(L, -2, in.id); /* ids hold no NUL (XML-safe) */
    }
    return 1;
}

/* set:stats() -> { nodes =, rooms =, pairs =, pending =, dropped =, unrecorded = } */
static int l_vnodes_stats(lua_State *L) {
    lvnodes *v = check_vnodes(L);
    lua_settop(L, 1);
    cr_vnodes_stats st;
    cr_vnodes_stats_get(v->s, &st);
    lua_createtable(L, 0, 6);
    vnodes_setint(L, "nodes", st.nodes);
    vnodes_setint(L, "rooms", st.rooms);
    vnodes_setint(L, "pairs", st.pairs);
    vnodes_setint(L, "pending", st.pending);
    vnodes_setint(L, "dropped", st.dropped);
    vnodes_setint(L, "unrecorded", st.unrecorded);
    return 1;
}

static int l_vnodes_gc(lua_State *L) {
    lvnodes *v = luaL_checkudata(L, 1, VNODES_MT);
    cr_vnodes_free(v->s);
    v->s = NULL;
    return 0;
}

static int l_vnodes_tostring(lua_State *L) {
    lvnodes *v = luaL_checkudata(L, 1, VNODES_MT);
    if (!v->s) lua_pushliteral(L, "conference_request_native.vnodes (closed)");
    else
        lua_pushfstring(L, "conference_request_native.vnodes (%d nodes)",
                        (int)cr_vnodes_count(v->s));
    return 1;
}

/* Registers the set class and adds vnodes to the module table on top of the stack. */
static void open_vnodes(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"choose", l_vnodes_choose},           {"uses", l_vnodes_uses},
        {"report", l_vnodes_report},           {"report_total", l_vnodes_report_total},
        {"set_healthy", l_vnodes_set_healthy}, {"forget_room", l_vnodes_forget_room},
        {"nodes", l_vnodes_nodes},             {"room", l_vnodes_room},
        {"stats", l_vnodes_stats},             {"snapshot_begin", l_vnodes_snapshot_begin},
        {"snapshot_end", l_vnodes_snapshot_end}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_vnodes_gc}, {"__close", l_vnodes_gc},
                                    {"__tostring", l_vnodes_tostring}, {NULL, NULL}};
    new_class(L, VNODES_MT, methods, meta);
    lua_pushcfunction(L, l_vnodes);
    lua_setfield(L, -2, "vnodes");
}
/* ---- end of the vnodes section ------------------------------------------------------------ */

int luaopen_conference_request_native(lua_State *L);

int luaopen_conference_request_native(lua_State *L) {
    luaL_checkversion(L);
    static const luaL_Reg codec_methods[] = {
        {"parse_xml", l_parse_xml},     {"parse_json", l_parse_json},
        {"parse_stanza", l_parse_stanza},
        {"render_json", l_render_json}, {"render_xml", l_render_xml},
        {"render_stanza", l_render_stanza}, {"ready_json", l_ready_json},
        {"ready_stanza", l_ready_stanza}, {NULL, NULL}};
    static const luaL_Reg codec_meta[] = {
        {"__gc", l_codec_gc}, {"__close", l_codec_gc}, {"__tostring", l_codec_tostring},
        {NULL, NULL}};
    static const luaL_Reg registry_methods[] = {
        {"state", l_state},   {"set_ready", l_set_ready},   {"set_pending", l_set_pending},
        {"forget", l_forget}, {"wait", l_wait},             {"cancel", l_cancel},
        {"expire", l_expire}, {"notify_due", l_notify_due}, {"stats", l_stats},
        {"each", l_each},     {NULL, NULL}};
    static const luaL_Reg registry_meta[] = {
        {"__gc", l_registry_gc}, {"__close", l_registry_gc}, {"__tostring", l_registry_tostring},
        {"__len", l_len}, {NULL, NULL}};
    new_class(L, CODEC_MT, codec_methods, codec_meta);
    new_class(L, REGISTRY_MT, registry_methods, registry_meta);

    lua_createtable(L, 0, 5);
    lua_pushcfunction(L, l_codec);
    lua_setfield(L, -2, "codec");
    lua_pushcfunction(L, l_registry);
    lua_setfield(L, -2, "registry");
    push_conditions(L);
    lua_setfield(L, -2, "conditions");
    lua_pushliteral(L, NATIVE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    open_legacy(L); /* legacy section */
    open_jwt(L);    /* jwt section */
    open_vnodes(L); /* vnodes section */
    return 1;
}
