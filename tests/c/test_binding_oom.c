/* test_binding_oom.c — the binding (lua_native.c) in a lua_State whose allocator fails on demand
 * (busted cannot reach lua_setallocf): for every registry call that hands waiters over between the
 * core and Lua (set_ready, forget, expire, wait), the Lua allocator is made to fail after k
 * successful allocations, for k = 0, 1, 2, … until the call succeeds. After each attempt, with the
 * allocator healthy again, every waiter must come back exactly once (from the call itself, or from
 * the registry afterwards): none lost, none twice, and the core's count agrees with Lua's. Linked
 * with liblua5.4 (this test only; the module itself is not). */
#include "ctest.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdlib.h>

int luaopen_conference_request_native(lua_State *L);

typedef struct {
    bool limited;
    size_t budget; /* growing allocations left while limited */
    size_t failures;
} alloc_state;

/* Frees and shrinks always work; while limited, a new or growing block fails once the budget is
 * spent (and keeps failing: Lua's emergency collection retries). */
static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    alloc_state *a = ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (a->limited && (ptr == NULL || nsize > osize)) {
        if (a->budget == 0) {
            a->failures++;
            return NULL;
        }
        a->budget--;
    }
    return realloc(ptr, nsize);
}

static const char *const SETUP =
    "native = require 'conference_request_native'\n"
    "N = 32 -- the id table is full: the next waiter needs it to grow\n"
    "g = native.registry()\n"
    "assert(g:set_pending('r@d'))\n"
    "W = {}\n"
    "for i = 1, N do W[i] = { i = i }; assert(g:wait('r@d', W[i], i)) end\n"
    "extra = { i = 'extra' }\n"
    "result, id = false, false -- globals exist before the allocator fails\n"
    "v = native.vnodes { nodes = { { id = 'v1', focus_jid = 'f@v1' }, { id = 'v2', focus_jid = 'f@v2' } } }\n"
    "assert(v:report('v1', 'r@d', 1, 0))\n"
    "VN = false\n"
    "C = native.codec({ stanza_mt = {} }); assert(g:set_ready('q@d')); A, R = false, false -- codec:ready_*\n"
    /* every waiter exactly once: from the call's result, then from the registry */
    "function verify(first, expect_extra)\n"
    "  local want = N + (expect_extra and 1 or 0)\n"
    "  local handed = first and #first or 0\n"
    "  assert(g:stats().waiters == want - handed, 'core count ' .. g:stats().waiters .. ' ~= ' .. (want - handed))\n"
    "  local seen, n = {}, 0\n"
    "  local function take(list)\n"
    "    for _, w in ipairs(list) do assert(not seen[w], 'handed back twice'); seen[w] = true; n = n + 1 end\n"
    "  end\n"
    "  if first then take(first) end\n"
    "  take(g:expire(math.huge))\n"
    "  take(g:forget('r@d'))\n"
    "  for i = 1, N do assert(seen[W[i]], 'waiter ' .. i .. ' lost') end\n"
    "  assert(seen[extra] == (expect_extra or nil), 'extra waiter')\n"
    "  assert(n == want, 'count')\n"
    "  assert(g:stats().waiters == 0)\n"
    "end\n";

typedef struct {
    const char *name;
    const char *op;         /* sets `result` (a waiter list) or `id` */
    const char *check;      /* run afterwards with the allocator healthy */
} scenario;

static const scenario SCENARIOS[] = {
    {"set_ready", "result = g:set_ready('r@d')", "verify(result or nil, false)"},
    {"forget", "result = g:forget('r@d')", "verify(result or nil, false)"},
    {"expire", "result = g:expire(N / 2)", "verify(result or nil, false)"},
    /* a second expire after the interrupted one hands back the held waiters, in order */
    {"expire again", "result = g:expire(N / 2)",
     "local all = {}\n"
     "for _, w in ipairs(result or {}) do all[#all + 1] = w end\n"
     "for _, w in ipairs(g:expire(N / 2)) do all[#all + 1] = w end\n"
     "assert(#all == N / 2)\n"
     "for i, w in ipairs(all) do assert(w == W[i], 'order') end\n"
     "verify(all, false)"},
    {"wait", "id = g:wait('r@d', extra, 1e9)", "verify(nil, id ~= false)"},
    /* visitor nodes: a constructor interrupted half-way frees what it built (ASan: no leak); an
     * interrupted call leaves the set consistent (at most the one redirect it recorded) */
    {"vnodes", "VN = native.vnodes { nodes = { { id = 'a', focus_jid = 'f@a' }, { id = 'b', focus_jid = 'f@b', weight = 2 } } }",
     "collectgarbage(); assert(VN == false or tostring(VN) == 'conference_request_native.vnodes (2 nodes)')"},
    {"vnodes choose", "result = { v:choose('new@d', 1) }",
     "local st = v:stats(); assert(st.pending <= 1 and st.rooms <= 2 and st.nodes == 2)\n"
     "if result then assert(v:uses('new@d') and #result == 3) end\n"
     "assert(v:choose('new@d', 1))"},
    /* the fast path's answer cache: an interrupted call leaves it consistent (a later call answers
     * right, forget drops what it holds) */
    {"ready_json", "A, R = C:ready_json('{\"room\":\"q@d\"}', g, 'f')",
     "local a, r = C:ready_json('{\"room\":\"q@d\"}', g, 'f')\n"
     "assert(a == C:render_json({ room = 'q@d', ready = true, focus_jid = 'f', visitors_supported = false }) and r == 'q@d')\n"
     "assert(A == false or (A == a and R == r))\n"
     "g:forget('q@d'); assert(C:ready_json('{\"room\":\"q@d\"}', g, 'f') == nil)\n"
     "assert(g:set_ready('q@d')); assert(C:ready_json('{\"room\":\"q@d\"}', g, 'f') == a)"},
    {"ready_stanza", "A, R = C:ready_stanza({ name = 'conference', attr = { xmlns = 'http://jitsi.org/protocol/focus', room = 'q@d' }, tags = {} }, g, 'f')",
     "assert(A == false or (A.attr.room == 'q@d' and R == 'q@d'))"},
    {"vnodes nodes", "result = v:nodes(1)", "assert(#v:nodes(1) == 2 and v:room('r@d', 1).v1.visitors == 1)"},
};

/* Runs one scenario with the allocator failing after k allocations; returns true when the call
 * itself succeeded. */
static bool attempt(const scenario *s, size_t k) {
    alloc_state a = {false, 0, 0};
    lua_State *L = lua_newstate(test_alloc, &a);
    CHECK(L != NULL);
    if (!L) return true;
    luaL_openlibs(L);
    luaL_requiref(L, "conference_request_native", luaopen_conference_request_native, 0);
    lua_pop(L, 1);
    if (luaL_dostring(L, SETUP) != LUA_OK) {
        fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
        CHECK(false);
        lua_close(L);
        return true;
    }
    lua_gc(L, LUA_GCCOLLECT);
    if (luaL_loadstring(L, s->op) != LUA_OK) {
        CHECK(false);
        lua_close(L);
        return true;
    }
    a.budget = k;
    a.limited = true;
    int rc = lua_pcall(L, 0, 0, 0);
    a.limited = false;
    bool ok = rc == LUA_OK;
    if (!ok) lua_pop(L, 1);
    if (luaL_dostring(L, s->check) != LUA_OK) {
        fprintf(stderr, "%s, allocator failing after %zu: %s\n", s->name, k, lua_tostring(L, -1));
        CHECK(false);
        lua_pop(L, 1);
    } else {
        CHECK(true);
    }
    lua_close(L);
    return ok;
}

int main(void) {
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
        const scenario *s = &SCENARIOS[i];
        size_t k = 0, failed_calls = 0;
        while (!attempt(s, k) && k < 10000) {
            failed_calls++;
            k++;
        }
        printf("%s: interrupted by the allocator at %zu points, then succeeded\n", s->name, failed_calls);
        CHECK(failed_calls > 0); /* the call allocates, so the failure paths were taken */
        CHECK(k < 10000);
    }
    return ctest_done("test_binding_oom");
}
