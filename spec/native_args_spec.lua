-- Argument discipline of the binding (native/lua_native.c): every function, called with too few,
-- too many and wrong arguments (nil, booleans, NaN, ±inf, huge integers and floats, empty and
-- large strings, tables, functions, threads, userdata of another class), raises a clean Lua error
-- or answers as documented (a result of the documented shape, or nil, condition, text) — and
-- never crashes. Run under ASan/UBSan and valgrind by `make check-asan` (tests/check-asan-lua.sh).
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"

local NS = "http://jitsi.org/protocol/focus"
local REQ = "<conference xmlns='" .. NS .. "' room='room1@conference.localhost'><property name='a' value='1'/></conference>"
local JSON = '{"room":"room1@conference.localhost","properties":{"a":"1"}}'
local LEGACY = "<query xmlns='jabber:iq:conference'><nick>alice</nick><secret>s</secret></query>"
local ANSWER = { room = "room1@conference.localhost", ready = true, focus_jid = "focus@auth.localhost/focus" }

local BAD = {
	{ "nil", nil }, { "true", true }, { "false", false }, { "zero", 0 }, { "-1", -1 }, { "1.5", 1.5 },
	{ "NaN", 0 / 0 }, { "inf", math.huge }, { "-inf", -math.huge }, { "maxinteger", math.maxinteger },
	{ "mininteger", math.mininteger }, { "2^63", 2.0 ^ 63 }, { "1e308", 1e308 }, { "empty string", "" },
	{ "string", "x" }, { "NUL string", "a\0b" }, { "large string", string.rep("<a>", 40000) },
	{ "table", {} }, { "array", { 1, 2, 3 } }, { "function", print }, { "thread", coroutine.create(print) },
	{ "file", io.stdout },
}
-- a userdata of each class, to be passed where another is expected
local VNODES = { nodes = { { id = "v1", focus_jid = "focus@v1.meet.jitsi", weight = 1, capacity = 5 },
	{ id = "v2", focus_jid = "focus@v2.meet.jitsi", weight = 2, capacity = 5 } } }
local OTHER = { { "codec", native.codec() }, { "registry", native.registry() }, { "legacy parser", native.legacy_parser() },
	{ "vnodes", native.vnodes(VNODES) } }
for _, o in ipairs(OTHER) do BAD[#BAD + 1] = o end

local conditions = native.conditions

-- nil, condition, text
local function is_triple(r)
	return r.n == 3 and r[1] == nil and type(r[2]) == "string" and conditions[r[2]] ~= nil
		and type(r[3]) == "string" and #r[3] > 0
end

local function is_request(r)
	return r.n == 1 and type(r[1]) == "table" and type(r[1].room) == "string" and type(r[1].properties) == "table"
end

local function one(kind)
	return function(r) return r.n == 1 and type(r[1]) == kind end
end

local function either(a, b) return function(r) return a(r) or b(r) end end

local function is_state(r)
	return r.n == 1 and (r[1] == "absent" or r[1] == "pending" or r[1] == "ready")
end

local function is_id(r) return r.n == 1 and math.type(r[1]) == "integer" and r[1] > 0 end

local function is_waiters(r)
	if r.n ~= 1 or type(r[1]) ~= "table" then return false end
	for k in pairs(r[1]) do if math.type(k) ~= "integer" then return false end end
	return true
end

-- Every function: how to make a fresh receiver and good arguments, and the documented results.
local function codec() return native.codec({ stanza_mt = st.stanza_mt }) end
local function pending_registry()
	local g = native.registry()
	assert(g:set_pending("r@d"))
	return g
end
local function vnodes()
	local v = native.vnodes(VNODES)
	assert(v:report("v1", "r@d", 1, 0))
	return v
end
local function is_true(r) return r.n == 1 and r[1] == true end
local function is_choice(r)
	return (r.n == 3 and type(r[1]) == "string" and type(r[2]) == "string" and type(r[3]) == "string")
		or (r.n == 2 and r[1] == nil and r[2] == "none")
end
local function is_nothing(r) return r.n == 0 end
local FUNCTIONS = {
	{ "native.vnodes", function() return native.vnodes, { VNODES } end, 1, one("userdata") },
	{ "vnodes:choose", function() local v = vnodes(); return v.choose, { v, "r@d", 10 } end, 3, is_choice },
	{ "vnodes:uses", function() local v = vnodes(); return v.uses, { v, "r@d", 10 } end, 3, one("boolean") },
	{ "vnodes:report", function() local v = vnodes(); return v.report, { v, "v2", "r@d", 3, 10 } end, 5, either(is_true, is_triple) },
	{ "vnodes:report_total", function() local v = vnodes(); return v.report_total, { v, "v2", 3, 10 } end, 4,
		either(is_true, is_triple) },
	{ "vnodes:set_healthy", function() local v = vnodes(); return v.set_healthy, { v, "v1", false } end, 3, either(is_true, is_triple) },
	{ "vnodes:forget_room", function() local v = vnodes(); return v.forget_room, { v, "r@d" } end, 2, is_nothing },
	{ "vnodes:nodes", function() local v = vnodes(); return v.nodes, { v, 10 } end, 2, one("table") },
	{ "vnodes:room", function() local v = vnodes(); return v.room, { v, "r@d", 10 } end, 3,
		either(one("table"), function(r) return r.n == 1 and r[1] == nil end) },
	{ "vnodes:stats", function() local v = vnodes(); return v.stats, { v } end, 1, one("table") },
	{ "vnodes:snapshot_begin", function() local v = vnodes(); return v.snapshot_begin, { v, "v1" } end, 2,
		either(is_true, is_triple) },
	{ "vnodes:snapshot_end", function() local v = vnodes(); return v.snapshot_end, { v, "v1", 10 } end, 3,
		either(one("number"), is_triple) },
	{ "vnodes:__tostring", function() local v = vnodes(); return getmetatable(v).__tostring, { v } end, 1, one("string") },
	{ "vnodes:__close", function() local v = vnodes(); return getmetatable(v).__close, { v, nil } end, 1, is_nothing },
	{ "native.codec", function() return native.codec, {} end, 1, one("userdata") },
	{ "native.registry", function() return native.registry, {} end, 1, one("userdata") },
	{ "native.legacy_parser", function() return native.legacy_parser, {} end, 1, one("userdata") },
	{ "native.legacy_nick_is_id", function() return native.legacy_nick_is_id, { "alice" } end, 1, one("boolean") },
	{ "codec:parse_xml", function() local c = codec(); return c.parse_xml, { c, REQ } end, 2, either(is_request, is_triple) },
	{ "codec:parse_json", function() local c = codec(); return c.parse_json, { c, JSON } end, 2, either(is_request, is_triple) },
	{ "codec:parse_stanza", function()
		local c = codec()
		return c.parse_stanza, { c, st.stanza("conference", { xmlns = NS, room = "r@d" }) }
	end, 2, either(is_request, is_triple) },
	{ "codec:render_json", function() local c = codec(); return c.render_json, { c, ANSWER } end, 2, one("string") },
	{ "codec:render_xml", function() local c = codec(); return c.render_xml, { c, ANSWER } end, 2, one("string") },
	{ "codec:render_stanza", function() local c = codec(); return c.render_stanza, { c, ANSWER } end, 2, one("table") },
	{ "codec:ready_json", function()
		local c, g = codec(), native.registry()
		assert(g:set_ready("room1@conference.localhost"))
		return c.ready_json, { c, JSON, g, "focus.localhost" }
	end, 4, either(function(r) return r.n == 2 and type(r[1]) == "string" and type(r[2]) == "string" end,
		function(r) return r.n == 1 and r[1] == nil end) },
	{ "codec:ready_stanza", function()
		local c, g = codec(), native.registry()
		assert(g:set_ready("r@d"))
		return c.ready_stanza, { c, st.stanza("conference", { xmlns = NS, room = "r@d" }), g, "focus.localhost" }
	end, 4, either(function(r) return r.n == 2 and type(r[1]) == "table" and r[2] == "r@d" end,
		function(r) return r.n == 1 and r[1] == nil end) },
	{ "codec:__tostring", function() local c = codec(); return getmetatable(c).__tostring, { c } end, 1, one("string") },
	{ "codec:__close", function() local c = codec(); return getmetatable(c).__close, { c, nil } end, 1, function(r) return r.n == 0 end },
	{ "registry:state", function() local g = native.registry(); return g.state, { g, "r@d" } end, 2, is_state },
	{ "registry:set_ready", function() local g = pending_registry(); return g.set_ready, { g, "r@d" } end, 2, either(is_waiters, is_triple) },
	{ "registry:set_pending", function() local g = native.registry(); return g.set_pending, { g, "r@d" } end, 2,
		either(function(r) return r.n == 1 and r[1] == true end, is_triple) },
	{ "registry:forget", function() local g = pending_registry(); return g.forget, { g, "r@d" } end, 2, is_waiters },
	{ "registry:wait", function() local g = pending_registry(); return g.wait, { g, "r@d", {}, 10 } end, 4, either(is_id, is_triple) },
	{ "registry:cancel", function()
		local g = pending_registry()
		return g.cancel, { g, assert(g:wait("r@d", {}, 10)) }
	end, 2, one("boolean") },
	{ "registry:expire", function() local g = pending_registry(); assert(g:wait("r@d", {}, 5)); return g.expire, { g, 10 } end, 2, is_waiters },
	{ "registry:notify_due", function() local g = pending_registry(); return g.notify_due, { g, "r@d", 10, 5 } end, 4, one("boolean") },
	{ "registry:stats", function() local g = native.registry(); return g.stats, { g } end, 1, one("table") },
	{ "registry:each", function() local g = native.registry(); return g.each, { g } end, 1, one("function") },
	{ "registry:__len", function() local g = native.registry(); return getmetatable(g).__len, { g, g } end, 1, one("number") },
	{ "registry:__tostring", function() local g = native.registry(); return getmetatable(g).__tostring, { g } end, 1, one("string") },
	{ "registry:__close", function() local g = native.registry(); return getmetatable(g).__close, { g, nil } end, 1, function(r) return r.n == 0 end },
	{ "legacy_parser:parse", function() local p = native.legacy_parser(); return p.parse, { p, LEGACY } end, 2,
		either(one("table"), is_triple) },
	{ "legacy_parser:__tostring", function() local p = native.legacy_parser(); return getmetatable(p).__tostring, { p } end, 1, one("string") },
	{ "legacy_parser:__close", function() local p = native.legacy_parser(); return getmetatable(p).__close, { p, nil } end, 1,
		function(r) return r.n == 0 end },
}

-- Calls f(args[1..n]); returns "error", message or "ok", packed results. An error must be a
-- non-empty string (luaL_error / luaL_argerror), never anything else.
local function call(f, args, n)
	local r = table.pack(pcall(f, table.unpack(args, 1, n)))
	if not r[1] then
		assert(type(r[2]) == "string" and #r[2] > 0, "error is not a message: " .. tostring(r[2]))
		return "error", r[2]
	end
	return "ok", table.pack(table.unpack(r, 2, r.n))
end

local function check_outcome(name, valid, how, f, args, n)
	local outcome, r = call(f, args, n)
	if outcome == "ok" and not valid(r) then
		error(("%s %s: undocumented result %s, %s, %s"):format(name, how, tostring(r[1]), tostring(r[2]), tostring(r[3])))
	end
	return outcome, r
end

describe("binding arguments", function()
	for _, spec in ipairs(FUNCTIONS) do
		local name, make, nargs, valid = spec[1], spec[2], spec[3], spec[4]
		describe(name, function()
			it("answers as documented with its good arguments", function()
				local f, args = make()
				local outcome, r = check_outcome(name, valid, "good", f, args, nargs)
				assert.equal("ok", outcome, r)
			end)

			it("raises or answers as documented with each argument wrong", function()
				for pos = 1, nargs do
					for _, bad in ipairs(BAD) do
						local f, args = make()
						args[pos] = bad[2]
						check_outcome(name, valid, ("argument %d = %s"):format(pos, bad[1]), f, args, nargs)
					end
				end
				collectgarbage()
			end)

			it("raises or answers as documented with too few arguments", function()
				for n = 0, nargs - 1 do
					local f, args = make()
					check_outcome(name, valid, ("with %d argument(s)"):format(n), f, args, n)
				end
			end)

			it("ignores extra arguments, whatever they are", function()
				for _, bad in ipairs(BAD) do
					for extra = 1, 3 do
						local f, args = make()
						local n = nargs
						for _ = 1, extra do n = n + 1; args[n] = bad[2] end
						local outcome, r = check_outcome(name, valid, "with extra " .. bad[1], f, args, n)
						assert.equal("ok", outcome, r)
					end
				end
				collectgarbage()
			end)
		end)
	end

	it("methods raise for a receiver of the wrong class", function()
		for _, spec in ipairs(FUNCTIONS) do
			local name, make = spec[1], spec[2]
			if name:find("[:]") then
				for _, bad in ipairs(BAD) do
					local f, args = make()
					local own = getmetatable(args[1])
					if not (type(bad[2]) == "userdata" and getmetatable(bad[2]) == own) then
						args[1] = bad[2]
						assert.equal("error", (call(f, args, spec[3])), name .. " with self = " .. bad[1])
					end
				end
			end
		end
	end)
end)

describe("registry:wait", function()
	it("keeps the waiter with a number as a fifth argument (crashed: user value read at index 5)", function()
		local g = native.registry()
		assert(g:set_pending("r@d"))
		local w = { "waiter" }
		local id = g:wait("r@d", w, 10, 12345)
		assert.is_number(id)
		local ws = g:set_ready("r@d")
		assert.same(1, #ws)
		assert.equal(w, ws[1])
	end)

	it("does not hand the waiter to a table given as a fifth argument", function()
		local g = native.registry()
		assert(g:set_pending("r@d"))
		local w, fifth = { "waiter" }, {}
		local id = assert(g:wait("r@d", w, 10, fifth))
		assert.is_nil(next(fifth))
		assert.is_true(g:cancel(id))
		assert(g:wait("r@d", w, 10, fifth, "sixth"))
		assert.is_nil(next(fifth))
		local ws = g:expire(20)
		assert.equal(1, #ws)
		assert.equal(w, ws[1])
	end)

	it("raises for a NaN deadline and accepts math.huge (never expires)", function()
		local g = native.registry()
		assert(g:set_pending("r@d"))
		assert.has_error(function() g:wait("r@d", {}, 0 / 0) end)
		assert.has_error(function() g:expire(0 / 0) end)
		assert.has_error(function() g:notify_due("r@d", 0 / 0, 1) end)
		assert.has_error(function() g:notify_due("r@d", 1, 0 / 0) end)
		assert.equal(0, g:stats().waiters)
		assert(g:wait("r@d", {}, math.huge))
		assert.equal(0, #g:expire(1e308))
		assert.equal(1, g:stats().waiters)
	end)

	it("raises for a nil waiter and for a missing deadline, recording nothing", function()
		local g = native.registry()
		assert(g:set_pending("r@d"))
		assert.has_error(function() g:wait("r@d", nil, 10) end)
		assert.has_error(function() g:wait("r@d", {}) end)
		assert.has_error(function() g:wait("r@d", {}, "soon") end)
		assert.equal(0, g:stats().waiters)
	end)

	it("cancel takes integers only", function()
		local g = native.registry()
		assert(g:set_pending("r@d"))
		local id = assert(g:wait("r@d", {}, 10))
		assert.has_error(function() g:cancel(id + 0.5) end)
		assert.has_error(function() g:cancel(2.0 ^ 63) end)
		assert.is_false(g:cancel(math.maxinteger))
		assert.is_false(g:cancel(math.mininteger))
		assert.is_false(g:cancel(0))
		assert.is_true(g:cancel(id + 0.0))
	end)
end)

describe("codec:parse_stanza", function()
	-- A string the element only hands out through __index: nothing but the stack holds it. The
	-- binding used to pop such a string, keep its pointer, then run the next __index, which
	-- collects garbage: a use after free under ASan/valgrind.
	local function fresh(s) return (s .. "."):sub(1, -2) end
	local function volatile(t)
		return setmetatable({}, { __index = function(_, k)
			collectgarbage()
			local v = t[k]
			if type(v) == "string" then return fresh(v) end
			return v
		end })
	end

	it("reads fields through metamethods that collect garbage", function()
		local c = native.codec()
		-- long strings (over 40 bytes) are never interned, so each __index makes a new one
		local pn, pv = string.rep("n", 60), string.rep("v", 60)
		local prop = volatile({ name = "property", attr = volatile({ name = pn, value = pv }), tags = {} })
		local el = volatile({ name = "conference", attr = volatile({ xmlns = NS, room = "r@d", token = "t" }),
			tags = { prop } })
		local r = assert(c:parse_stanza(el))
		assert.same({ room = "r@d", token = "t", properties = { pn, pv } }, r)
		collectgarbage()
		-- an element whose name and namespace are only on the stack, refused the same way
		local other = volatile({ name = "conference", attr = volatile({ xmlns = "urn:x", room = "r@d" }) })
		local _, cond = c:parse_stanza(other)
		assert.equal("bad-request", cond)
	end)

	it("takes only a table, and answers nil, condition, text for odd trees", function()
		local c = native.codec()
		assert.has_error(function() c:parse_stanza("<conference/>") end)
		assert.has_error(function() c:parse_stanza() end)
		for _, el in ipairs({
			{}, { name = 1, attr = {} }, { name = "conference", attr = "x" },
			{ name = "conference", attr = { xmlns = NS } },
			{ name = "conference", attr = { xmlns = NS, room = "r@d" }, tags = "x" },
			{ name = "conference", attr = { xmlns = NS, room = 5 }, tags = { 1, 2 } },
			{ name = "conference", attr = { xmlns = NS, room = "r@d\1" } },
			{ name = "conference", attr = { xmlns = NS, room = "r@d" }, tags = { { name = "property", attr = { name = "\255" } } } },
		}) do
			local ok, r, cond = pcall(c.parse_stanza, c, el)
			assert.is_true(ok)
			if r == nil then assert.is_string(conditions[cond] and cond) else assert.is_table(r) end
		end
	end)
end)

describe("constructors", function()
	it("raise for every bad option value, and only for those", function()
		local opts = {
			[native.codec] = { "max_room", "max_jid_part", "max_properties", "max_property_name",
				"max_property_value", "max_token", "max_id", "max_xml_depth", "max_json_depth",
				"authentication", "external_auth", "sip_gateway", "extra_properties", "stanza_mt" },
			[native.registry] = { "max_rooms", "max_waiters_per_room", "max_waiters" },
			[native.legacy_parser] = { "max_nicks", "max_nick", "max_secret", "max_name", "max_depth" },
			[native.vnodes] = { "nodes", "pending_window", "max_rooms", "max_pending", "max_node_rooms" },
		}
		for ctor, keys in pairs(opts) do
			for _, key in ipairs(keys) do
				for _, bad in ipairs(BAD) do
					local ok, r = pcall(ctor, { [key] = bad[2] })
					if ok then assert.is_userdata(r) else assert.is_string(r) end
				end
			end
			assert.has_error(function() ctor({ unknown = 1 }) end)
			assert.has_error(function() ctor({ [1] = 1 }) end)
			assert.has_error(function() ctor({ [true] = 1 }) end)
		end
	end)

	it("native.vnodes raises for every bad option or node field value, and only for those", function()
		for _, key in ipairs({ "pending_window", "max_rooms", "max_pending", "max_node_rooms" }) do
			for _, bad in ipairs(BAD) do
				local ok, r = pcall(native.vnodes, { nodes = VNODES.nodes, [key] = bad[2] })
				if ok then assert.is_userdata(r) else assert.is_string(r) end
			end
		end
		for _, field in ipairs({ "id", "focus_jid", "weight", "capacity" }) do
			for _, bad in ipairs(BAD) do
				local node = { id = "v1", focus_jid = "f@v1", weight = 1, capacity = 5 }
				node[field] = bad[2]
				local ok, r = pcall(native.vnodes, { nodes = { node } })
				if ok then assert.is_userdata(r) else assert.is_string(r) end
			end
		end
		for _, bad in ipairs(BAD) do
			local ok, r = pcall(native.vnodes, { nodes = { bad[2] } })
			if ok then assert.is_userdata(r) else assert.is_string(r) end
		end
	end)

	it("take huge limits without allocating for them", function()
		local c = native.codec({ max_room = math.maxinteger, max_properties = math.maxinteger, max_xml_depth = math.maxinteger })
		assert.truthy(c:parse_xml(REQ))
		local g = native.registry({ max_rooms = math.maxinteger, max_waiters_per_room = math.maxinteger })
		assert(g:set_pending("r@d"))
		assert.has_error(function() native.registry({ max_waiters = math.maxinteger }) end)
		local v = native.vnodes({ nodes = VNODES.nodes, max_rooms = math.maxinteger, pending_window = 1e300 })
		assert.is_string((v:choose("r@d", 0)))
		local p = native.legacy_parser({ max_nicks = math.maxinteger, max_depth = math.maxinteger })
		assert.truthy(p:parse(LEGACY))
	end)
end)
