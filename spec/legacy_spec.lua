-- Specs of the legacy jabber:iq:conference door (legacy.lib.lua + legacy_rooms.lib.lua, docs/protocol.md §7)
-- with the real binding (legacy parser) and Prosody's own util.stanza / util.jid / util.hashes.
-- `module` and `prosody` are small stand-ins; the MUC is a fake that keeps occupants and answers
-- the synthesized join presence the way mod_muc does (join, nick conflict, creation hook). The
-- end-to-end protocol against a real Prosody is in tests/integration/test_legacy*.py; these pin
-- the request handling, above all that every IQ gets exactly one reply, also when a handler raises.
local so = assert(package.searchpath("conference_request_native", package.cpath))
local native = assert(package.loadlib(so, "luaopen_conference_request_native"))()
local st = require "util.stanza"
local jid_util = require "util.jid"
local hashes = require "util.hashes"

local MUC = "conference.localhost"
local NS = "jabber:iq:conference"
local NS_BROWSE = "jabber:iq:browse"
local NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
local ALICE = "alice@localhost/desk"
local BOB = "bob@localhost/phone"

local function id_of(real_jid) return hashes.sha1(real_jid, true) end

-- Fake MUC ---------------------------------------------------------------------------------------
local Room = {}
Room.__index = Room

local function new_room(env, jid, opts)
	opts = opts or {}
	local room = setmetatable({ jid = jid, _data = {}, occupants = {}, routed = {},
		password = opts.password, name = opts.name, public = opts.public ~= false }, Room)
	env.rooms[jid] = room
	return room
end

function Room:get_occupant_by_nick(nick_jid) return self.occupants[nick_jid] end
function Room:get_occupant_jid(real_jid)
	for nick_jid, o in pairs(self.occupants) do
		if o.jid == real_jid then return nick_jid end
	end
end
function Room:get_occupant_by_real_jid(real_jid)
	local nick_jid = self:get_occupant_jid(real_jid)
	return nick_jid and self.occupants[nick_jid]
end
function Room:each_occupant() return next, self.occupants, nil end
function Room:has_occupant() return next(self.occupants) ~= nil end
function Room:get_password() return self.password end
function Room:get_name() return self.name end
function Room:set_name(name) self.name = name end
function Room:get_public() return self.public end
function Room:set_public(public) self.public = public end
function Room:route_stanza(stanza) table.insert(self.routed, stanza) end
-- as mod_muc's: the occupant's presence to every occupant (unavailable when x carries status 303)
function Room:publicise_occupant_status(occupant, x)
	local rename = false
	for status in x:childtags("status") do rename = rename or status.attr.code == "303" end
	for _, o in pairs(self.occupants) do
		self:route_stanza(st.presence({ from = occupant.nick, to = o.jid, type = rename and "unavailable" or nil }))
	end
end

local function fake_environment(options)
	local env = { hooks = {}, sent = {}, logs = {}, rooms = {}, options = options or {} }
	local function fire(name, event)
		for _, fn in ipairs(env.hooks[name] or {}) do
			local r = fn(event)
			if r ~= nil then return r end
		end
	end
	env.fire = fire
	local ctx = {
		hook = function(_, name, fn) env.hooks[name] = env.hooks[name] or {}; table.insert(env.hooks[name], fn) end,
		send = function(_, stanza)
			if env.send_raises then error("routing failed") end
			table.insert(env.sent, stanza)
		end,
		fire_event = function(_, name, event) return fire(name, event) end,
		-- the MUC host's own options (legacy_discovery.lib reads muc_room_default_public, name)
		get_option = function(_, name, default)
			local v = (env.muc_options or {})[name]
			if v == nil then return default end
			return v
		end,
		get_option_string = function(_, name, default) return (env.muc_options or {})[name] or default end,
	}
	env.module = {
		host = "focus.localhost",
		get_option = function(_, name, default)
			local v = env.options[name]
			if v == nil then return default end
			return v
		end,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		measure = function() return function() end end,
		context = function(_, host) assert(host == MUC); return ctx end,
		hook_global = function() end,
		require = function(_, name)
			return assert(loadfile("mod_conference_request/" .. name .. ".lib.lua"))()
		end,
	}
	-- the MUC host's presence handling for the join presence legacy.lib synthesizes
	local function muc_presence(event)
		local origin, stanza = event.origin, event.stanza
		if env.muc_raises then error("mod_muc exploded") end
		local room_jid, nick = jid_util.bare(stanza.attr.to), jid_util.resource(stanza.attr.to)
		local room = env.rooms[room_jid]
		if not room then
			if not env.allow_create then
				origin.send(st.error_reply(stanza, "cancel", "not-allowed", "Room creation is restricted"))
				return true
			end
			room = new_room(env, room_jid, { public = false }) -- mod_muc's default: hidden
			fire("muc-room-pre-create", { room = room, stanza = stanza, origin = origin })
		end
		local nick_jid = room_jid .. "/" .. nick
		local holder = room.occupants[nick_jid]
		if holder and holder.jid ~= stanza.attr.from then
			origin.send(st.error_reply(stanza, "cancel", "conflict", "nick in use"))
			return true
		end
		local old = room:get_occupant_jid(stanza.attr.from)
		if old then room.occupants[old] = nil end
		local occupant = { nick = nick_jid, jid = stanza.attr.from, bare_jid = jid_util.bare(stanza.attr.from),
			role = "participant", presence = stanza }
		function occupant.get_presence(o) return o.presence end
		room.occupants[nick_jid] = occupant
		fire("muc-broadcast-presence", { room = room, occupant = occupant, stanza = stanza })
		if env.raise_after_join then room.get_occupant_jid = function() error("room exploded") end end
		return true
	end
	env.prosody = { hosts = { [MUC] = {
		modules = { muc = {
			get_room_from_jid = function(room_jid)
				if env.lookup_raises then error("storage exploded") end
				return env.rooms[room_jid]
			end,
			live_rooms = function() return coroutine.wrap(function()
				for _, r in pairs(env.rooms) do coroutine.yield(r) end
			end) end,
		} },
		events = { fire_event = function(name, event)
			assert(name == "presence/full")
			return muc_presence(event)
		end },
	} } }
	return env
end

local function load(options)
	local env = fake_environment(options)
	_G.module, _G.prosody = env.module, env.prosody
	local lib = assert(loadfile("mod_conference_request/legacy.lib.lua"))()
	env.legacy = lib.new(MUC, native)
	return env
end

-- A client session: records what it is sent.
local function session()
	local s = { type = "c2s", directed = {}, replies = {} }
	function s.send(stanza) table.insert(s.replies, stanza) end
	return s
end

local function query(itype, from, room_jid, children)
	local iq = st.iq({ type = itype, from = from, to = room_jid, id = "q" .. math.random(1e6) })
		:tag("query", { xmlns = NS })
	for _, c in ipairs(children or {}) do
		if c[2] then iq:text_tag(c[1], c[2]) else iq:tag(c[1]):up() end
	end
	return iq:up()
end

-- Sends an IQ to the bare room through the MUC host's iq/bare hooks; returns what the hooks
-- returned and the session.
local function send_iq(env, iq, origin)
	origin = origin or session()
	return env.fire("iq/bare", { origin = origin, stanza = iq }), origin
end

local function error_of(stanza)
	local e = stanza:get_child("error")
	assert.is_truthy(e, tostring(stanza))
	local condition
	for tag in e:childtags(nil, NS_STANZAS) do
		if tag.name ~= "text" then condition = tag.name end
	end
	return e.attr.type, condition, e.attr.code, e:get_child_text("text", NS_STANZAS)
end

-- type, condition, legacy code
local function select_3(stanza)
	local t, c, code = error_of(stanza)
	return t, c, code
end

describe("legacy.lib", function()
	local room_jid = "lobby@" .. MUC

	it("hooks the MUC host at load and leaves foreign iqs to the MUC", function()
		local env = load()
		-- the protocol handler and the one that adds legacy codes to mod_muc's errors
		assert.equal(2, #env.hooks["iq/bare"])
		assert.equal(2, #env.hooks["presence/bare"])
		local iq = st.iq({ type = "get", from = ALICE, to = room_jid, id = "d" })
			:tag("query", { xmlns = "http://jabber.org/protocol/disco#info" }):up()
		local handled, origin = send_iq(env, iq)
		assert.is_nil(handled)
		assert.equal(0, #origin.replies)
	end)

	it("refuses bad options at load with an error naming the option", function()
		local ok, err = pcall(load, { conference_request_legacy_max_nicks = 0 })
		assert.is_false(ok)
		assert.matches("invalid option conference_request_legacy_max_nicks", err, 1, true)
	end)

	it("answers a get for a missing room with item-not-found (legacy code 404)", function()
		local env = load()
		local handled, origin = send_iq(env, query("get", ALICE, room_jid))
		assert.is_true(handled)
		assert.equal(1, #origin.replies)
		local reply = origin.replies[1]
		assert.equal("error", reply.attr.type)
		assert.equal(room_jid, reply.attr.from)
		local etype, condition, code = error_of(reply)
		assert.same({ "cancel", "item-not-found", "404" }, { etype, condition, code })
	end)

	it("answers a get for an existing room: empty nick, secret flag, name from the node", function()
		local env = load()
		new_room(env, room_jid, { password = "pw" })
		local _, origin = send_iq(env, query("get", ALICE, room_jid))
		assert.equal(1, #origin.replies)
		local q = origin.replies[1]:get_child("query", NS)
		assert.equal("result", origin.replies[1].attr.type)
		assert.equal("", q:get_child_text("nick"))
		assert.is_truthy(q:get_child("secret"))
		assert.is_nil(q:get_child("privacy"))
		assert.equal("lobby", q:get_child_text("name"))
	end)

	it("enters a room with the first free nick and answers nick and id once", function()
		local env = load()
		local room = new_room(env, room_jid)
		room.occupants[room_jid .. "/taken"] = { nick = room_jid .. "/taken", jid = BOB, role = "participant" }
		local handled, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "taken" }, { "nick", "alice" } }))
		assert.is_true(handled)
		assert.equal(1, #origin.replies)
		local reply = origin.replies[1]
		assert.equal("result", reply.attr.type)
		local q = reply:get_child("query", NS)
		assert.equal("alice", q:get_child_text("nick"))
		assert.equal(room_jid .. "/" .. id_of(ALICE), q:get_child_text("id"))
		assert.equal(room_jid .. "/alice", room:get_occupant_jid(ALICE))
		assert.is_true(origin.directed[room_jid])
		assert.is_truthy(env.legacy.states[room_jid].by_jid[ALICE])
		-- the joiner is told of every participant by browse pushes (itself and bob)
		local pushed = {}
		for _, s in ipairs(env.sent) do
			if s.attr.to == ALICE then pushed[s:get_child("user", NS_BROWSE).attr.name] = true end
		end
		assert.same({ alice = true, taken = true }, pushed)
	end)

	it("refuses offered nicks that are all taken, empty or id-shaped with conflict (409)", function()
		local env = load()
		local room = new_room(env, room_jid)
		room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = BOB, role = "participant" }
		local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "bob" } }))
		assert.equal(1, #origin.replies)
		assert.same({ "cancel", "conflict", "409" }, { select_3(origin.replies[1]) })
		local _, o2 = send_iq(env, query("set", ALICE, room_jid, { { "nick", (" "):rep(3) }, { "nick", ("a"):rep(40) } }))
		assert.equal(1, #o2.replies)
		assert.equal("conflict", select(2, error_of(o2.replies[1])))
		assert.is_nil(room:get_occupant_jid(ALICE))
		assert.is_nil(env.legacy.states[room_jid], "no state is left for a refused entry")
	end)

	it("refuses a wrong or missing secret with not-authorized (401)", function()
		local env = load()
		new_room(env, room_jid, { password = "right" })
		local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" }, { "secret", "wrong" } }))
		assert.equal(1, #origin.replies)
		local etype, condition, code = error_of(origin.replies[1])
		assert.same({ "auth", "not-authorized", "401" }, { etype, condition, code })
		local _, o2 = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" }, { "secret", "right" } }))
		assert.equal("result", o2.replies[1].attr.type)
	end)

	it("answers a payload the parser refuses with its condition", function()
		local env = load()
		local iq = st.iq({ type = "set", from = ALICE, to = room_jid, id = "p" })
			:tag("query", { xmlns = NS }):tag("nick"):text("a"):tag("b"):up():up():up()
		local _, origin = send_iq(env, iq)
		assert.equal(1, #origin.replies)
		assert.same({ "modify", "bad-request", "400" }, { select_3(origin.replies[1]) })
	end)

	it("relays the MUC's refusal of a new room (not-allowed, 405) and keeps no state", function()
		local env = load()
		local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		assert.equal(1, #origin.replies)
		local _, condition, code, text = error_of(origin.replies[1])
		assert.same({ "not-allowed", "405" }, { condition, code })
		assert.matches("does not create rooms", text, 1, true)
		assert.is_nil(env.legacy.states[room_jid])
	end)

	it("creates a room when the MUC allows it, with name and privacy", function()
		local env = load()
		env.allow_create = true
		local _, origin = send_iq(env, query("set", ALICE, room_jid,
			{ { "nick", "alice" }, { "name", "Demo" }, { "privacy" } }))
		assert.equal(1, #origin.replies)
		local q = origin.replies[1]:get_child("query", NS)
		assert.is_truthy(q:get_child("privacy"))
		local room = env.rooms[room_jid]
		assert.equal("Demo", room.name)
		assert.is_true(room._data.legacy_privacy)
		assert.is_function(rawget(room, "route_stanza"), "a room with legacy participants routes through legacy_rooms")
	end)

	it("makes a room it creates public, unless the MUC host sets muc_room_default_public", function()
		local env = load()
		env.allow_create = true
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		assert.is_true(env.rooms[room_jid].public)
		env = fake_environment()
		env.allow_create = true
		env.muc_options = { muc_room_default_public = false } -- the administrator's choice wins
		_G.module, _G.prosody = env.module, env.prosody
		env.legacy = assert(loadfile("mod_conference_request/legacy.lib.lua"))().new(MUC, native)
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		assert.is_false(env.rooms[room_jid].public)
	end)

	it("rewrites what the room sends a legacy participant to come from room/<id>", function()
		local env = load()
		local room = new_room(env, room_jid)
		room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = BOB, role = "participant" }
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		room:route_stanza(st.message({ from = room_jid .. "/bob", to = ALICE, type = "groupchat" }):text_tag("body", "hi"))
		room:route_stanza(st.message({ from = room_jid .. "/alice", to = BOB, type = "groupchat" }):text_tag("body", "yo"))
		assert.equal(2, #room.routed)
		assert.equal(room_jid .. "/" .. id_of(BOB), room.routed[1].attr.from)
		assert.equal(room_jid .. "/alice", room.routed[2].attr.from, "a groupchat recipient sees nicks")
	end)

	it("answers a browse of the room with its occupants as ids", function()
		local env = load()
		local room = new_room(env, room_jid, { name = "Lobby" })
		room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = BOB, role = "participant" }
		local iq = st.iq({ type = "get", from = ALICE, to = room_jid, id = "b" }):tag("query", { xmlns = NS_BROWSE }):up()
		local _, origin = send_iq(env, iq)
		assert.equal(1, #origin.replies)
		local conf = origin.replies[1]:get_child("conference", NS_BROWSE)
		assert.equal("Lobby", conf.attr.name)
		assert.equal("public", conf.attr.type)
		local user = conf:get_child("user")
		assert.same({ jid = room_jid .. "/" .. id_of(BOB), name = "bob" }, { jid = user.attr.jid, name = user.attr.name })
	end)

	it("lets the room route on its own again once the last legacy participant has left", function()
		local env = load()
		local room = new_room(env, room_jid)
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		assert.is_function(rawget(room, "route_stanza"))
		local occupant = room.occupants[room_jid .. "/alice"]
		room.occupants[room_jid .. "/alice"] = nil
		env.fire("muc-occupant-left", { room = room, occupant = occupant,
			stanza = st.presence({ from = ALICE, to = room_jid .. "/alice", type = "unavailable" }) })
		assert.is_nil(env.legacy.states[room_jid])
		assert.is_nil(rawget(room, "route_stanza"))
		assert.is_nil(rawget(room, "_legacy_state"))
	end)

	it("forgets the legacy state of a destroyed room", function()
		local env = load()
		local room = new_room(env, room_jid)
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		env.rooms[room_jid] = nil
		env.fire("muc-room-destroyed", { room = room })
		assert.is_nil(env.legacy.states[room_jid])
		-- the same JID later is a new room: entering it is an entry, not a nick change
		local again = new_room(env, room_jid)
		local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice2" } }))
		assert.equal("result", origin.replies[1].attr.type)
		assert.equal(room_jid .. "/alice2", again:get_occupant_jid(ALICE))
	end)

	it("refuses an invite: relay to something that is not a JID, with bad-request (400)", function()
		local env = load()
		local room = new_room(env, room_jid)
		send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
		local sent_before = #env.sent
		local origin = session()
		local msg = st.message({ from = ALICE, to = room_jid, type = "groupchat" }):text_tag("subject", "invite: a@@b/")
		assert.is_true(env.fire("message/bare", { origin = origin, stanza = msg }))
		assert.equal(1, #origin.replies)
		assert.same({ "modify", "bad-request", "400" }, { select_3(origin.replies[1]) })
		assert.equal(sent_before, #env.sent, "nothing relayed")
		msg = st.message({ from = ALICE, to = room_jid, type = "groupchat" }):text_tag("subject", "invite: carol@localhost")
		assert.is_true(env.fire("message/bare", { origin = origin, stanza = msg }))
		local relay = env.sent[#env.sent]
		assert.equal("carol@localhost", relay.attr.to)
		assert.equal(room_jid .. "/alice", relay.attr.from)
		assert.is_nil(relay.attr.type)
		assert.is_truthy(room)
	end)

	it("swallows the replies to its own pushes and leaves other results alone", function()
		local env = load()
		local handled = send_iq(env, st.iq({ type = "result", from = ALICE, to = room_jid, id = "legacy-push-x1" }))
		assert.is_true(handled)
		handled = send_iq(env, st.iq({ type = "result", from = ALICE, to = room_jid, id = "other" }))
		assert.is_nil(handled)
	end)

	describe("a handler that raises still answers exactly once", function()
		local function only_error(origin, condition)
			assert.equal(1, #origin.replies, "exactly one reply")
			local reply = origin.replies[1]
			assert.equal("error", reply.attr.type)
			local _, c, code = error_of(reply)
			assert.same({ condition or "internal-server-error", "500" }, { c, code })
		end

		it("get (last resort in the iq/bare handler)", function()
			local env = load()
			env.lookup_raises = true
			local handled, origin = send_iq(env, query("get", ALICE, room_jid))
			assert.is_true(handled)
			only_error(origin)
		end)

		it("browse (last resort in the iq/bare handler)", function()
			local env = load()
			env.lookup_raises = true
			local iq = st.iq({ type = "get", from = ALICE, to = room_jid, id = "b" }):tag("query", { xmlns = NS_BROWSE }):up()
			local handled, origin = send_iq(env, iq)
			assert.is_true(handled)
			only_error(origin)
		end)

		it("set, before anything is sent: the joining participant is forgotten", function()
			local env = load()
			local room = new_room(env, room_jid)
			room.get_password = function() error("config exploded") end
			local handled, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
			assert.is_true(handled)
			only_error(origin)
			assert.is_nil(env.legacy.states[room_jid])
		end)

		it("set, after the participant was added: it is forgotten again", function()
			local env = load()
			new_room(env, room_jid)
			env.raise_after_join = true
			local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
			only_error(origin)
			assert.is_nil(env.legacy.states[room_jid])
		end)

		it("get, when sending the result raises: no second reply from the last resort", function()
			local env = load()
			new_room(env, room_jid)
			local origin = session()
			local raised = false
			function origin.send(stanza)
				table.insert(origin.replies, stanza)
				if not raised then raised = true; error("connection gone") end
			end
			local handled = send_iq(env, query("get", ALICE, room_jid), origin)
			assert.is_true(handled)
			assert.equal(1, #origin.replies, "exactly one reply")
			assert.equal("result", origin.replies[1].attr.type)
		end)

		it("set, when the MUC's presence handling raises", function()
			local env = load()
			new_room(env, room_jid)
			env.muc_raises = true
			local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
			only_error(origin)
			assert.is_nil(env.legacy.states[room_jid])
		end)

		it("set, when the failure comes after the result was sent: no second reply", function()
			local env = load()
			local room = new_room(env, room_jid)
			room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = BOB, role = "participant" }
			env.send_raises = true -- the browse pushes that follow the result
			local _, origin = send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
			assert.equal(1, #origin.replies, "exactly one reply")
			assert.equal("result", origin.replies[1].attr.type)
		end)
	end)

	describe("traffic as legacy participants see it", function()
		local function routed_to(room, to)
			local out = {}
			for _, stanza in ipairs(room.routed) do
				if stanza.attr.to == to then table.insert(out, stanza) end
			end
			return out
		end

		local function scene()
			local env = load()
			local room = new_room(env, room_jid)
			room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = BOB, role = "participant" }
			send_iq(env, query("set", ALICE, room_jid, { { "nick", "alice" } }))
			room.routed = {}
			return env, room
		end

		it("drops both presences of a nick change for legacy recipients, not for others", function()
			local _, room = scene()
			local old = room.occupants[room_jid .. "/bob"]
			local x = st.stanza("x", { xmlns = "http://jabber.org/protocol/muc#user" }):tag("status", { code = "303" }):up()
			room:publicise_occupant_status(old, x, "robert")
			room.occupants[room_jid .. "/bob"] = nil
			local new = { nick = room_jid .. "/robert", jid = BOB, role = "participant" }
			room.occupants[room_jid .. "/robert"] = new
			room:publicise_occupant_status(new, st.stanza("x", { xmlns = "http://jabber.org/protocol/muc#user" }))
			assert.equal(0, #routed_to(room, ALICE), "the legacy participant hears of it by push only")
			assert.equal(2, #routed_to(room, BOB), "a MUC client sees XEP-0045's two presences")
			-- the rename is over: a later presence of the renamed occupant reaches everyone
			room:publicise_occupant_status(new, st.stanza("x", { xmlns = "http://jabber.org/protocol/muc#user" }))
			local got = routed_to(room, ALICE)
			assert.equal(1, #got)
			assert.equal(room_jid .. "/" .. id_of(BOB), got[1].attr.from)
		end)

		it("replays history from the noted sender's id with jabber:x:delay, unknown senders from the room", function()
			local env, room = scene()
			room._history = {}
			-- mod_muc's history hook, between the module's two muc-broadcast-message hooks
			table.insert(env.hooks["muc-broadcast-message"], 2, function(event)
				local h = st.clone(event.stanza)
				h:tag("delay", { xmlns = "urn:xmpp:delay", from = room_jid, stamp = "2026-12-02T07:04:02Z" }):up()
				table.insert(room._history, { stanza = h, timestamp = 0 })
			end)
			local line = st.message({ from = room_jid .. "/bob", type = "groupchat" }):text_tag("body", "hi")
			env.fire("muc-broadcast-message", { room = room, stanza = line })
			local entry = room._history[1].stanza
			-- bob leaves, somebody else takes his nick
			room.occupants[room_jid .. "/bob"] = { nick = room_jid .. "/bob", jid = "eve@localhost/x", role = "participant" }
			entry.attr.to = ALICE
			room:route_stanza(entry)
			local got = routed_to(room, ALICE)[1]
			assert.equal(room_jid .. "/" .. id_of(BOB), got.attr.from)
			local x = got:get_child("x", "jabber:x:delay")
			assert.equal("20261202T07:04:02", x.attr.stamp)
			assert.is_nil(entry:get_child("x", "jabber:x:delay"), "mod_muc's entry is left as it is")
			-- a line the module has no sender for
			local unknown = st.clone(entry)
			room.routed = {}
			room:route_stanza(unknown)
			assert.equal(room_jid, routed_to(room, ALICE)[1].attr.from)
			-- a MUC recipient gets mod_muc's line untouched
			room.routed = {}
			entry.attr.to = BOB
			room:route_stanza(entry)
			assert.equal(entry, room.routed[1])
		end)

		it("adds the legacy code to mod_muc's errors to a legacy participant only", function()
			local env = scene()
			table.insert(env.hooks["message/full"], function(event) -- mod_muc: recipient not in room
				event.origin.send(st.error_reply(event.stanza, "cancel", "item-not-found", "Recipient not in room"))
				return true
			end)
			local legacy, muc = session(), session()
			local pm = st.message({ from = ALICE, to = room_jid .. "/nobody", type = "chat" }):text_tag("body", "?")
			env.fire("message/full", { origin = legacy, stanza = pm })
			assert.same({ "cancel", "item-not-found", "404" }, { select_3(legacy.replies[1]) })
			pm.attr.from = BOB
			env.fire("message/full", { origin = muc, stanza = pm })
			assert.same({ "cancel", "item-not-found" }, { select_3(muc.replies[1]) })
		end)
	end)
end)
