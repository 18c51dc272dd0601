-- Specs of visitors.lib.lua (docs/protocol.md §6; issue 11 items 2, 3, 5): which requests are
-- queued, which are redirected and where, what the answer says, what is counted. The node set is
-- native.vnodes when the build has it, else spec/vnodes_standin.lua (the contract of native.vnodes
-- in plain Lua, specs only: the module itself refuses to load without the binding); fake MUC rooms
-- carry what mod_muc and Jitsi's modules keep (occupants, affiliations, room.jitsiMetadata,
-- room._data.lobbyroom). The same rules run end to end in tests/integration/test_visitors.py.

local MUC, BREAKOUT = "conference.localhost", "breakout.localhost"

local function fake_room(name, host)
	local room = { jid = name .. "@" .. (host or MUC), _data = {}, occupants = {}, affiliations = {} }
	function room:get_affiliation(j) return self.affiliations[j] end
	function room:each_occupant() return next, self.occupants, nil end
	function room:add(bare, nick)
		self.occupants[self.jid .. "/" .. (nick or bare)] = { bare_jid = bare }
	end
	return room
end

-- The real binding's node set when this build has it (branch `vnodes` merged), else the stand-in.
local native = require "conference_request_native"
local make_set = native.vnodes or dofile("spec/vnodes_standin.lua").new

local function load(opts)
	opts = opts or {}
	local env = { logs = {}, measured = {}, rooms = {}, passed = 0, forwarded = {} }
	_G.module = {
		host = "focus.localhost",
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		measure = function(_, name)
			return function() env.measured[name] = (env.measured[name] or 0) + 1 end
		end,
		context = function(_, host)
			return { hook = function(_, name, fn) env.hooks = env.hooks or {}; env.hooks[host .. " " .. name] = fn end }
		end,
		hook_global = function() end,
	}
	local muc = { get_room_from_jid = function(j) return env.rooms[j] end }
	_G.prosody = { hosts = { [MUC] = { modules = { muc = muc } }, [BREAKOUT] = { modules = { muc = muc } } } }
	local vcfg = {
		enabled = true, max_participants = opts.max_participants or 2, pending_window = 60,
		enable_live_room = opts.enable_live_room or false, require_room_flag = opts.require_room_flag or false,
		ignore_domains = opts.ignore_domains or {},
		nodes = opts.nodes or {
			{ id = "v1", focus_jid = "focus@v1.meet.jitsi", weight = 1, capacity = 2 },
			{ id = "v2", focus_jid = "focus@v2.meet.jitsi", weight = 1, capacity = 2 },
		},
	}
	env.set = make_set({ nodes = vcfg.nodes, pending_window = vcfg.pending_window })
	env.time = 1000
	local lib = assert(loadfile("mod_conference_request/visitors.lib.lua"))()
	local v = lib.new(vcfg, {
		set = not opts.focus and env.set or nil,
		focus = opts.focus, focus_jid = "focus.localhost", main_muc = MUC, max_rooms = 100,
		clock = function() return env.time end,
		forward = function(room_jid, request, requester, respond)
			table.insert(env.forwarded, { room = room_jid, request = request, requester = requester })
			respond(opts.focus_answer and opts.focus_answer(room_jid)
				or { room = room_jid, ready = true, focus_jid = "focus@v9.meet.jitsi", vnode = "v9", visitors_supported = true })
		end,
	})
	v.start()
	-- one request through the lib; the focus (pass) answers ready=true like focus.lib
	function env.ask(room_jid, props, requester, focus_result)
		local answer
		requester = requester or { door = "xmpp", jid = "guest@guest.localhost/r" }
		v.request(room_jid, nil, { room = room_jid, properties = props or {} }, requester,
			function(r) answer = r end,
			function(rj, _, _, _, respond)
				env.passed = env.passed + 1
				respond(focus_result or { room = rj, ready = true, focus_jid = "focus.localhost", visitors_supported = false })
			end)
		assert(answer, "answered")
		return answer
	end
	return v, env
end

local VERSION = { "visitors-version", "1" }
local ASKED = { "visitors-version", "1", "visitor", "true" }

local function full(room, n, domain)
	for i = 1, n do room:add(("user%d@%s"):format(i, domain or "localhost")) end
end

describe("visitors.lib flags", function()
	local flags = assert(loadfile("mod_conference_request/visitors.lib.lua"))().flags
	it("finds visitors-version by name and visitor=true anywhere", function()
		assert.same({ false, false }, { flags({}) })
		assert.same({ true, false }, { flags({ "visitors-version", "" }) })
		assert.same({ true, true }, { flags({ "visitor", "true", "x", "y", "visitors-version", "1" }) })
		assert.same({ false, false }, { flags({ "visitor", "True" }) })
	end)
end)

describe("visitors.lib, built-in focus", function()
	it("below the limit: no redirect, visitors-supported true", function()
		local _, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		room:add("a@localhost")
		local a = env.ask(room.jid, VERSION)
		assert.is_nil(a.vnode)
		assert.equal("focus.localhost", a.focus_jid)
		assert.is_true(a.visitors_supported)
	end)

	it("at the limit: a visitors-version request is redirected, one without it is not", function()
		local v, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		full(room, 2)
		local plain = env.ask(room.jid, { "startAudioMuted", "1" })
		assert.is_nil(plain.vnode)
		assert.is_true(plain.visitors_supported)
		local a = env.ask(room.jid, VERSION)
		assert.truthy(a.vnode == "v1" or a.vnode == "v2")
		assert.equal("focus@" .. a.vnode .. ".meet.jitsi", a.focus_jid)
		assert.is_true(a.ready)
		assert.is_true(a.visitors_supported)
		assert.equal(1, v.counts.redirects)
		assert.equal(1, v.counts.hash)
		assert.equal(1, env.measured["visitors_redirect_" .. a.vnode])
		assert.equal(1, env.measured.visitors_choice_hash)
	end)

	it("visitor=true is redirected at once, even into an empty room", function()
		local _, env = load()
		local a = env.ask("new@" .. MUC, ASKED)
		assert.truthy(a.vnode)
		assert.equal(1, env.passed) -- the main room is made ready first (ready as for the main room)
	end)

	it("a not-ready or failed focus answer is passed through without a choice", function()
		local v, env = load()
		local a = env.ask("new@" .. MUC, ASKED, nil, { room = "new@" .. MUC, ready = false, focus_jid = "focus.localhost" })
		assert.is_nil(a.vnode)
		local e = env.ask("new@" .. MUC, ASKED, nil, { condition = "not-authorized", text = "no" })
		assert.equal("not-authorized", e.condition)
		assert.equal(0, v.counts.redirects)
		assert.is_false(env.set:uses("new@" .. MUC))
	end)

	it("preferred users stay unless they asked: affiliation member/admin/owner", function()
		local _, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		full(room, 3)
		for _, aff in ipairs({ "member", "admin", "owner" }) do
			room.affiliations["boss@localhost"] = aff
			local a = env.ask(room.jid, VERSION, { door = "xmpp", jid = "boss@localhost/x" })
			assert.is_nil(a.vnode, aff)
		end
		room.affiliations["boss@localhost"] = "outcast"
		assert.truthy(env.ask(room.jid, VERSION, { door = "xmpp", jid = "boss@localhost/x" }).vnode)
		room.affiliations["boss@localhost"] = "owner"
		assert.truthy(env.ask(room.jid, ASKED, { door = "xmpp", jid = "boss@localhost/x" }).vnode)
	end)

	it("preferred users stay: JWT user id or group listed in the metadata (jitsiMetadata or _data)", function()
		local _, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		full(room, 3)
		room.jitsiMetadata = { participants = { "u-1", "g-people" }, moderators = { "g-mods" } }
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "x", group = "g-people" } }).vnode)
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-1" } }).vnode)
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "x", group = "g-mods" } }).vnode)
		assert.truthy(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-2" } }).vnode)
		room.jitsiMetadata = nil
		room._data.jitsiMetadata = { moderators = { "u-3" } }
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-3" } }).vnode)
	end)

	it("the soft limit of the metadata replaces max_participants", function()
		local _, env = load({ max_participants = 50 })
		local room = fake_room("r"); env.rooms[room.jid] = room
		full(room, 2)
		assert.is_nil(env.ask(room.jid, VERSION).vnode)
		room.jitsiMetadata = { participantsSoftLimit = 2 }
		assert.truthy(env.ask(room.jid, VERSION).vnode)
	end)

	it("a room that already sends visitors to a node redirects below the limit, to that node until capacity", function()
		local v, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		local first = env.ask(room.jid, ASKED).vnode
		assert.equal(first, env.ask(room.jid, VERSION).vnode) -- reuse (load 1 < capacity 2)
		assert.equal(1, v.counts.reuse)
		local third = env.ask(room.jid, VERSION).vnode       -- first is full: the other one
		assert.truthy(third and third ~= first)
		-- a member still stays
		room.affiliations["m@localhost"] = "member"
		assert.is_nil(env.ask(room.jid, VERSION, { door = "xmpp", jid = "m@localhost/x" }).vnode)
		-- the room is destroyed: its state goes
		env.hooks[MUC .. " muc-room-destroyed"]({ room = room })
		assert.is_false(env.set:uses(room.jid))
	end)

	it("a room stops 'using' a node when its only redirects leave the pending window", function()
		local _, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		assert.truthy(env.ask(room.jid, ASKED).vnode)
		assert.truthy(env.ask(room.jid, VERSION).vnode)
		env.time = env.time + 61
		assert.is_nil(env.ask(room.jid, VERSION).vnode)
	end)

	it("ignore_domains: occupants not counted, requesters never redirected", function()
		local _, env = load({ ignore_domains = { "recorder.localhost" } })
		local room = fake_room("r"); env.rooms[room.jid] = room
		room:add("a@localhost"); full(room, 3, "recorder.localhost")
		assert.is_nil(env.ask(room.jid, VERSION).vnode)
		room:add("b@localhost")
		assert.truthy(env.ask(room.jid, VERSION).vnode)
		assert.is_nil(env.ask(room.jid, ASKED, { door = "xmpp", jid = "jibri@recorder.localhost/x" }).vnode)
	end)

	it("no redirect with lobby on, visitorsEnabled=false, in a breakout room, or without the required flag", function()
		local _, env = load()
		local room = fake_room("r"); env.rooms[room.jid] = room
		full(room, 3)
		room._data.lobbyroom = "r@lobby.localhost"
		local a = env.ask(room.jid, ASKED)
		assert.is_nil(a.vnode); assert.is_true(a.visitors_supported)
		room._data.lobbyroom = nil
		room.jitsiMetadata = { lobbyEnabled = true }
		assert.is_nil(env.ask(room.jid, ASKED).vnode)
		room.jitsiMetadata = { visitorsEnabled = false }
		a = env.ask(room.jid, ASKED)
		assert.is_nil(a.vnode); assert.is_false(a.visitors_supported)
		local b = fake_room("b", BREAKOUT); env.rooms[b.jid] = b
		full(b, 3)
		a = env.ask(b.jid, ASKED)
		assert.is_nil(a.vnode); assert.is_false(a.visitors_supported)

		local _, env2 = load({ require_room_flag = true })
		local f = fake_room("f"); env2.rooms[f.jid] = f
		full(f, 3)
		a = env2.ask(f.jid, ASKED)
		assert.is_nil(a.vnode); assert.is_false(a.visitors_supported)
		f.jitsiMetadata = { visitorsEnabled = true }
		assert.truthy(env2.ask(f.jid, ASKED).vnode)
	end)

	it("a node marked down receives no one; none healthy: no redirect, counted", function()
		local v, env = load()
		assert(v.set_healthy("v1", false))
		for i = 1, 6 do
			assert.equal("v2", env.ask(("r%d@%s"):format(i, MUC), ASKED).vnode)
		end
		assert(v.set_healthy("v2", false))
		local a = env.ask("x@" .. MUC, ASKED)
		assert.is_nil(a.vnode)
		assert.equal("focus.localhost", a.focus_jid)
		assert.equal(1, v.counts.none)
		assert.equal(1, env.measured.visitors_choice_none)
		assert.is_nil(v.set_healthy("v7", true))
	end)

	it("set_load reports visitors of a node (in a room or in total) for trials", function()
		local v, env = load()
		assert(v.set_load("v1", 2))
		assert(v.set_load("v2", 1, "r@" .. MUC))
		local nodes = v.nodes()
		assert.equal(2, nodes[1].load)
		assert.equal(1, nodes[2].load)
		-- every node full but v2 less loaded: least-loaded
		assert(v.set_load("v2", 2, "r@" .. MUC))
		env.ask("z@" .. MUC, ASKED)
		assert.equal(1, v.counts.least_loaded)
	end)
end)

describe("visitors.lib, live queue", function()
	it("queues visitor=true for a room not live: ready=false, live, nothing created", function()
		local v, env = load({ enable_live_room = true })
		local a = env.ask("q@" .. MUC, ASKED)
		assert.is_false(a.ready)
		assert.is_true(a.live_queue)
		assert.equal(0, env.passed)
		assert.equal(1, v.counts.queued)
		assert.equal(1, env.measured.visitors_queued)
		-- no visitors-version: never queued
		assert.is_nil(env.ask("q@" .. MUC, { "visitor", "true" }).live_queue)
		assert.equal(1, env.passed)
	end)

	it("queues those not allowed in the main room; a live room is not queued", function()
		local _, env = load({ enable_live_room = true })
		local room = fake_room("r"); env.rooms[room.jid] = room
		room.jitsiMetadata = { participants = { "u-1" } }
		assert.is_true(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-2" } }).live_queue)
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-1" } }).live_queue)
		room.jitsiMetadata.visitors = { live = true }
		assert.is_nil(env.ask(room.jid, VERSION, { door = "http", claims = { user_id = "u-2" } }).live_queue)
	end)

	it("open rooms (no participants list) are not queued for those who did not ask", function()
		local _, env = load({ enable_live_room = true })
		assert.is_nil(env.ask("o@" .. MUC, VERSION).live_queue)
	end)
end)

describe("visitors.lib, external focus", function()
	local FOCUS = "focus@auth.localhost"

	it("answers below the limit without the focus; forwards at the limit and remembers the room", function()
		local v, env = load({ focus = FOCUS })
		local room = fake_room("r"); env.rooms[room.jid] = room
		room:add(FOCUS, "focus") -- the focus occupant does not count
		room:add("a@localhost")
		local a = env.ask(room.jid, VERSION)
		assert.is_nil(a.vnode)
		assert.equal(0, #env.forwarded)
		assert.equal(1, env.passed)
		room:add("b@localhost")
		a = env.ask(room.jid, VERSION)
		assert.equal("v9", a.vnode)
		assert.equal("focus@v9.meet.jitsi", a.focus_jid)
		assert.equal(1, #env.forwarded)
		assert.equal(1, env.passed)
		assert.equal(1, env.measured.visitors_redirect_v9)
		-- the room now uses a visitor node: forwarded below the limit too (even a member: the focus decides)
		room.occupants[room.jid .. "/b@localhost"] = nil
		room.affiliations["m@localhost"] = "member"
		env.ask(room.jid, VERSION, { door = "xmpp", jid = "m@localhost/x" })
		assert.equal(2, #env.forwarded)
		-- without visitors-version: never forwarded
		env.ask(room.jid, {})
		assert.equal(2, #env.forwarded)
		-- destroyed: forgotten
		env.hooks[MUC .. " muc-room-destroyed"]({ room = room })
		env.ask(room.jid, VERSION)
		assert.equal(2, #env.forwarded)
		assert.same({}, v.nodes())
	end)

	it("a guest's visitor=true for a room that does not exist is not forwarded", function()
		local _, env = load({ focus = FOCUS })
		env.ask("g@" .. MUC, ASKED, { door = "http", may_create = false })
		assert.equal(0, #env.forwarded)
		assert.equal(1, env.passed)
		local room = fake_room("g"); env.rooms[room.jid] = room
		env.ask(room.jid, ASKED, { door = "http", may_create = false })
		assert.equal(1, #env.forwarded)
	end)

	it("forwards visitor=true; a focus answer without vnode is not remembered", function()
		local _, env = load({ focus = FOCUS, focus_answer = function(r)
			return { room = r, ready = true, focus_jid = FOCUS, visitors_supported = true }
		end })
		env.ask("n@" .. MUC, ASKED)
		assert.equal(1, #env.forwarded)
		env.ask("n@" .. MUC, VERSION)
		assert.equal(1, #env.forwarded)
	end)
end)
