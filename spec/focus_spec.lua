-- Specs of focus.lib.lua (the built-in focus): room creation through a fake mod_muc and the
-- empty-room timer, with the real C registry. `module` and `prosody` are small stand-ins; the
-- clock is a variable the specs move and timers run when a spec says so. The end-to-end behaviour
-- against a real Prosody is in tests/integration/test_focus.py.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()

local MUC = "conference.localhost"
local TIMEOUT = 60

local clock = 1000
package.loaded["util.time"] = { monotonic = function() return clock end, now = function() return clock end }

local function fake_environment()
	local env = { hooks = {}, timers = {}, logs = {}, rooms = {}, expired = 0, created = 0 }
	local function fire(name, event)
		for _, fn in ipairs(env.hooks[name] or {}) do fn(event) end
	end
	env.fire = fire
	-- env.rooms is mod_muc's live cache; env.all holds every room, parked ones (forget_room) too
	env.all = {}
	local function new_room(jid)
		local room = { jid = jid, _data = {}, occupants = 0 }
		function room.has_occupant(r) return r.occupants > 0 end
		function room.set_persistent(r, v) r.persistent = v end
		function room.destroy(r)
			r.destroyed = true
			env.rooms[r.jid], env.all[r.jid] = nil, nil
			fire("muc-room-destroyed", { room = r })
		end
		env.rooms[jid], env.all[jid] = room, room
		return room
	end
	env.new_room = new_room
	env.module = {
		host = "focus.localhost",
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		context = function(_, host)
			assert(host == MUC)
			return { hook = function(_, name, fn)
				env.hooks[name] = env.hooks[name] or {}
				table.insert(env.hooks[name], fn)
			end }
		end,
		hook_global = function() end,
		add_timer = function(_, delay, fn) table.insert(env.timers, { at = clock + delay, fn = fn }) end,
	}
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
	return env
end

local function load(rooms)
	local env = fake_environment()
	if rooms then env.rooms, env.all = rooms.live, rooms.all end
	_G.module, _G.prosody = env.module, env.prosody
	local lib = assert(loadfile("mod_conference_request/focus.lib.lua"))()
	local registry = native.registry()
	local cfg = { focus_jid = "focus.localhost", empty_room_timeout = TIMEOUT, max_rooms = 100,
		muc_hosts = { [MUC] = true } }
	local metrics = {
		room_created = function() env.created = env.created + 1 end,
		room_expired = function() env.expired = env.expired + 1 end,
	}
	local focus = lib.new(cfg, registry, metrics)
	focus.start()
	env.timers = {} -- the start-up check of the MUC hosts
	return focus, env, registry
end

local function request(focus, room_jid)
	local answers = {}
	focus.request(room_jid, MUC, { room = room_jid }, { door = "xmpp" }, function(a) table.insert(answers, a) end)
	return answers
end

describe("focus.lib empty-room timer", function()
	local room_jid = "r1@" .. MUC

	it("creates a missing room, answers ready, and destroys it when nobody joined in time", function()
		local focus, env, registry = load()
		local answers = request(focus, room_jid)
		assert.same({ { room = room_jid, ready = true, focus_jid = "focus.localhost", visitors_supported = false } }, answers)
		assert.equal(1, env.created)
		assert.equal("ready", registry:state(room_jid))
		local room = env.all[room_jid]
		clock = clock + TIMEOUT - 1
		env.run_timers()
		assert.is_nil(room.destroyed)
		clock = clock + 1
		env.run_timers()
		assert.is_true(room.destroyed)
		assert.equal(1, env.expired)
		assert.equal("absent", registry:state(room_jid))
		assert.equal(0, #env.timers)
	end)

	it("cancels the timeout when somebody joins", function()
		local focus, env = load()
		request(focus, room_jid)
		local room = env.all[room_jid]
		room.occupants = 1
		env.fire("muc-occupant-joined", { room = room })
		assert.is_false(focus.rooms()[1].unjoined)
		room.occupants = 0 -- (left again without mod_muc destroying it: still not ours to destroy)
		clock = clock + TIMEOUT
		env.run_timers()
		assert.is_nil(room.destroyed)
		assert.equal(0, env.expired)
	end)

	it("does not destroy a room that has occupants when the timer fires (a join it missed)", function()
		local focus, env, registry = load()
		request(focus, room_jid)
		local room = env.all[room_jid]
		room.occupants = 1 -- joined, but muc-occupant-joined never reached the module
		assert.is_true(focus.rooms()[1].unjoined)
		clock = clock + TIMEOUT
		env.run_timers()
		assert.is_nil(room.destroyed)
		assert.equal(0, env.expired)
		assert.equal("ready", registry:state(room_jid))
		assert.is_false(focus.rooms()[1].unjoined, "the wait is over either way")
		assert.equal(room, env.rooms[room_jid], "the occupied room is back in mod_muc's live rooms")
	end)

	it("re-arms after a reload only for rooms still live on a served MUC", function()
		local focus, env = load()
		request(focus, room_jid)
		local saved = focus.save()
		saved["gone@" .. MUC] = clock + 5           -- destroyed meanwhile
		saved["r2@other.localhost"] = clock + 5     -- on a MUC this module no longer serves
		focus.stop()
		local focus2, env2 = load({ live = env.rooms, all = env.all })        -- the new instance rebuilds from the live rooms
		env2.prosody.hosts["other.localhost"] = { modules = { muc = {
			get_room_from_jid = function(jid) return env2.rooms[jid] end } } }
		local other = env2.new_room("r2@other.localhost")
		focus2.restore(saved)
		assert.equal(1, #env2.timers, "one timer: the live room on the served MUC")
		clock = clock + TIMEOUT
		env2.run_timers()
		assert.is_true(env.all[room_jid] == nil, "the restored deadline still expires the unjoined room")
		assert.is_nil(other.destroyed)
	end)
end)
