-- (Named native_* so that `make check-asan` runs it too: the binding under ASan/UBSan and valgrind.)
-- The doors' fast paths (issue 15) against their general paths: every request shape is sent to
-- two fresh module stacks built the same way (config.lib, the real binding and registry, auth.lib,
-- focus.lib over a stand-in mod_muc, metrics.lib, ratelimit.lib, service.lib, http.lib, xmpp.lib),
-- one with service.fast and one without, and the answers (HTTP status, headers, body; the XMPP
-- reply stanza), the counters and the registry must be identical. A fast path that answers
-- anything differently from the general path fails here; so does an answer cache that is not
-- dropped when its room stops being ready. `module` and `prosody` are small stand-ins;
-- end-to-end: tests/integration.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"

local MUC = "conference.localhost"
local clock = 1000
package.loaded["util.time"] = { monotonic = function() return clock end, now = function() return clock end }
package.loaded["core.usermanager"] = { is_admin = function() return false end }
package.loaded["core.configmanager"] = { getconfig = function() return {} end }

local function stack(options, fast_on, ready_rooms)
	local env = { rooms = {}, hooks = {}, host_hooks = {}, timers = {}, logs = {}, measured = {} }
	local function fire(name, event)
		for _, fn in ipairs(env.hooks[name] or {}) do fn(event) end
	end
	local function new_room(jid)
		local room = { jid = jid, _data = {} }
		function room.set_persistent() end
		function room.destroy(r) env.rooms[r.jid] = nil; fire("muc-room-destroyed", { room = r }) end
		env.rooms[jid] = room
		return room
	end
	env.new_room, env.fire = new_room, fire
	local opts = { conference_request_muc = MUC }
	for k, v in pairs(options or {}) do opts[k] = v end
	local module = {
		host = "focus.localhost",
		get_option = function(_, key, default)
			local v = opts[key]
			if v == nil then return default end
			return v
		end,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		measure = function(_, name) return function() env.measured[name] = (env.measured[name] or 0) + 1 end end,
		send = function() end, -- the external focus's presence probe
		hook = function(_, name, fn) env.host_hooks[name] = fn end,
		hook_global = function() end,
		context = function() return { hook = function(_, name, fn)
			env.hooks[name] = env.hooks[name] or {}
			table.insert(env.hooks[name], fn)
		end } end,
		add_timer = function(_, delay, fn) table.insert(env.timers, { at = clock + delay, fn = fn }) end,
		depends = function() end,
		provides = function(_, kind, app) if kind == "http" then env.app = app end end,
		get_directory = function() return "mod_conference_request" end,
	}
	-- each stack's libraries see its own `module` and `prosody`
	local lib_env = setmetatable({ module = module }, { __index = _G })
	function module.require(_, name)
		return assert(loadfile("mod_conference_request/" .. name .. ".lib.lua", "t", lib_env))()
	end
	env.prosody = { hosts = { [MUC] = { modules = { muc = {
		get_room_from_jid = function(jid) return env.rooms[jid] end,
		create_room = function(jid)
			local room = new_room(jid)
			fire("muc-room-created", { room = room })
			return room
		end,
		forget_room = function(room) env.rooms[room.jid] = nil end,
		track_room = function(room) env.rooms[room.jid] = room; return true end,
		live_rooms = function() return coroutine.wrap(function()
			for _, r in pairs(env.rooms) do coroutine.yield(r) end
		end) end,
	} } } } }
	lib_env.prosody = env.prosody
	local cfg = module:require("config").read()
	local codec_config = { sip_gateway = cfg.sip_gateway, extra_properties = cfg.extra_properties, stanza_mt = st.stanza_mt }
	for k, v in pairs(cfg.limits) do codec_config[k] = v end
	local auth = module:require("auth").new(cfg.auth, native)
	auth.codec_config(codec_config)
	local codec = native.codec(codec_config)
	local registry = native.registry({ max_rooms = cfg.max_rooms })
	local metrics = module:require("metrics").new(registry)
	local focus
	if cfg.focus then -- external (a remote focus, not online: rooms that are not ready get ready=false)
		focus = module:require("external_focus").new(cfg, registry, metrics, native.conditions)
	else
		focus = module:require("focus").new(cfg, registry, metrics)
	end
	local ratelimit = module:require("ratelimit").new(cfg, metrics)
	local service = module:require("service").new(cfg, focus, metrics, registry, ratelimit, auth, nil)
	env.fast_available = service.fast ~= nil
	if not fast_on then service.fast = nil end
	-- count the fast path's native calls through a stand-in codec
	env.fast_calls, env.parse_calls = 0, 0
	local proxy = setmetatable({
		ready_json = function(_, ...)
			env.fast_calls = env.fast_calls + 1
			return codec:ready_json(...)
		end,
		parse_json = function(_, ...)
			env.parse_calls = env.parse_calls + 1
			return codec:parse_json(...)
		end,
		ready_stanza = function(_, ...)
			env.fast_calls = env.fast_calls + 1
			return codec:ready_stanza(...)
		end,
		parse_stanza = function(_, ...)
			env.parse_calls = env.parse_calls + 1
			return codec:parse_stanza(...)
		end,
	}, { __index = function(_, k) local f = codec[k]; return function(_, ...) return f(codec, ...) end end })
	module:require("http").new(cfg, native, proxy, service, metrics, registry, focus, nil)
	module:require("xmpp").new(native, proxy, service)
	focus.start()
	for _, jid in ipairs(ready_rooms or {}) do
		fire("muc-room-created", { room = new_room(jid) })
		if cfg.focus then assert(registry:set_ready(jid)) end -- as the external focus's join does
	end
	env.registry, env.metrics, env.codec, env.service, env.focus = registry, metrics, codec, service, focus
	return env
end

-- One request through the app's routes, as net.http.server hands it over; returns what was sent.
local function send(env, req)
	local sent = {}
	local headers = { date = "Tue, 01 Dec 2026 00:00:00 GMT", connection = "Keep-Alive" }
	local response = { status_code = 200, headers = headers, conn = { close = function() end } }
	function response.send(r, body)
		table.insert(sent, { status = r.status_code, headers = r.headers, body = body, persistent = r.persistent })
		return true
	end
	local request = { method = req.method or "POST", ip = req.ip or "127.0.0.1", headers = req.headers or {},
		body = req.body, partial = req.partial }
	if request.body == nil then request.body = "" end
	local handler = env.app.route[(req.method or "POST") .. " " .. (req.path or "/v1")]
	local result = handler({ request = request, response = response })
	if req.sink_data and request.body_sink then -- streamed body: complete it and call again
		request.body_sink:write(req.sink_data)
		request.partial = nil
		result = handler({ request = request, response = response })
	end
	return { result = result, sent = sent }
end

local function counts_of(env)
	local c = {}
	for k, v in pairs(env.metrics.counts) do c[k] = v end
	return c
end

local function registry_of(env)
	local out = {}
	for room, state, waiters in env.registry:each() do out[room] = state .. "/" .. waiters end
	return out
end

-- Runs the requests on a fast and a general stack; asserts identical observable results.
local function compare(options, ready_rooms, requests)
	local fast = stack(options, true, ready_rooms)
	local slow = stack(options, false, ready_rooms)
	for i, req in ipairs(requests) do
		local a = send(fast, req)
		local b = send(slow, req)
		assert.same(b, a, ("request %d: %s"):format(i, tostring(req.body)))
		assert.same(counts_of(slow), counts_of(fast), ("counters after request %d"):format(i))
		assert.same(slow.measured, fast.measured, ("metrics after request %d"):format(i))
	end
	assert.same(registry_of(slow), registry_of(fast))
	assert.equal(0, slow.fast_calls)
	return fast, slow
end

local JSON = { ["content-type"] = "application/json", content_type = "application/json" }
local function post(body, extra)
	local headers = { content_type = "application/json" }
	for k, v in pairs(extra or {}) do headers[k] = v end
	return { body = body, headers = headers }
end

local READY = { "room0@" .. MUC, "room1@" .. MUC, 'q"uo\\te<&>\'@' .. MUC, "long" .. ("x"):rep(60) .. "@" .. MUC }

local bodies = {
	-- the common case, and every field shape of a valid request
	'{"room":"room0@conference.localhost","machineUid":"0123456789abcdef","properties":{"rtcstatsEnabled":false,"visitors-version":1}}',
	'{"room":"room0@conference.localhost"}',
	'{"room":"room1@conference.localhost","sessionId":"s1","properties":{"a":"x","b":true,"c":1.5,"d":null,"e":-7}}',
	'{"room":"room1@conference.localhost","properties":null,"machineUid":null,"token":"ignored","unknown":[1,{"x":2}]}',
	' \n{"room" : "room0@conference.localhost" }\t',
	'{"room":"q\\"uo\\\\te<&>\'@conference.localhost"}',
	'{"room":"long' .. ("x"):rep(60) .. '@conference.localhost"}',
	'{"room":"room\\u0030@conference.localhost"}',
	-- rooms that are not ready keys as they stand: normalized, created, refused
	'{"room":"Room0@Conference.LocalHost"}',
	'{"room":"new-room@conference.localhost"}',
	'{"room":"room0@elsewhere.localhost"}',
	'{"room":"room0@conference.localhost/res"}',
	'{"room":"@conference.localhost"}',
	'{"room":"a b@conference.localhost"}',
	-- malformed and invalid bodies
	'', 'null', '[]', '"room"', '{', '{"room":"room0@conference.localhost"', '{"room":"room0@conference.localhost"} x',
	'{"room":5}', '{"room":null}', '{"room":""}', '{"machineUid":"m"}',
	'{"room":"room0@conference.localhost","room":"room1@conference.localhost"}',
	'{"room":"room0@conference.localhost","properties":[]}',
	'{"room":"room0@conference.localhost","properties":{"a":{"b":1}}}',
	'{"room":"room0@conference.localhost","properties":{"a":"\\u0001"}}',
	'{"room":"room0@conference.localhost","machineUid":5}',
	'{"room":"room0@conference.localhost","sessionId":"' .. ("s"):rep(300) .. '"}',
	'{"room":"room0@conference.localhost","x":[[[[[[[[[1]]]]]]]]]}',
	'{"room":"room0@conference.localhost","properties":{"' .. ("n"):rep(300) .. '":"v"}}',
	'{"room":"room0@conference.localhost","properties":{"":"v"}}',
	'{"room":"room0@conference.localhost\\u0000"}',
	'{"room":"room0@conference.localhost","properties":{"a":"\\ud800"}}',
	'\239\187\191{"room":"room0@conference.localhost"}',
}

describe("the HTTP door's fast path", function()
	it("is available with the defaults (built-in focus, no authentication, no visitors)", function()
		assert.is_true(stack({}, true, {}).fast_available)
	end)

	it("is not used with an authentication mode", function()
		assert.is_false(stack({ conference_request_auth = "xmpp", conference_request_auth_domain = "localhost" }, true, {}).fast_available)
	end)

	for _, limits in ipairs({ "default", false }) do
		it(("answers every body shape exactly as the general path does (rate limits %s)"):format(tostring(limits)), function()
			local requests = {}
			for _, body in ipairs(bodies) do table.insert(requests, post(body)) end
			local options = { conference_request_extra_properties = { region = "eu" }, conference_request_sip_gateway = true }
			if limits == false then options.conference_request_rate_limits = false end
			local fast = compare(options, READY, requests)
			assert.equal(#bodies, fast.fast_calls)
			-- 9 bodies with a ready key (one with an empty property name, skipped), one normalized to
			-- a ready key, one for a new room (created)
			assert.equal(11, fast.metrics.counts.ready)
			assert.equal(1, fast.metrics.counts.rooms_created)
		end)
	end

	it("answers every body shape exactly as the general path does with an external focus", function()
		local requests = {}
		for _, body in ipairs(bodies) do table.insert(requests, post(body)) end
		local fast = compare({ conference_request_focus = "focus@auth.example.com" }, READY, requests)
		assert.equal(#bodies, fast.fast_calls)
		assert.equal(10, fast.measured.focus_answer_ready_now) -- counted on both paths alike
		assert.equal(1, fast.metrics.counts.not_ready) -- the new room: no focus online
	end)

	it("takes the common case in one native call, without the general path's parse", function()
		local fast = stack({}, true, READY)
		local r = send(fast, post(bodies[1]))
		assert.equal(200, r.sent[1].status)
		assert.equal(1, fast.fast_calls)
		assert.equal(0, fast.parse_calls)
		assert.equal(1, fast.metrics.counts.ready)
		-- a room that is not a ready key as it stands: the general path parses again
		send(fast, post(bodies[9]))
		assert.equal(2, fast.fast_calls)
		assert.equal(1, fast.parse_calls)
	end)

	local header_cases = {
		{ "a media type with parameters", { content_type = "application/json; charset=utf-8" } },
		{ "an upper-case media type", { content_type = "Application/JSON" } },
		{ "the wrong media type", { content_type = "text/plain" } },
		{ "no media type", { content_type = false } },
		{ "a bearer token", { authorization = "Bearer abc.def.ghi" } },
		{ "an allowed origin", { origin = "https://a.example" } },
		{ "another origin", { origin = "https://b.example" } },
		{ "chunked transfer coding", { transfer_encoding = "chunked" } },
		{ "identity transfer coding", { transfer_encoding = "identity" } },
	}
	for _, cors in ipairs({ { "*" }, {}, { "https://a.example" } }) do
		for _, case in ipairs(header_cases) do
			it(("answers a request with %s as the general path does (CORS %s)"):format(case[1], table.concat(cors, ",")), function()
				local requests = {}
				for _, body in ipairs({ bodies[1], bodies[9], bodies[15] }) do
					local req = post(body, case[2])
					if req.headers.content_type == false then req.headers.content_type = nil end
					table.insert(requests, req)
				end
				compare({ conference_request_http_cors = cors }, READY, requests)
			end)
		end
	end

	it("answers bodies over the limit, streamed bodies and other methods as the general path does", function()
		local big = '{"room":"room0@conference.localhost","x":"' .. ("x"):rep(200) .. '"}'
		compare({ conference_request_max_body = 100 }, READY, {
			post(big),
			{ body = false, partial = true, headers = { content_type = "application/json", content_length = "300" } },
			{ body = false, partial = true, headers = { content_type = "application/json", content_length = "60" },
				sink_data = '{"room":"room0@conference.localhost"}' },
			{ method = "GET", body = "", headers = {} },
			{ method = "PUT", body = bodies[1], headers = JSON },
			{ method = "OPTIONS", body = "", headers = { origin = "https://a.example" } },
			{ method = "GET", path = "/v1/health", body = "", headers = {} },
		})
	end)

	it("applies the rate limit once and in the same place as the general path", function()
		local requests = {}
		for i = 1, 7 do
			table.insert(requests, post(bodies[i % 2 == 0 and 1 or 15]))
		end
		local fast = compare({ conference_request_rate_limits = { requests = 0.001, requests_burst = 3 } }, READY, requests)
		-- three tokens: '' (error), ready, '' (error); then four refusals
		assert.equal(1, fast.metrics.counts.ready)
		assert.equal(4, fast.metrics.counts.rate_limited_requests)
		assert.equal(6, fast.metrics.counts.errors)
	end)

	it("answers a room that lost its readiness (pending) as the general path does", function()
		local fast = stack({}, true, READY)
		local slow = stack({}, false, READY)
		local req = post('{"room":"room1@conference.localhost"}')
		assert.same(send(slow, req), send(fast, req))
		for _, env in ipairs({ fast, slow }) do assert(env.registry:set_pending("room1@" .. MUC)) end
		local a, b = send(fast, req), send(slow, req)
		assert.same(b, a)
		assert.same(counts_of(slow), counts_of(fast))
		assert.equal(1, fast.parse_calls) -- the fast call declined it
	end)

	it("follows the room's state: created, destroyed, made ready again", function()
		local fast = stack({}, true, READY)
		local slow = stack({}, false, READY)
		local function both(req)
			local a, b = send(fast, req), send(slow, req)
			assert.same(b, a)
			return a
		end
		local r = both(post('{"room":"room0@conference.localhost"}'))
		assert.equal(200, r.sent[1].status)
		-- destroyed: the room is no longer a ready key; the general path creates it again
		for _, env in ipairs({ fast, slow }) do env.rooms["room0@" .. MUC]:destroy() end
		assert.equal("absent", fast.registry:state("room0@" .. MUC))
		r = both(post('{"room":"room0@conference.localhost"}'))
		assert.equal(200, r.sent[1].status)
		assert.equal(1, fast.metrics.counts.rooms_created) -- created again by that request
		assert.equal("ready", fast.registry:state("room0@" .. MUC))
		r = both(post('{"room":"room0@conference.localhost"}'))
		assert.equal(200, r.sent[1].status)
		assert.equal(3, fast.fast_calls)
		assert.equal(1, fast.parse_calls)
		assert.same(counts_of(slow), counts_of(fast))
	end)
end)

describe("codec:ready_json's answer cache", function()
	local ROOM = "room0@" .. MUC

	local function fresh()
		local registry = native.registry()
		assert(registry:set_ready(ROOM))
		return registry
	end

	it("answers as render_json does, from the cache on the second call", function()
		local codec, registry = native.codec(), fresh()
		local body = '{"room":"room0@conference.localhost"}'
		local expected = codec:render_json({ room = ROOM, ready = true, focus_jid = "focus.localhost", visitors_supported = false })
		local a1, r1 = codec:ready_json(body, registry, "focus.localhost")
		local a2, r2 = codec:ready_json(body, registry, "focus.localhost")
		assert.equal(expected, a1)
		assert.equal(expected, a2)
		assert.equal(ROOM, r1)
		assert.equal(ROOM, r2)
	end)

	it("is dropped when the room is forgotten (destroyed) or set pending (readiness lost)", function()
		local codec, registry = native.codec(), fresh()
		local body = '{"room":"room0@conference.localhost"}'
		assert.truthy(codec:ready_json(body, registry, "f"))
		registry:forget(ROOM)
		assert.is_nil(codec:ready_json(body, registry, "f"))
		assert(registry:set_ready(ROOM))
		assert.truthy(codec:ready_json(body, registry, "f"))
		assert(registry:set_pending(ROOM))
		assert.is_nil(codec:ready_json(body, registry, "f"))
		assert(registry:set_ready(ROOM))
		assert.truthy(codec:ready_json(body, registry, "f"))
	end)

	it("belongs to one codec (answer properties) and one focus JID", function()
		local registry = fresh()
		local plain = native.codec()
		local extra = native.codec({ extra_properties = { region = "eu" }, sip_gateway = true })
		local body = '{"room":"room0@conference.localhost"}'
		for _ = 1, 2 do
			for _, codec in ipairs({ plain, extra }) do
				for _, fj in ipairs({ "focus.localhost", "other.localhost" }) do
					assert.equal(codec:render_json({ room = ROOM, ready = true, focus_jid = fj }),
						(codec:ready_json(body, registry, fj)))
				end
			end
		end
	end)

	it("stays right past its bound (it starts again empty) and after the registry is closed", function()
		local codec, registry = native.codec(), native.registry()
		for i = 1, 5000 do assert(registry:set_ready("r" .. i .. "@" .. MUC)) end
		for _ = 1, 2 do
			for i = 1, 5000, 7 do
				local room = "r" .. i .. "@" .. MUC
				assert.equal(codec:render_json({ room = room, ready = true, focus_jid = "f" }),
					(codec:ready_json(('{"room":"%s"}'):format(room), registry, "f")))
			end
		end
		registry:forget("r1@" .. MUC)
		assert.is_nil(codec:ready_json('{"room":"r1@conference.localhost"}', registry, "f"))
		getmetatable(registry).__close(registry)
		assert.has_error(function() codec:ready_json('{"room":"r8@conference.localhost"}', registry, "f") end)
	end)
end)

-- XMPP: one IQ through the module's iq-set hook; returns the stanzas sent back, serialized.
local NS = "http://jitsi.org/protocol/focus"
local function iq(env, build, from)
	local sent = {}
	local origin = { type = "c2s", ip = "127.0.0.1", host = "localhost", send = function(stanza)
		table.insert(sent, tostring(stanza))
	end }
	local stanza = st.iq({ type = "set", from = from or "alice@localhost/r1", to = "focus.localhost", id = "q1" })
	build(stanza)
	env.host_hooks["iq-set/host/" .. NS .. ":conference"]({ origin = origin, stanza = stanza })
	return sent
end

local function conference(attr, children)
	return function(stanza)
		local a = { xmlns = NS }
		for k, v in pairs(attr) do a[k] = v end
		stanza:tag("conference", a)
		for _, child in ipairs(children or {}) do child(stanza) end
		stanza:up()
	end
end
local function property(name, value, xmlns)
	return function(stanza) stanza:tag("property", { name = name, value = value, xmlns = xmlns }):up() end
end
local function nested(depth)
	return function(stanza)
		for _ = 1, depth do stanza:tag("x") end
		for _ = 1, depth do stanza:up() end
	end
end

local iq_shapes = {
	conference({ room = "room0@" .. MUC }),
	conference({ room = "room1@" .. MUC, ["machine-uid"] = "m1", ["session-id"] = "s1", token = "t" },
		{ property("rtcstatsEnabled", "false"), property("visitors-version", "1"), property("a", nil),
			property("", "skipped"), property("a", "last wins"), property("other-ns", "x", "urn:other") }),
	conference({ room = 'q"uo\\te<&>\'@' .. MUC }),
	conference({ room = "long" .. ("x"):rep(60) .. "@" .. MUC }),
	conference({ room = "room0@" .. MUC }, { nested(14) }),
	conference({ room = "room0@" .. MUC }, { nested(15) }),
	conference({ room = "Room0@Conference.LocalHost" }),
	conference({ room = "new-room@" .. MUC }),
	conference({ room = "room0@elsewhere.localhost" }),
	conference({ room = "room0@" .. MUC .. "/res" }),
	conference({ room = "" }),
	conference({}),
	conference({ room = "room0@" .. MUC, ["machine-uid"] = ("m"):rep(300) }),
	-- strings util.stanza refuses to build, set behind its back (a tree built in Lua)
	function(stanza)
		conference({ room = "room0@" .. MUC })(stanza)
		stanza.tags[1].attr.room = "room0@" .. MUC .. "\1"
	end,
	function(stanza)
		conference({ room = "room0@" .. MUC }, { property("p", "v") })(stanza)
		stanza.tags[1].tags[1].attr.value = "\255"
	end,
	function(stanza)
		conference({ room = "room0@" .. MUC })(stanza)
		stanza.tags[1].attr["machine-uid"] = 5
	end,
	function(stanza) stanza:tag("conference", { xmlns = NS, room = "room0@" .. MUC }):text("text is ignored"):up() end,
	function(stanza) -- 65 distinct properties: over max_properties
		stanza:tag("conference", { xmlns = NS, room = "room0@" .. MUC })
		for i = 1, 65 do stanza:tag("property", { name = "p" .. i, value = "v" }):up() end
		stanza:up()
	end,
}

describe("the XMPP door's fast path", function()
	for _, limits in ipairs({ "default", false }) do
		it(("answers every IQ shape exactly as the general path does (rate limits %s)"):format(tostring(limits)), function()
			local options = { conference_request_extra_properties = { region = "eu" }, conference_request_sip_gateway = true }
			if limits == false then options.conference_request_rate_limits = false end
			local fast = stack(options, true, READY)
			local slow = stack(options, false, READY)
			for i, build in ipairs(iq_shapes) do
				local a, b = iq(fast, build), iq(slow, build)
				assert.equal(1, #b, "one reply")
				assert.same(b, a, ("IQ shape %d"):format(i))
				assert.same(counts_of(slow), counts_of(fast), ("counters after IQ shape %d"):format(i))
				assert.same(slow.measured, fast.measured, ("metrics after IQ shape %d"):format(i))
			end
			assert.same(registry_of(slow), registry_of(fast))
			assert.equal(#iq_shapes, fast.fast_calls)
			assert.equal(0, slow.fast_calls)
			-- answered natively: the 8 valid requests for a ready key as it stands (shapes 1-6, 16, 17)
			assert.equal(#iq_shapes - 8, fast.parse_calls)
		end)
	end

	it("applies the rate limit once and in the same place as the general path", function()
		local options = { conference_request_rate_limits = { requests = 0.001, requests_burst = 3 } }
		local fast = stack(options, true, READY)
		local slow = stack(options, false, READY)
		for i = 1, 6 do
			local build = iq_shapes[i % 2 == 0 and 1 or 9]
			assert.same(iq(slow, build), iq(fast, build))
		end
		assert.same(counts_of(slow), counts_of(fast))
		assert.equal(3, fast.metrics.counts.rate_limited_requests)
	end)

	it("follows the room's state: pending, destroyed, made ready again", function()
		local fast = stack({}, true, READY)
		local slow = stack({}, false, READY)
		local build = conference({ room = "room1@" .. MUC })
		assert.same(iq(slow, build), iq(fast, build))
		for _, env in ipairs({ fast, slow }) do assert(env.registry:set_pending("room1@" .. MUC)) end
		assert.same(iq(slow, build), iq(fast, build))
		assert.equal(1, fast.parse_calls) -- a pending room is the general path's
		assert.same(registry_of(slow), registry_of(fast))
		for _, env in ipairs({ fast, slow }) do env.rooms["room1@" .. MUC]:destroy() end
		assert.same(iq(slow, build), iq(fast, build))
		assert.same(iq(slow, build), iq(fast, build))
		assert.same(counts_of(slow), counts_of(fast))
		assert.same(registry_of(slow), registry_of(fast))
	end)
end)
