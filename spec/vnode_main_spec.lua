-- Specs of vnode_main.lib.lua (the main server's side of the report protocol, docs/protocol.md §6.2,
-- issue 12): which reports are accepted, what they change in the real C node set (native.vnodes),
-- and each node's health from report age, s2s link and operator. `module` is a small stand-in; the
-- clock is a variable the specs move. End to end: tests/integration/test_reports.py (one Prosody)
-- and test_federation.py (three, over s2s).
local st = require "util.stanza"
local native = require "conference_request_native"

local NS = "urn:x-conference-request:vnode:0"
local HOST, MUC = "focus.meet.example.com", "conference.meet.example.com"

local NODES = {
	{ id = "v1", focus_jid = "focus@focus.v1.meet.jitsi", weight = 1, capacity = 100, jid = "focus.v1.meet.jitsi",
		reports = true },
	{ id = "v2", focus_jid = "focus@focus.v2.meet.jitsi", weight = 1, capacity = 100, jid = "focus.v2.meet.jitsi",
		reports = true },
	{ id = "v3", focus_jid = "focus@v3.meet.jitsi", weight = 1, capacity = 100, jid = "v3.meet.jitsi", reports = false },
}

local function load(opts)
	opts = opts or {}
	local env = { time = 1000, logs = {}, hooks = {}, global = {}, timers = {}, measured = {} }
	_G.module = {
		host = HOST,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		hook = function(_, name, fn) env.hooks[name] = fn end,
		hook_global = function(_, name, fn) env.global[name] = fn end,
	}
	local core = {}
	for i, n in ipairs(NODES) do
		core[i] = { id = n.id, focus_jid = n.focus_jid, weight = n.weight, capacity = n.capacity }
	end
	env.set = native.vnodes({ nodes = core, max_rooms = opts.max_rooms or 1000 })
	local visitors = { node_set = function() return env.set end }
	local lib = assert(loadfile("mod_conference_request/vnode_main.lib.lua"))()
	local health = lib.new({ nodes = NODES, node_timeout = 30 }, visitors, {
		main_muc = MUC, host = HOST, clock = function() return env.time end,
		add_timer = function(delay, fn) table.insert(env.timers, { delay = delay, fn = fn }); return {} end,
		measure = function(name) return function() env.measured[name] = (env.measured[name] or 0) + 1 end end,
	})
	visitors.health = health
	health.start()
	env.health = health
	function env.node(id)
		local list = health.annotate(env.set:nodes(env.time))
		for _, n in ipairs(list) do if n.id == id then return n end end
	end
	function env.tick()
		for _, t in ipairs(env.timers) do t.fn() end
	end
	function env.send(from, attrs, rooms)
		local iq = st.iq({ type = "set", from = from, to = HOST, id = "r1" }):tag("report", attrs)
		for _, r in ipairs(rooms or {}) do iq:tag("room", { name = r[1], visitors = r[2] and tostring(r[2]) }):up() end
		iq:up()
		local reply
		env.hooks["iq-set/host/" .. NS .. ":report"]({ stanza = iq, origin = { send = function(s) reply = s end } })
		return reply
	end
	function env.condition(reply)
		local err = reply:get_child("error")
		for _, tag in ipairs(err.tags) do
			if tag.attr.xmlns == "urn:ietf:params:xml:ns:xmpp-stanzas" and tag.name ~= "text" then return tag.name end
		end
	end
	function env.warned(pattern)
		for _, l in ipairs(env.logs) do if l[1] == "warn" and l[2]:find(pattern) then return true end end
		return false
	end
	return env
end

local function full(node, total, extra)
	local a = { xmlns = NS, node = node, total = tostring(total), full = "true" }
	for k, v in pairs(extra or {}) do a[k] = v end
	return a
end

describe("vnode_main.lib: accepting reports", function()
	it("accepts the minimal full report from the node's reporter JID and feeds the node set", function()
		local env = load()
		assert.is_false(env.node("v1").healthy) -- no report yet
		assert.equal("no-report", env.node("v1").down_reason)
		local reply = env.send("focus.v1.meet.jitsi", full("v1", 57), { { "room1", 40 }, { "[tenant]room2", 17 } })
		assert.equal("result", reply.attr.type)
		local n = env.node("v1")
		assert.is_true(n.healthy)
		assert.is_nil(n.down_reason)
		assert.equal(0, n.reported)
		assert.equal(57, n.visitors)
		assert.equal(2, n.rooms)
		assert.same({ v1 = { visitors = 17, pending = 0 } }, env.set:room("[tenant]room2@" .. MUC, env.time))
		assert.equal(1, env.measured.visitors_reports)
	end)

	it("refuses a report from a JID that is no configured reporter (forbidden, warn, nothing changed)", function()
		local env = load()
		for _, from in ipairs({ "user@focus.v1.meet.jitsi/res", "focus.v9.meet.jitsi", "v3.meet.jitsi" }) do
			local reply = env.send(from, full("v1", 5), { { "room1", 5 } })
			assert.equal("error", reply.attr.type)
			assert.equal("forbidden", env.condition(reply))
		end
		assert.equal(0, env.node("v1").visitors)
		assert.is_false(env.node("v1").healthy)
		assert.is_true(env.warned("not a configured visitor node's reporter JID"))
		assert.equal(3, env.measured.visitors_reports_refused)
	end)

	it("logs a flood of refused reports at warn once per 10 s, the rest at debug, counted", function()
		local env = load()
		for i = 1, 1000 do
			local reply = env.send("mallory" .. i .. "@evil.example/x", full("v1", 5), { { "room1", 5 } })
			assert.equal("forbidden", env.condition(reply))
		end
		local function count(level) -- lines about refused reports
			local n = 0
			for _, l in ipairs(env.logs) do if l[1] == level and l[2]:find("refused") then n = n + 1 end end
			return n
		end
		assert.equal(1, count("warn"))
		assert.equal(999, count("debug"))
		assert.equal(1000, env.measured.visitors_reports_refused)
		env.time = env.time + 10
		env.send("mallory@evil.example/x", full("v1", 5), { { "room1", 5 } })
		assert.equal(2, count("warn"))
		assert.is_true(env.warned("and 999 more refused reports in the last 10 s"))
		-- the node's own reports are not held back by the flood
		assert.equal("result", env.send("focus.v1.meet.jitsi", full("v1", 5), { { "room1", 5 } }).attr.type)
		assert.is_true(env.node("v1").healthy)
	end)

	it("refuses one node's reporter naming another node's id", function()
		local env = load()
		local reply = env.send("focus.v2.meet.jitsi", full("v1", 5), { { "room1", 5 } })
		assert.equal("forbidden", env.condition(reply))
		assert.equal(0, env.node("v1").visitors)
		assert.is_false(env.node("v1").healthy)
		assert.is_false(env.node("v2").healthy) -- its own health does not move either
		assert.is_true(env.warned("this JID reports for node v2"))
	end)

	it("answers bad-request to malformed reports and changes nothing", function()
		local env = load()
		local from = "focus.v1.meet.jitsi"
		local bad = {
			{ { xmlns = NS, node = "v1", full = "true" } },                      -- no total
			{ full("v1", 5, { total = "-1" }) },
			{ full("v1", 5, { total = "5.5" }) },
			{ full("v1", 5, { full = "yes" }) },
			{ full("v1", 5), { { "room1", "x" } } },
			{ full("v1", 5), { { "room1", "4294967296" } } },
			{ full("v1", 5), { { "a@b", 1 } } },
			{ full("v1", 5), { { "a/b", 1 } } },
			{ full("v1", 5), { { "", 1 } } },
			{ full("v1", 5), { { ("x"):rep(1024), 1 } } },
			{ full("v1", 5, { part = "2", parts = "1" }) },
			{ full("v1", 5, { part = "1" }) },
			{ { xmlns = NS, node = "v1", total = "5", part = "1", parts = "2" } },
		}
		for i, case in ipairs(bad) do
			local reply = env.send(from, case[1], case[2] or { { "room1", 5 } })
			assert.equal("bad-request", env.condition(reply), "case " .. i)
		end
		-- an unexpected child
		local iq = st.iq({ type = "set", from = from, to = HOST, id = "x" }):tag("report", full("v1", 1)):tag("other"):up():up()
		local reply
		env.hooks["iq-set/host/" .. NS .. ":report"]({ stanza = iq, origin = { send = function(s) reply = s end } })
		assert.equal("bad-request", env.condition(reply))
		assert.equal(0, env.node("v1").visitors)
		assert.is_false(env.node("v1").healthy)
	end)

	it("asks for a full report (unexpected-request) when a delta comes before any", function()
		local env = load()
		local reply = env.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "3" }, { { "room1", 3 } })
		assert.equal("unexpected-request", env.condition(reply))
		assert.equal(0, env.node("v1").visitors)
		assert.equal("result", env.send("focus.v1.meet.jitsi", full("v1", 3), { { "room1", 3 } }).attr.type)
		-- then deltas: listed rooms set, visitors='0' removes, others stay
		assert.equal("result", env.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "5" },
			{ { "room2", 5 }, { "room1", 0 } }).attr.type)
		assert.is_nil(env.set:room("room1@" .. MUC, env.time))
		assert.same({ v1 = { visitors = 5, pending = 0 } }, env.set:room("room2@" .. MUC, env.time))
	end)

	it("applies a snapshot in parts: rooms missing from every part are cleared at the last part only", function()
		local env = load()
		local from = "focus.v1.meet.jitsi"
		env.send(from, full("v1", 6), { { "a", 1 }, { "b", 2 }, { "c", 3 } })
		assert.equal("result", env.send(from, full("v1", 5, { part = "1", parts = "2" }), { { "a", 4 } }).attr.type)
		assert.is_not_nil(env.set:room("b@" .. MUC, env.time)) -- not yet cleared
		assert.equal("result", env.send(from, full("v1", 5, { part = "2", parts = "2" }), { { "c", 1 } }).attr.type)
		assert.is_nil(env.set:room("b@" .. MUC, env.time))
		assert.equal(5, env.node("v1").visitors)
		-- a part out of order starts nothing and asks to start again
		local reply = env.send(from, full("v1", 5, { part = "2", parts = "3" }), { { "a", 9 } })
		assert.equal("unexpected-request", env.condition(reply))
		assert.same({ v1 = { visitors = 4, pending = 0 } }, env.set:room("a@" .. MUC, env.time))
	end)
end)

describe("vnode_main.lib: health", function()
	it("marks a node down when its last report is older than node_timeout, up on its next report", function()
		local env = load()
		env.send("focus.v1.meet.jitsi", full("v1", 1), { { "a", 1 } })
		env.time = env.time + 30
		env.tick()
		assert.is_true(env.node("v1").healthy)
		env.time = env.time + 0.5
		env.tick()
		local n = env.node("v1")
		assert.is_false(n.healthy)
		assert.equal("timeout", n.down_reason)
		assert.equal(30.5, n.reported)
		assert.is_nil(env.set:choose("r@" .. MUC, env.time) == "v1" or nil)
		env.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "1" })
		assert.is_true(env.node("v1").healthy)
		assert.equal(1, #env.timers) -- one timer for all nodes
	end)

	it("marks a node down when an s2s session between this host and its reporter host ends", function()
		local env = load()
		env.send("focus.v1.meet.jitsi", full("v1", 1))
		env.send("focus.v2.meet.jitsi", full("v2", 1))
		local destroyed = env.global["s2s-destroyed"]
		-- other hosts' links: nothing
		destroyed({ session = { direction = "outgoing", from_host = "meet.example.com", to_host = "focus.v1.meet.jitsi" } })
		destroyed({ session = { direction = "incoming", to_host = HOST, from_host = "elsewhere.example" } })
		assert.is_true(env.node("v1").healthy)
		destroyed({ session = { direction = "incoming", to_host = HOST, from_host = "focus.v1.meet.jitsi" } })
		assert.is_false(env.node("v1").healthy)
		assert.equal("link", env.node("v1").down_reason)
		assert.is_true(env.node("v2").healthy)
		destroyed({ session = { direction = "outgoing", from_host = HOST, to_host = "focus.v2.meet.jitsi" } })
		assert.equal("link", env.node("v2").down_reason)
		-- a multiplexed incoming session (dialback: session.hosts)
		env.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "1" })
		assert.is_true(env.node("v1").healthy)
		destroyed({ session = { direction = "incoming", to_host = HOST, hosts = { ["focus.v1.meet.jitsi"] = {} } } })
		assert.equal("link", env.node("v1").down_reason)
		-- the next report heals
		env.send("focus.v2.meet.jitsi", { xmlns = NS, node = "v2", total = "1" })
		assert.is_true(env.node("v2").healthy)
	end)

	it("lets the operator's node_down win over reports until node_up", function()
		local env = load()
		env.send("focus.v1.meet.jitsi", full("v1", 1))
		assert.is_true(env.health.operator("v1", false))
		env.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "1" })
		env.tick()
		assert.is_false(env.node("v1").healthy)
		assert.equal("operator", env.node("v1").down_reason)
		env.health.operator("v1", true)
		assert.is_true(env.node("v1").healthy)
		-- a node without reports: healthy until marked down
		assert.is_true(env.node("v3").healthy)
		env.health.operator("v3", false)
		assert.equal("operator", env.node("v3").down_reason)
		assert.same({ nil, "item-not-found", "unknown visitor node" }, { env.health.operator("v9", false) })
	end)

	it("refuses reports for a node configured with reports = false", function()
		local env = load()
		assert.equal("forbidden", env.condition(env.send("v3.meet.jitsi", full("v3", 1))))
		assert.is_nil(env.node("v3").reported)
	end)
end)

describe("vnode_main.lib: reload", function()
	it("carries each node's report state over and gives its health to the (restored) set", function()
		local env = load()
		env.send("focus.v1.meet.jitsi", full("v1", 1))
		env.health.operator("v2", false)
		local saved = env.health.save()
		local old_set = env.set
		local env2 = load() -- a new instance on a new set: everything down, no report
		env2.set = old_set -- what visitors.restore does with the saved set
		env2.health.restore(saved)
		assert.is_true(env2.node("v1").healthy)
		assert.equal(0, env2.node("v1").reported)
		assert.equal("operator", env2.node("v2").down_reason)
		-- a delta is accepted at once (the snapshot baseline carried over)
		assert.equal("result", env2.send("focus.v1.meet.jitsi", { xmlns = NS, node = "v1", total = "2" }).attr.type)
		-- without saved state the set still gets every node's health
		local env3 = load()
		env3.set = native.vnodes({ nodes = { { id = "v1", focus_jid = "f@v1" }, { id = "v2", focus_jid = "f@v2" },
			{ id = "v3", focus_jid = "f@v3" } } })
		env3.health.restore(nil)
		assert.is_false(env3.node("v1").healthy)
		assert.is_true(env3.node("v3").healthy)
	end)
end)

describe("vnode_main.lib: bounds", function()
	it("keeps at most max_rooms rooms; the rest of a report is ignored and logged once", function()
		local env = load({ max_rooms = 5 })
		local rooms = {}
		for i = 1, 8 do rooms[i] = { "room" .. i, 1 } end
		assert.equal("result", env.send("focus.v1.meet.jitsi", full("v1", 8), rooms).attr.type)
		assert.equal(5, env.node("v1").rooms)
		assert.equal(8, env.node("v1").visitors) -- the total still counts
		assert.equal("result", env.send("focus.v1.meet.jitsi", full("v1", 8), rooms).attr.type)
		local n = 0
		for _, l in ipairs(env.logs) do if l[2]:find("more rooms than the main server keeps") then n = n + 1 end end
		assert.equal(1, n)
		assert.equal(5, env.set:stats().rooms)
	end)

	it("refuses a report of more than MAX_ROOMS_PER_REPORT rooms (bad-request: split it)", function()
		local env = load()
		local lib = assert(loadfile("mod_conference_request/vnode_main.lib.lua"))()
		local rooms = {}
		for i = 1, lib.MAX_ROOMS_PER_REPORT + 1 do rooms[i] = { "r" .. i, 1 } end
		local reply = env.send("focus.v1.meet.jitsi", full("v1", 1), rooms)
		assert.equal("bad-request", env.condition(reply))
		assert.equal(0, env.set:stats().rooms)
	end)
end)
