-- Specs of vnode_role.lib.lua (the visitor node's side of the report protocol, docs/protocol.md
-- §6.2, issue 12): who is counted, coalescing, heartbeats, snapshots and their split, at most one
-- report in flight, healing after errors. `module` is a small stand-in; timers run when a spec
-- moves the clock; reports go to a fake send that keeps them for the spec to answer.
local NS = "urn:x-conference-request:vnode:0"
local MUC, HOST = "conference.v1.meet.jitsi", "focus.v1.meet.jitsi"
local LOCAL = { ["v1.meet.jitsi"] = true, [HOST] = true }

local function load(opts)
	opts = opts or {}
	local env = { time = 0, timers = {}, sent = {}, logs = {}, rooms = {}, measured = {} }
	_G.module = {
		host = HOST,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		hook_global = function() end,
		measure = function(_, name) return function() env.measured[name] = (env.measured[name] or 0) + 1 end end,
	}
	local muc = {
		get_room_from_jid = function(j) return env.rooms[j] end,
		live_rooms = function() return coroutine.wrap(function()
			for _, r in pairs(env.rooms) do coroutine.yield(r) end
		end) end,
	}
	local lib = assert(loadfile("mod_conference_request/vnode_role.lib.lua"))()
	env.lib = lib
	local r = lib.new({ muc = MUC, main = "focus.meet.example.com", node_id = "v1", report_interval = opts.interval or 10 }, {
		host = HOST, muc = muc, is_local = function(h) return LOCAL[h] == true end,
		add_timer = function(delay, fn) table.insert(env.timers, { at = env.time + delay, fn = fn }); return {} end,
		send = function(stanza, ok, fail) table.insert(env.sent, { stanza = stanza, ok = ok, fail = fail }) end,
	})
	env.r = r
	function env.advance(dt)
		local target = env.time + dt
		while true do
			table.sort(env.timers, function(a, b) return a.at < b.at end)
			local t = env.timers[1]
			if not t or t.at > target then break end
			table.remove(env.timers, 1)
			env.time = t.at
			local again = t.fn()
			if again then table.insert(env.timers, { at = env.time + again, fn = t.fn }) end
		end
		env.time = target
	end
	function env.room(name)
		local room = env.rooms[name .. "@" .. MUC]
		if not room then
			room = { jid = name .. "@" .. MUC, occupants = {} }
			function room:each_occupant() return next, self.occupants, nil end
			env.rooms[room.jid] = room
		end
		return room
	end
	function env.join(name, bare)
		local room = env.room(name)
		room.occupants[room.jid .. "/" .. bare] = { bare_jid = bare }
		r.mark(room)
	end
	function env.leave(name, bare)
		local room = env.room(name)
		room.occupants[room.jid .. "/" .. bare] = nil
		r.mark(room)
	end
	-- the report stanzas sent so far (and not yet inspected): { attrs, rooms = name -> visitors, stanza }
	env.seen = 0
	function env.new_reports()
		local out = {}
		for i = env.seen + 1, #env.sent do
			local s = env.sent[i].stanza
			local rep = s:get_child("report", NS)
			local rooms, n = {}, 0
			for _, tag in ipairs(rep.tags) do rooms[tag.attr.name] = tonumber(tag.attr.visitors); n = n + 1 end
			out[#out + 1] = { attrs = rep.attr, rooms = rooms, n = n, stanza = s, bytes = #tostring(s), i = i }
		end
		env.seen = #env.sent
		return out
	end
	function env.answer(ok, condition)
		local last = env.sent[#env.sent]
		if ok then last.ok() else last.fail(condition or "remote-server-timeout") end
	end
	return env
end

describe("vnode_role.lib", function()
	it("counts local occupants other than the focus: remote (s2s) occupants are not this node's visitors", function()
		local env = load()
		env.r.start()
		env.join("room1", "a@v1.meet.jitsi")
		env.join("room1", "b@v1.meet.jitsi")
		env.join("room1", HOST)                     -- the focus
		env.join("room1", "jicofo@auth.meet.example.com") -- mirrored from the main server
		env.advance(1)
		local reports = env.new_reports()
		assert.equal(1, #reports)
		assert.same({ xmlns = NS, node = "v1", total = "2", full = "true" }, reports[1].attrs)
		assert.same({ room1 = 2 }, reports[1].rooms)
		assert.equal("focus.meet.example.com", reports[1].stanza.attr.to)
		assert.equal(HOST, reports[1].stanza.attr.from)
	end)

	it("sends a full snapshot first, then coalesces a burst of changes into one delta", function()
		local env = load()
		env.r.start()
		env.advance(1)
		local first = env.new_reports()
		assert.equal(1, #first)
		assert.equal("true", first[1].attrs.full)
		assert.equal(0, first[1].n)
		env.answer(true)
		for i = 1, 20 do env.join("room1", "u" .. i .. "@v1.meet.jitsi") end
		env.join("room2", "x@v1.meet.jitsi")
		env.leave("room1", "u20@v1.meet.jitsi")
		assert.equal(0, #env.new_reports()) -- nothing before the coalescing delay
		env.advance(0.5)
		local reports = env.new_reports()
		assert.equal(1, #reports)
		assert.is_nil(reports[1].attrs.full)
		assert.equal("20", reports[1].attrs.total)
		assert.same({ room1 = 19, room2 = 1 }, reports[1].rooms)
		env.answer(true)
		-- a room emptied is sent as visitors='0'; unchanged rooms are not repeated
		env.leave("room2", "x@v1.meet.jitsi")
		env.advance(0.5)
		reports = env.new_reports()
		assert.same({ room2 = 0 }, reports[1].rooms)
		assert.equal("19", reports[1].attrs.total)
	end)

	it("sends a heartbeat every report_interval, even without changes", function()
		local env = load({ interval = 10 })
		env.r.start()
		env.advance(1)
		env.new_reports()
		env.answer(true)
		env.join("room1", "a@v1.meet.jitsi")
		env.advance(1)
		env.new_reports()
		env.answer(true)
		env.advance(8.5) -- t = 10.5: the first heartbeat
		local beats = env.new_reports()
		assert.equal(1, #beats)
		assert.equal(0, beats[1].n)
		assert.equal("1", beats[1].attrs.total)
		assert.is_nil(beats[1].attrs.full)
		env.answer(true)
		env.advance(10)
		assert.equal(1, #env.new_reports())
	end)

	it("keeps at most one report in flight: changes and heartbeats wait and merge into the next", function()
		local env = load({ interval = 10 })
		env.r.start()
		env.advance(1)
		env.new_reports()
		env.answer(true)
		env.join("room1", "a@v1.meet.jitsi")
		env.advance(1)
		assert.equal(1, #env.new_reports()) -- in flight, not answered (main server unreachable)
		for i = 1, 50 do
			env.join("room" .. (i % 5), "b" .. i .. "@v1.meet.jitsi")
			env.advance(1) -- changes every second, heartbeats every 10
		end
		assert.equal(0, #env.new_reports())
		assert.is_true(env.r.status().in_flight)
		env.answer(true)
		local next_one = env.new_reports()
		assert.equal(1, #next_one)
		assert.same({ room0 = 10, room1 = 11, room2 = 10, room3 = 10, room4 = 10 }, next_one[1].rooms)
		assert.equal("51", next_one[1].attrs.total)
	end)

	it("after an error or timeout sends a full snapshot, at the next heartbeat", function()
		local env = load({ interval = 10 })
		env.r.start()
		env.advance(1)
		env.new_reports()
		env.answer(true)
		env.join("room1", "a@v1.meet.jitsi")
		env.advance(1)
		env.new_reports()
		env.answer(false, "remote-server-timeout")
		assert.equal(1, env.measured.visitors_reports_failed)
		assert.equal(2, env.measured.visitors_reports_sent) -- the first snapshot, the delta
		env.join("room2", "b@v1.meet.jitsi")
		env.advance(1)
		assert.equal(0, #env.new_reports()) -- no retry storm before the heartbeat
		env.advance(8) -- t = 11: heartbeat
		local reports = env.new_reports()
		assert.equal(1, #reports)
		assert.equal("true", reports[1].attrs.full)
		assert.same({ room1 = 1, room2 = 1 }, reports[1].rooms)
		env.answer(true)
		env.join("room2", "c@v1.meet.jitsi")
		env.advance(1)
		reports = env.new_reports()
		assert.is_nil(reports[1].attrs.full)
		assert.same({ room2 = 2 }, reports[1].rooms)
	end)

	it("sends a full snapshot at once when the main server asks for one (unexpected-request)", function()
		local env = load()
		env.r.start()
		env.advance(1)
		env.new_reports()
		env.answer(true)
		env.join("room1", "a@v1.meet.jitsi")
		env.advance(1)
		env.new_reports()
		env.answer(false, "unexpected-request") -- e.g. the main server restarted
		local reports = env.new_reports()
		assert.equal(1, #reports)
		assert.equal("true", reports[1].attrs.full)
		assert.same({ room1 = 1 }, reports[1].rooms)
		env.answer(false, "unexpected-request") -- asked again right away: wait for the heartbeat
		assert.equal(0, #env.new_reports())
	end)

	it("sends a full snapshot every FULL_EVERY heartbeats", function()
		local env = load({ interval = 1 })
		env.r.start()
		local fulls = 0
		for _ = 1, env.lib.FULL_EVERY * 2 + 1 do
			env.advance(1)
			for _, rep in ipairs(env.new_reports()) do
				if rep.attrs.full then fulls = fulls + 1 end
				env.answer(true)
			end
		end
		assert.equal(3, fulls) -- start, and twice
	end)

	it("splits a snapshot of thousands of rooms into bounded parts sent one after the other", function()
		local env = load()
		for i = 1, 1200 do
			local room = env.room(("room%04d"):format(i))
			room.occupants["v" .. i] = { bare_jid = "v" .. i .. "@v1.meet.jitsi" }
		end
		env.r.start() -- counts the rooms that exist
		env.advance(1)
		local parts = {}
		while true do
			local got = env.new_reports()
			if #got == 0 then break end
			assert.equal(1, #got)
			parts[#parts + 1] = got[1]
			env.answer(true)
		end
		assert.equal(3, #parts)
		local seen = 0
		for k, p in ipairs(parts) do
			assert.equal("true", p.attrs.full)
			assert.equal(tostring(k), p.attrs.part)
			assert.equal("3", p.attrs.parts)
			assert.equal("1200", p.attrs.total)
			assert.is_true(p.n <= env.lib.MAX_PART_ROOMS)
			assert.is_true(p.bytes <= env.lib.MAX_PART_BYTES + 300, p.bytes)
			seen = seen + p.n
		end
		assert.equal(1200, seen)
		assert.equal(500, parts[1].n)
		-- long room names: the byte bound splits before the room count does
		env = load()
		for i = 1, 300 do
			local room = env.room(("%s%04d"):format(("n"):rep(900), i))
			room.occupants.x = { bare_jid = "x@v1.meet.jitsi" }
		end
		env.r.start()
		env.advance(1)
		local n, max = 0, 0
		while true do
			local got = env.new_reports()
			if #got == 0 then break end
			n = n + 1
			max = math.max(max, got[1].bytes)
			env.answer(true)
		end
		assert.is_true(n >= 9, n) -- 300 × ~940 bytes / 32,000
		assert.is_true(max <= env.lib.MAX_PART_BYTES + 300, max)
	end)

	it("splits a large delta too, the rest following each answer", function()
		local env = load()
		env.r.start()
		env.advance(1)
		env.new_reports()
		env.answer(true)
		for i = 1, 700 do env.join(("room%04d"):format(i), "a@v1.meet.jitsi") end
		env.advance(1)
		local a = env.new_reports()
		assert.equal(1, #a)
		assert.equal(500, a[1].n)
		env.answer(true)
		local b = env.new_reports()
		assert.equal(1, #b)
		assert.equal(200, b[1].n)
	end)

	it("counts room_bytes as util.stanza serializes a room element", function()
		local st = require "util.stanza"
		local lib = assert(loadfile("mod_conference_request/vnode_role.lib.lua"))()
		for _, name in ipairs({ "room1", "[tenant]r", "a'b&c<d>\"e" }) do
			local el = st.stanza("room", { name = name, visitors = "123" })
			assert.is_true(lib.room_bytes(name, 123) >= #tostring(el), name)
		end
	end)
end)
