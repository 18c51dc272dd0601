-- Specs of external_focus.lib.lua (the external focus, issue #3) with the real C registry and
-- Prosody's own util.stanza / util.promise. `module` and `prosody` are small stand-ins that record
-- what the library does (hooks, sent stanzas, timers); the clock is a variable the specs move.
-- End-to-end behaviour against a real Prosody is in tests/integration/test_external_focus.py.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"
local promise = require "util.promise"

local FOCUS = "focus@auth.localhost"
local MUC = "conference.localhost"
local HOST = "focus.localhost"

local clock = 1000
package.loaded["util.time"] = { monotonic = function() return clock end, now = function() return clock end }
package.loaded["core.configmanager"] = { getconfig = function() return { ["auth.localhost"] = {} } end }

local function fake_environment()
	local env = { hooks = {}, global_hooks = {}, sent = {}, iqs = {}, timers = {}, logs = {} }
	local function hook_into(tbl)
		return function(_, name, fn) tbl[name] = tbl[name] or {}; table.insert(tbl[name], fn) end
	end
	env.muc_hooks = {}
	env.rooms = {}
	env.module = {
		host = HOST,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		measure = function() return function() end end,
		hook = hook_into(env.hooks),
		hook_global = hook_into(env.global_hooks),
		context = function(_, host)
			if host == MUC then return { hook = hook_into(env.muc_hooks) } end
			return { hook = hook_into({}) }
		end,
		send = function(_, stanza) table.insert(env.sent, stanza) end,
		send_iq = function(_, stanza)
			local entry = { stanza = stanza }
			entry.promise = promise.new(function(resolve, reject) entry.resolve, entry.reject = resolve, reject end)
			table.insert(env.iqs, entry)
			return entry.promise
		end,
		add_timer = function(_, delay, fn) table.insert(env.timers, { at = clock + delay, fn = fn }) end,
	}
	env.prosody = { hosts = { [MUC] = { modules = { muc = { live_rooms = function()
		return coroutine.wrap(function() for _, r in pairs(env.rooms) do coroutine.yield(r) end end)
	end } } }, [HOST] = {}, ["auth.localhost"] = {} } }
	return env
end

local function room_object(jid, occupants)
	return { jid = jid, each_occupant = function()
		local i = 0
		return function()
			i = i + 1
			if occupants[i] then return occupants[i].nick, occupants[i] end
		end
	end }
end

-- Loads the library in a fresh environment; returns ext, env, registry and a helper to run timers.
local function load(opts)
	opts = opts or {}
	local env = fake_environment()
	_G.module, _G.prosody = env.module, env.prosody
	local chunk = assert(loadfile("mod_conference_request/external_focus.lib.lua"))
	local lib = chunk()
	local registry = native.registry(opts.registry)
	local cfg = { focus = FOCUS, ready_wait = opts.ready_wait or 10, muc_hosts = { [MUC] = true } }
	local ext = lib.new(cfg, registry, nil, native.conditions)
	ext.start()
	function env.run_timers()
		local due = env.timers
		env.timers = {}
		for _, t in ipairs(due) do
			if t.at <= clock then
				local again = t.fn(clock)
				if again then table.insert(env.timers, { at = clock + again, fn = t.fn }) end
			else
				table.insert(env.timers, t)
			end
		end
	end
	function env.presence(attr)
		for _, fn in ipairs(env.hooks["presence/host"]) do fn({ stanza = st.presence(attr) }) end
	end
	function env.muc(event, payload)
		for _, fn in ipairs(env.muc_hooks[event] or {}) do fn(payload) end
	end
	return ext, env, registry
end

local function collector()
	local answers = {}
	return answers, function(result) table.insert(answers, result) end
end

local function request(ext, room, answers_respond, requester)
	return ext.request(room, MUC, { room = room, properties = { "startAudioMuted", "1" } },
		requester or { door = "xmpp", jid = "alice@localhost/r1" }, answers_respond)
end

describe("external_focus.lib", function()
	local room = "r1@" .. MUC

	it("asks for the focus's presence at load, as client_proxy does", function()
		local _, env = load()
		assert.equal("subscribe", env.sent[1].attr.type)
		assert.equal(FOCUS, env.sent[1].attr.to)
		assert.equal("probe", env.sent[2].attr.type)
	end)

	it("answers ready=false at once and tracks nothing while no focus resource is online", function()
		local ext, env, registry = load()
		local answers, respond = collector()
		request(ext, room, respond)
		assert.equal(1, #answers)
		assert.is_false(answers[1].ready)
		assert.equal(FOCUS, answers[1].focus_jid)
		assert.equal("absent", registry:state(room))
		assert.equal(0, #env.iqs)
		request(ext, room, respond)
		local warnings = 0
		for _, l in ipairs(env.logs) do
			if l[1] == "warn" and l[2]:find("no resource of focus", 1, true) then warnings = warnings + 1 end
		end
		assert.equal(1, warnings) -- logged, but not once per request
	end)

	it("tracks focus resources from presence, including a bare unavailable", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		env.presence({ from = FOCUS .. "/b" })
		env.presence({ from = "mallory@auth.localhost/a" })
		assert.same({ "a", "b" }, ext.focus_resources())
		env.presence({ from = FOCUS .. "/a", type = "unavailable" })
		assert.same({ "b" }, ext.focus_resources())
		env.presence({ from = FOCUS, type = "unavailable" })
		assert.same({}, ext.focus_resources())
	end)

	it("forwards the first request once (NAT-ed) and answers every waiter when the focus joins", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		for i = 1, 50 do
			request(ext, room, respond, { door = "xmpp", jid = "u" .. i .. "@localhost/r" })
		end
		request(ext, room, respond, { door = "http" })
		assert.equal(0, #answers)
		assert.equal(1, #env.iqs)
		local iq = env.iqs[1].stanza
		assert.equal(HOST .. "/u1@localhost/r", iq.attr.from)
		assert.equal(FOCUS .. "/a", iq.attr.to)
		local conf = iq:get_child("conference", "http://jitsi.org/protocol/focus")
		assert.equal(room, conf.attr.room)
		assert.equal("startAudioMuted", conf.tags[1].attr.name)
		assert.equal(51, registry:stats().waiters)
		env.muc("muc-occupant-joined", { room = room_object(room, {}), occupant = { bare_jid = FOCUS } })
		assert.equal(51, #answers)
		for _, a in ipairs(answers) do
			assert.is_true(a.ready)
			assert.equal(FOCUS, a.focus_jid)
		end
		assert.equal("ready", registry:state(room))
		-- a ready room is answered at once
		request(ext, room, respond)
		assert.is_true(answers[52].ready)
		assert.equal(1, #env.iqs)
	end)

	it("stores the notifying request's properties with the room, once", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		request(ext, room, function() end)
		ext.request(room, MUC, { room = room, properties = { "startAudioMuted", "9" } }, { door = "http" }, function() end)
		local r = room_object(room, {})
		r._data = {}
		env.muc("muc-occupant-joined", { room = r, occupant = { bare_jid = FOCUS } })
		assert.same({ startAudioMuted = "1" }, r._data.conference_properties)
	end)

	it("uses the bare module host as the NAT-ed sender of an HTTP request", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		request(ext, room, function() end, { door = "http" })
		assert.equal(HOST, env.iqs[1].stanza.attr.from)
	end)

	it("answers ready=false when the wait passes and re-notifies at most once per interval", function()
		local ext, env, registry = load({ ready_wait = 5 })
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		request(ext, room, respond)
		clock = clock + 2
		request(ext, room, respond)
		assert.equal(1, #env.iqs)
		clock = clock + 3.5
		env.run_timers()
		assert.equal(1, #answers)
		assert.is_false(answers[1].ready)
		request(ext, room, respond) -- 5.5 s after the notification: due again
		assert.equal(2, #env.iqs)
		clock = clock + 10
		env.run_timers()
		assert.equal(3, #answers)
		assert.equal(0, registry:stats().waiters)
		-- nobody waits any more: the idle pending room is swept
		clock = clock + 10
		env.run_timers()
		assert.equal("absent", registry:state(room))
	end)

	it("relays the focus's error to every waiter and forgets the room", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		for _ = 1, 3 do request(ext, room, respond) end
		local reply = st.error_reply(env.iqs[1].stanza, "auth", "not-authorized", "not authorized user domain")
		env.iqs[1].reject(require "util.error".from_stanza(reply))
		assert.equal(3, #answers)
		for _, a in ipairs(answers) do
			assert.equal("not-authorized", a.condition)
			assert.equal("not authorized user domain", a.text)
		end
		assert.equal("absent", registry:state(room))
	end)

	it("answers ready=false (not an error) when the focus resource was unreachable", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		request(ext, room, respond)
		local reply = st.error_reply(env.iqs[1].stanza, "cancel", "service-unavailable")
		env.iqs[1].reject(require "util.error".from_stanza(reply))
		assert.equal(1, #answers)
		assert.is_false(answers[1].ready)
	end)

	it("ignores its own IQ timeout (waiters keep their own deadline)", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		request(ext, room, respond)
		env.iqs[1].reject(require "util.error".new({ type = "wait", condition = "remote-server-timeout" }))
		assert.equal(0, #answers)
	end)

	it("answers ready=false at once past the waiter bound", function()
		local ext, env = load({ registry = { max_waiters_per_room = 2 } })
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		for _ = 1, 3 do request(ext, room, respond) end
		assert.equal(1, #answers)
		assert.is_false(answers[1].ready)
		assert.equal(1, #env.iqs)
	end)

	it("moves a ready room back to pending when the focus leaves, and forgets it when destroyed", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local r = room_object(room, {})
		env.muc("muc-occupant-joined", { room = r, occupant = { bare_jid = FOCUS } })
		assert.equal("ready", registry:state(room))
		env.muc("muc-occupant-left", { room = r, occupant = { bare_jid = "alice@localhost" } })
		assert.equal("ready", registry:state(room))
		env.muc("muc-occupant-left", { room = r, occupant = { bare_jid = FOCUS } })
		assert.equal("pending", registry:state(room))
		local answers, respond = collector()
		request(ext, room, respond)
		assert.equal(1, #env.iqs)
		env.muc("muc-room-destroyed", { room = r })
		assert.equal("absent", registry:state(room))
		assert.is_false(answers[1].ready)
	end)

	it("keeps a room ready while another session of the focus is still in it", function()
		local _, env, registry = load()
		local r = room_object(room, { { nick = room .. "/focus2", bare_jid = FOCUS } })
		env.muc("muc-occupant-joined", { room = r, occupant = { bare_jid = FOCUS } })
		env.muc("muc-occupant-left", { room = r, occupant = { bare_jid = FOCUS } })
		assert.equal("ready", registry:state(room))
	end)

	it("rebuilds readiness from live rooms at load", function()
		local env = fake_environment()
		env.rooms[1] = room_object("a@" .. MUC, { { nick = "a@" .. MUC .. "/focus", bare_jid = FOCUS } })
		env.rooms[2] = room_object("b@" .. MUC, { { nick = "b@" .. MUC .. "/x", bare_jid = "alice@localhost" } })
		_G.module, _G.prosody = env.module, env.prosody
		local lib = assert(loadfile("mod_conference_request/external_focus.lib.lua"))()
		local registry = native.registry()
		lib.new({ focus = FOCUS, ready_wait = 10, muc_hosts = { [MUC] = true } }, registry, nil, native.conditions).start()
		assert.equal("ready", registry:state("a@" .. MUC))
		assert.equal("absent", registry:state("b@" .. MUC))
	end)

	it("answers every waiter when the last focus resource goes offline, and at unload", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		request(ext, room, respond)
		request(ext, "r2@" .. MUC, respond)
		env.presence({ from = FOCUS .. "/a", type = "unavailable" })
		assert.equal(2, #answers)
		assert.equal(0, registry:stats().waiters)
		env.presence({ from = FOCUS .. "/a" })
		request(ext, "r3@" .. MUC, respond)
		ext.stop()
		assert.equal(3, #answers)
		assert.is_false(answers[3].ready)
		assert.equal(0, registry:stats().waiters)
	end)

	it("answers a crowd in batches across event-loop turns, and all of it at unload", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		local answers, respond = collector()
		for _ = 1, 2500 do request(ext, room, respond) end
		env.muc("muc-occupant-joined", { room = room_object(room, {}), occupant = { bare_jid = FOCUS } })
		assert.equal(1000, #answers)
		env.run_timers()
		assert.equal(2000, #answers)
		env.run_timers()
		assert.equal(2500, #answers)
		local room2 = "crowd2@" .. MUC
		for _ = 1, 2500 do request(ext, room2, respond) end
		env.muc("muc-occupant-joined", { room = room_object(room2, {}), occupant = { bare_jid = FOCUS } })
		assert.equal(3500, #answers)
		ext.stop()
		assert.equal(5000, #answers)
		for _, a in ipairs(answers) do assert.is_true(a.ready) end
	end)

	it("cancels the waiter of an HTTP client that goes away", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local response = {}
		local answers, respond = collector()
		request(ext, room, respond, { door = "http", response = response })
		request(ext, room, respond)
		assert.equal(2, registry:stats().waiters)
		response:on_destroy()
		assert.equal(1, registry:stats().waiters)
		env.muc("muc-occupant-joined", { room = room_object(room, {}), occupant = { bare_jid = FOCUS } })
		assert.equal(1, #answers)
	end)

	it("carries the focus's resources over a reload", function()
		local ext, env = load()
		env.presence({ from = FOCUS .. "/a" })
		local saved = ext.save()
		local ext2 = load()
		ext2.restore(saved)
		ext2.restore({ ["x@y"] = 12 }) -- the built-in focus's saved state is ignored
		assert.same({ "a" }, ext2.focus_resources())
	end)
end)

describe("external_focus.lib and the creation rate limit (ratelimit.lib)", function()
	local room = "limited@" .. MUC

	it("asks requester.creation_limited before announcing a new room, and only then", function()
		local ext, env, registry = load()
		env.presence({ from = FOCUS .. "/a" })
		local asked = 0
		local refusal = { condition = "resource-constraint", text = "too many new conferences", retry_after = 5 }
		local function limited_requester(refuse)
			return { door = "xmpp", jid = "alice@localhost/r1",
				creation_limited = function() asked = asked + 1; return refuse and refusal or nil end }
		end
		local answers, respond = collector()
		request(ext, room, respond, limited_requester(true))
		assert.same({ refusal }, answers)
		assert.equal(0, #env.iqs)
		assert.equal("absent", registry:state(room))
		request(ext, room, respond, limited_requester(false))
		assert.equal(1, #env.iqs)
		assert.equal(2, asked)
		-- the room is pending now: waiting on it creates nothing and is not limited
		request(ext, room, respond, limited_requester(true))
		assert.equal(2, asked)
		assert.equal(2, registry:stats().waiters)
	end)
end)
