-- Specs of the visitor-node binding: native.vnodes / set:choose, uses, report, report_total,
-- set_healthy, forget_room, nodes, room, stats (native/vnodes.c; contract in native/README.md).
-- The rules themselves are tested at length in tests/c/test_vnodes.c; here: what Lua sees.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()

local function three(extra)
	local cfg = {
		nodes = {
			{ id = "v1", focus_jid = "focus@v1.meet.jitsi", weight = 1, capacity = 10 },
			{ id = "v2", focus_jid = "focus@v2.meet.jitsi", weight = 1, capacity = 10 },
			{ id = "v3", focus_jid = "focus@v3.meet.jitsi", weight = 1, capacity = 10 },
		},
		pending_window = 60,
	}
	for k, v in pairs(extra or {}) do cfg[k] = v end
	return native.vnodes(cfg)
end

local function by_id(list)
	local t = {}
	for _, n in ipairs(list) do t[n.id] = n end
	return t
end

describe("native.vnodes", function()
	it("builds a set from a Jitsi-style node list, nodes in configured order", function()
		local set = three()
		assert.equal("conference_request_native.vnodes (3 nodes)", tostring(set))
		local nodes = set:nodes(0)
		assert.equal(3, #nodes)
		assert.same({ id = "v1", focus_jid = "focus@v1.meet.jitsi", weight = 1, capacity = 10, healthy = true, load = 0,
			visitors = 0, pending = 0, rooms = 0, room_visitors = 0, reported_total = 0 }, nodes[1])
		assert.equal("v2", nodes[2].id)
		assert.equal("v3", nodes[3].id)
		assert.same({ nodes = 3, rooms = 0, pairs = 0, pending = 0, dropped = 0, unrecorded = 0 }, set:stats())
	end)

	it("defaults weight to 1 and capacity to 500; keeps a fractional weight", function()
		local set = native.vnodes { nodes = { { id = "a", focus_jid = "f@a" }, { id = "b", focus_jid = "f@b", weight = 0.5 } } }
		local n = set:nodes(0)
		assert.equal(1, n[1].weight)
		assert.equal(500, n[1].capacity)
		assert.equal(0.5, n[2].weight)
	end)

	it("accepts an empty node list (every choice is none)", function()
		local set = native.vnodes { nodes = {} }
		assert.same({ nil, "none" }, { set:choose("r@x", 0) })
	end)

	it("raises on a bad config, naming the option", function()
		local function node(t)
			local n = { id = "v1", focus_jid = "f@v1", weight = 1, capacity = 5 }
			for k, v in pairs(t) do n[k] = v end
			return n
		end
		local bad = {
			{ {}, "nodes" },
			{ { nodes = "v1" }, "nodes" },
			{ { nodes = { "v1" } }, "not a table" },
			{ { nodes = { node {}, node {} } }, "duplicate" },
			{ { nodes = { node { id = "v2" }, node { id = "v2", focus_jid = "g@v2" } } }, "duplicate" },
			{ { nodes = { node { weight = 0 } } }, "weight" },
			{ { nodes = { node { weight = -1 } } }, "weight" },
			{ { nodes = { node { weight = 0 / 0 } } }, "weight" },
			{ { nodes = { node { weight = math.huge } } }, "weight" },
			{ { nodes = { node { weight = "1" } } }, "weight" },
			{ { nodes = { node { capacity = 0 } } }, "capacity" },
			{ { nodes = { node { capacity = 1.5 } } }, "capacity" },
			{ { nodes = { node { capacity = 2 ^ 32 } } }, "capacity" },
			{ { nodes = { node { capacity = "5" } } }, "capacity" },
			{ { nodes = { node { id = "" } } }, "id" },
			{ { nodes = { node { id = 1 } } }, "id" },
			{ { nodes = { node { id = "a\1" } } }, "id" },
			{ { nodes = { node { focus_jid = false } } }, "focus_jid" },
			{ { nodes = { node { focus_jid = "" } } }, "focus_jid" },
			{ { nodes = { node { other = 1 } } }, "unknown field" },
			{ { nodes = { [2] = node {} } }, "array" },
			{ { nodes = { node {}, x = 1 } }, "array" },
			{ { nodes = {}, pending_window = -1 }, "pending_window" },
			{ { nodes = {}, pending_window = math.huge }, "pending_window" },
			{ { nodes = {}, pending_window = "60" }, "pending_window" },
			{ { nodes = {}, max_rooms = 0 }, "max_rooms" },
			{ { nodes = {}, max_pending = 0 }, "max_pending" },
			{ { nodes = {}, max_pending = 2 ^ 40 }, "max_pending" },
			{ { nodes = {}, other = 1 }, "unknown option" },
		}
		for _, case in ipairs(bad) do
			local ok, err = pcall(native.vnodes, case[1])
			assert.is_false(ok, case[2])
			assert.is_truthy(tostring(err):find(case[2], 1, true), tostring(err) .. " should name " .. case[2])
		end
		assert.has_error(function() native.vnodes() end)
		assert.has_error(function() native.vnodes("x") end)
	end)
end)

describe("set:choose", function()
	it("hashes a new room, then reuses its node, recording a pending redirect each time", function()
		local set = three()
		local id, focus, how = set:choose("room1@conference.example.com", 100)
		assert.equal("hash", how)
		assert.is_truthy(id == "v1" or id == "v2" or id == "v3")
		assert.equal("focus@" .. id .. ".meet.jitsi", focus)
		assert.is_true(set:uses("room1@conference.example.com"))
		local id2, focus2, how2 = set:choose("room1@conference.example.com", 101)
		assert.same({ id, focus, "reuse" }, { id2, focus2, how2 })
		assert.same({ [id] = { visitors = 0, pending = 2 } }, set:room("room1@conference.example.com", 101))
		local n = by_id(set:nodes(101))[id]
		assert.equal(2, n.pending)
		assert.equal(2, n.load)
		assert.equal(1, n.rooms)
	end)

	it("gives the same node for the same room in another set (stable across restarts)", function()
		local a, b = three(), three()
		for i = 1, 200 do
			local room = "r" .. i .. "@x"
			assert.equal((a:choose(room, 0)), (b:choose(room, 0)))
		end
	end)

	it("goes least-loaded when every healthy node is full, and none when no node is healthy", function()
		local set = native.vnodes { nodes = { { id = "a", focus_jid = "f@a", capacity = 1 }, { id = "b", focus_jid = "f@b", capacity = 2 } } }
		assert(set:report("a", "x@c", 1, 0))
		assert(set:report("b", "y@c", 2, 0))
		local id, _, how = set:choose("r@c", 0)
		assert.equal("least-loaded", how)
		assert.equal("a", id) -- 1/1 ties 2/2: the first configured
		assert(set:set_healthy("a", false))
		assert(set:set_healthy("b", false))
		assert.same({ nil, "none" }, { set:choose("z@c", 0) })
		assert.is_false(set:uses("z@c"))
		assert.equal(false, set:nodes(0)[1].healthy)
		assert(set:set_healthy("b", true))
		assert.equal("b", (set:choose("z@c", 0)))
	end)

	it("a node marked down receives no one, not even a room it already serves", function()
		local set = three()
		assert(set:report("v2", "served@x", 3, 0))
		assert(set:set_healthy("v2", false))
		for i = 1, 300 do
			assert.are_not.equal("v2", (set:choose("room" .. i .. "@x", 0)))
			assert.are_not.equal("v2", (set:choose("served@x", 0)))
		end
	end)
end)

describe("set:report and the pending window", function()
	it("arrivals consume pending redirects; redirects count for pending_window seconds", function()
		local set = native.vnodes { nodes = { { id = "v1", focus_jid = "f@v1", capacity = 100 } }, pending_window = 10 }
		for t = 0, 2 do set:choose("r@x", t) end
		assert.equal(3, set:nodes(2)[1].pending)
		assert.is_true(set:report("v1", "r@x", 2, 3))
		local n = set:nodes(3)[1]
		assert.same({ 2, 1, 3, 2 }, { n.visitors, n.pending, n.load, n.room_visitors })
		assert.same({ v1 = { visitors = 2, pending = 1 } }, set:room("r@x", 3))
		assert.equal(1, set:nodes(11.5)[1].pending) -- the consumed ones (t = 0, 1) left silently
		assert.equal(0, set:nodes(12)[1].pending)
		assert.is_true(set:uses("r@x", 12))
		assert.is_true(set:report("v1", "r@x", 0, 12))
		assert.is_false(set:uses("r@x"))
		assert.is_nil(set:room("r@x", 12))
	end)

	it("uses(room, now) drops expired redirects first", function()
		local set = native.vnodes { nodes = { { id = "v1", focus_jid = "f@v1" } }, pending_window = 5 }
		set:choose("r@x", 0)
		assert.is_true(set:uses("r@x"))
		assert.is_true(set:uses("r@x", 4.9))
		assert.is_false(set:uses("r@x", 5))
	end)

	it("report_total raises the node's visitors to the reported total", function()
		local set = three()
		assert(set:report("v1", "r@x", 4, 0))
		assert.is_true(set:report_total("v1", 9, 0))
		local n = set:nodes(0)[1]
		assert.same({ 9, 4, 9, 9 }, { n.visitors, n.room_visitors, n.reported_total, n.load })
		assert.is_true(set:report_total("v1", 0, 0))
		assert.equal(4, set:nodes(0)[1].load)
	end)

	it("answers nil, condition, text for an unknown node, a bad count, too many rooms", function()
		local set = three { max_rooms = 1 }
		local function cond(...) local r = table.pack(...); return { r[1], r[2], type(r[3]) } end
		assert.same({ nil, "item-not-found", "string" }, cond(set:report("v9", "r@x", 1, 0)))
		assert.same({ nil, "item-not-found", "string" }, cond(set:report_total("v9", 1, 0)))
		assert.same({ nil, "item-not-found", "string" }, cond(set:set_healthy("v9", false)))
		assert.same({ nil, "bad-request", "string" }, cond(set:report("v1", "r@x", -1, 0)))
		assert.same({ nil, "bad-request", "string" }, cond(set:report("v1", "r@x", 2 ^ 32, 0)))
		assert.same({ nil, "bad-request", "string" }, cond(set:report_total("v1", -5, 0)))
		assert(set:report("v1", "a@x", 1, 0))
		assert.same({ nil, "resource-constraint", "string" }, cond(set:report("v1", "b@x", 1, 0)))
		-- past max_rooms choose still answers, and remembers nothing
		local id, _, how = set:choose("b@x", 0)
		assert.is_string(id)
		assert.equal("hash", how)
		assert.is_false(set:uses("b@x"))
		assert.equal(1, set:stats().unrecorded)
	end)

	it("raises on wrong argument types", function()
		local set = three()
		assert.has_error(function() set:choose("r@x") end)
		assert.has_error(function() set:choose("r@x", 0 / 0) end)
		assert.has_error(function() set:choose("r@x", math.huge) end)
		assert.has_error(function() set:choose({}, 0) end)
		assert.has_error(function() set:report("v1", "r@x", 1.5, 0) end)
		assert.has_error(function() set:report("v1", "r@x", "1", 0 / 0) end)
		assert.has_error(function() set:set_healthy("v1", nil) end)
		assert.has_error(function() set:set_healthy("v1", 1) end)
		assert.has_error(function() set:nodes() end)
		assert.has_error(function() set:room("r@x") end)
		assert.has_error(function() set:uses("r@x", "soon") end)
		assert.has_error(function() set.choose(native.registry(), "r@x", 0) end)
	end)
end)

describe("set:forget_room", function()
	it("drops every (room, node) state of the room", function()
		local set = three()
		assert(set:report("v1", "r@x", 2, 0))
		assert(set:report("v3", "r@x", 5, 0))
		set:choose("r@x", 0)
		assert.is_true(set:uses("r@x"))
		assert.equal(0, select("#", set:forget_room("r@x")))
		assert.is_false(set:uses("r@x"))
		assert.is_nil(set:room("r@x", 0))
		for _, n in ipairs(set:nodes(0)) do
			assert.same({ 0, 0, 0 }, { n.load, n.pending, n.rooms })
		end
		set:forget_room("never@x")
	end)
end)

describe("closing", function()
	it("__close frees the set; a closed set raises on every method", function()
		local set = three()
		do
			local s <close> = set
			s:choose("r@x", 0)
		end
		assert.equal("conference_request_native.vnodes (closed)", tostring(set))
		assert.has_error(function() set:choose("r@x", 0) end)
		assert.has_error(function() set:nodes(0) end)
		assert.has_error(function() set:stats() end)
		getmetatable(set).__gc(set) -- twice is harmless
	end)
end)
