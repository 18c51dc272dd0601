-- Specs of moderation.lib.lua (docs/protocol.md §4.2): owner rights granted by the built-in focus.
-- A small fake MUC room keeps mod_muc 0.12's rules that matter here (affiliations by bare JID, the
-- default role of an owner is moderator, occupants keyed by nick, arbitrary iteration order), and
-- a fake auth object stands for auth.lib (auth.occupant_role(real full JID) → "owner" | "member" |
-- nil). The handlers are called with the events mod_muc fires. The auth `none` rules are also
-- checked end to end against a real Prosody in tests/integration/test_moderation.py.

local HOST = "conference.localhost"

local function bare(jid) return (jid:gsub("/.*$", "")) end

local function fake_room(name, conference)
	local room = { jid = name .. "@" .. HOST, _data = {}, occupants = {}, affiliations = {}, grants = {} }
	if conference ~= false then room._data.conference_properties = {} end
	function room:get_affiliation(jid) return self.affiliations[bare(jid)] end
	function room:set_affiliation(actor, jid, affiliation)
		assert(actor == true, "the focus acts as the server (actor true)")
		assert(jid == bare(jid), "grants go to bare JIDs")
		self.affiliations[jid] = affiliation
		table.insert(self.grants, jid)
		for _, occupant in pairs(self.occupants) do
			if occupant.bare_jid == jid and affiliation == "owner" then occupant.role = "moderator" end
		end
		return true
	end
	function room.get_default_role(_, affiliation)
		return (affiliation == "owner" or affiliation == "admin") and "moderator" or "participant"
	end
	function room:get_occupant_by_nick(nick) return self.occupants[nick] end
	function room:each_occupant() return next, self.occupants, nil end
	function room:has_occupant() return next(self.occupants) ~= nil end
	function room:get_occupant_jid(real_jid)
		for nick, occupant in pairs(self.occupants) do
			if occupant.sessions[real_jid] then return nick end
		end
	end
	return room
end

local function load(auth)
	local env = { logs = {}, hooks = {} }
	_G.module = {
		host = "focus.localhost",
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		context = function(_, host)
			return { hook = function(_, name, fn, prio) table.insert(env.hooks, { host, name, fn, prio }) end }
		end,
		hook_global = function() end,
	}
	env.rooms = {}
	_G.prosody = { hosts = { [HOST] = { modules = { muc = {
		get_room_from_jid = function(jid) return env.rooms[jid] end,
	} } } } }
	local lib = assert(loadfile("mod_conference_request/moderation.lib.lua"))()
	local m = lib.new({ muc_hosts = { [HOST] = true } }, auth or { mode = "none", occupant_role = function() return nil end })
	return m, env
end

-- mod_muc's join of a new occupant (or of another session of an existing one): the occupant's
-- role comes from its affiliation, then muc-occupant-pre-join, then the occupant is saved and
-- muc-occupant-joined fires (new occupants only). Returns the occupant, or nil when another bare
-- JID holds the nick (mod_muc's conflict).
local function join(m, room, nick, real_jid, role)
	local nick_jid = room.jid .. "/" .. nick
	local existing = room.occupants[nick_jid]
	local occupant = existing
	if not occupant then
		occupant = { nick = nick_jid, bare_jid = bare(real_jid), sessions = {} }
		occupant.role = role or room:get_default_role(room:get_affiliation(real_jid))
	end
	m.handlers.pre_join({ room = room, occupant = occupant, is_first_session = existing == nil,
		stanza = { name = "presence", attr = { from = real_jid, to = nick_jid } } })
	if existing and existing.bare_jid ~= bare(real_jid) then return nil end
	occupant.sessions[real_jid] = true
	room.occupants[nick_jid] = occupant
	if not existing then
		m.handlers.joined({ room = room, nick = nick_jid, occupant = occupant })
	end
	return occupant
end

local function leave(m, room, nick)
	local nick_jid = room.jid .. "/" .. nick
	local occupant = assert(room.occupants[nick_jid])
	room.occupants[nick_jid] = nil
	occupant.role = nil
	local real_jid = next(occupant.sessions)
	m.handlers.left({ room = room, nick = nick_jid, occupant = occupant,
		stanza = { name = "presence", attr = { from = real_jid, to = nick_jid, type = "unavailable" } } })
end

-- A nick change as mod_muc 0.12 does it: muc-occupant-left for the old nick (with the available
-- presence to the new nick) fires before the new nick is saved; no joined/session-new follows.
local function change_nick(m, room, nick, new_nick)
	local old_jid, new_jid = room.jid .. "/" .. nick, room.jid .. "/" .. new_nick
	local occupant = assert(room.occupants[old_jid])
	room.occupants[old_jid] = nil
	local real_jid = next(occupant.sessions)
	m.handlers.left({ room = room, nick = old_jid, occupant = occupant,
		stanza = { name = "presence", attr = { from = real_jid, to = new_jid } } })
	occupant.nick = new_jid
	room.occupants[new_jid] = occupant
end

local function role_of(room, nick) return room.occupants[room.jid .. "/" .. nick].role end

describe("moderation.lib, auth none", function()
	it("makes the first occupant of a room created for a request owner, and nobody else", function()
		local m = load()
		local room = fake_room("r1")
		join(m, room, "alice", "alice@localhost/a")
		assert.equal("owner", room:get_affiliation("alice@localhost"))
		assert.equal("moderator", role_of(room, "alice"))
		join(m, room, "bob", "bob@localhost/b")
		join(m, room, "carol", "carol@localhost/c")
		assert.is_nil(room:get_affiliation("bob@localhost"))
		assert.equal("participant", role_of(room, "bob"))
		assert.same({ "alice@localhost" }, room.grants)
	end)

	it("passes ownership to the longest-present occupant when the owner leaves, then on again", function()
		local m = load()
		local room = fake_room("r2")
		join(m, room, "alice", "alice@localhost/a")
		-- the nicks sort against the join order, and enough occupants to defeat pairs() luck
		local names = { "zz", "yy", "xx", "ww", "vv", "uu", "tt", "ss" }
		for i, nick in ipairs(names) do join(m, room, nick, "u" .. i .. "@localhost/r") end
		leave(m, room, "alice")
		assert.same({ "alice@localhost", "u1@localhost" }, room.grants)
		assert.equal("moderator", role_of(room, "zz"))
		leave(m, room, "yy") -- not an owner: nothing happens
		assert.equal(2, #room.grants)
		leave(m, room, "zz")
		assert.same({ "alice@localhost", "u1@localhost", "u3@localhost" }, room.grants)
	end)

	it("grants nothing in rooms it did not create", function()
		local m = load()
		local room = fake_room("plain", false)
		room.affiliations["creator@localhost"] = "owner" -- mod_muc made the creator owner
		join(m, room, "creator", "creator@localhost/c")
		join(m, room, "alice", "alice@localhost/a")
		leave(m, room, "creator")
		assert.same({}, room.grants)
		assert.is_nil(m.state_of(room))
	end)

	it("takes an occupant that is already owner (e.g. a server admin) as the room's owner", function()
		local m = load()
		local room = fake_room("r3")
		room.affiliations["admin@localhost"] = "owner"
		join(m, room, "admin", "admin@localhost/x")
		join(m, room, "alice", "alice@localhost/a")
		assert.same({}, room.grants)
		leave(m, room, "admin")
		assert.same({ "alice@localhost" }, room.grants)
	end)

	it("gives a departed owner's room to the first joiner (affiliations outlive presence)", function()
		local m = load()
		local room = fake_room("r4")
		room.affiliations["gone@localhost"] = "owner"
		join(m, room, "bob", "bob@localhost/b")
		assert.same({ "bob@localhost" }, room.grants)
	end)

	it("keeps the owner while another occupant of the same bare JID is in the room", function()
		local m = load()
		local room = fake_room("r5")
		join(m, room, "alice-laptop", "alice@localhost/laptop")
		join(m, room, "bob", "bob@localhost/b")
		join(m, room, "alice-phone", "alice@localhost/phone")
		assert.equal("moderator", role_of(room, "alice-phone")) -- same bare JID: owner too
		leave(m, room, "alice-laptop")
		assert.same({ "alice@localhost" }, room.grants)
		leave(m, room, "alice-phone")
		assert.same({ "alice@localhost", "bob@localhost" }, room.grants)
	end)

	it("does not promote anyone while another owner (made by an owner) is still in the room", function()
		local m = load()
		local room = fake_room("r5b")
		join(m, room, "alice", "alice@localhost/a")
		join(m, room, "bob", "bob@localhost/b")
		join(m, room, "carol", "carol@localhost/c")
		room.affiliations["carol@localhost"] = "owner" -- alice made carol owner too
		leave(m, room, "alice")
		assert.same({ "alice@localhost" }, room.grants)
	end)

	it("elects when the owner is removed by a ban (its affiliation is no longer owner)", function()
		local m = load()
		local room = fake_room("r5c")
		join(m, room, "alice", "alice@localhost/a")
		join(m, room, "bob", "bob@localhost/b")
		-- mod_muc's set_affiliation(outcast): affiliation first, then muc-occupant-left (no stanza)
		room.affiliations["alice@localhost"] = "outcast"
		local occupant = room.occupants[room.jid .. "/alice"]
		room.occupants[room.jid .. "/alice"] = nil
		occupant.role = nil
		m.handlers.left({ room = room, nick = occupant.nick, occupant = occupant })
		assert.same({ "alice@localhost", "bob@localhost" }, room.grants)
	end)

	it("does not elect on a nick change, and the renamed occupant keeps its seniority", function()
		local m = load()
		local room = fake_room("r6")
		join(m, room, "alice", "alice@localhost/a")
		join(m, room, "bob", "bob@localhost/b")
		join(m, room, "carol", "carol@localhost/c")
		change_nick(m, room, "alice", "alice2")
		assert.same({ "alice@localhost" }, room.grants)
		change_nick(m, room, "bob", "bob2")
		leave(m, room, "alice2")
		assert.same({ "alice@localhost", "bob@localhost" }, room.grants)
	end)

	it("does not make a MUC visitor (no voice) owner", function()
		local m = load()
		local room = fake_room("r7")
		join(m, room, "mute", "mute@localhost/m", "visitor")
		assert.same({}, room.grants)
		join(m, room, "bob", "bob@localhost/b")
		assert.same({ "bob@localhost" }, room.grants)
	end)

	it("grants nothing to a joiner mod_muc will refuse for a nick held by someone else", function()
		local m = load()
		local room = fake_room("r7b")
		join(m, room, "mute", "mute@localhost/m", "visitor") -- in the room, not eligible: no owner
		assert.is_nil(join(m, room, "mute", "eve@localhost/e"))
		assert.same({}, room.grants)
	end)

	it("promotes the longest-present occupant, not the joiner, when an ownerless room gets a joiner", function()
		local m = load()
		local room = fake_room("r7c")
		join(m, room, "mute", "mute@localhost/m", "visitor")
		room.occupants[room.jid .. "/mute"].role = "participant" -- given voice later
		join(m, room, "bob", "bob@localhost/b")
		assert.same({ "mute@localhost" }, room.grants)
		assert.equal("participant", role_of(room, "bob"))
	end)

	it("bounds its per-room state by the room's size and drops it when the room is destroyed", function()
		local m = load()
		local room = fake_room("r8")
		join(m, room, "alice", "alice@localhost/a")
		join(m, room, "bob", "bob@localhost/b")
		for i = 1, 1000 do
			join(m, room, "guest", "guest" .. i .. "@guest.localhost/g")
			leave(m, room, "guest")
		end
		local s = m.state_of(room)
		local n = 0
		for _ in pairs(s.seq) do n = n + 1 end
		assert.equal(n, s.size)
		assert.is_true(n <= 2 * 3 + 32 + 1, "seq holds " .. n .. " entries for a room of 2 or 3")
		assert.is_truthy(s.seq["alice@localhost"] and s.seq["bob@localhost"])
		leave(m, room, "alice")
		assert.same({ "alice@localhost", "bob@localhost" }, room.grants) -- order survived compaction
		m.handlers.destroyed({ room = room })
		assert.is_nil(m.state_of(room))
	end)

	it("forgets the room's state when the last occupant leaves", function()
		local m = load()
		local room = fake_room("r9")
		join(m, room, "alice", "alice@localhost/a")
		leave(m, room, "alice")
		assert.is_nil(m.state_of(room))
		join(m, room, "bob", "bob@localhost/b")
		assert.same({ "alice@localhost", "bob@localhost" }, room.grants)
	end)

	it("ignores leaves while the room is being destroyed", function()
		local m = load()
		local room = fake_room("r10")
		join(m, room, "alice", "alice@localhost/a")
		join(m, room, "bob", "bob@localhost/b")
		room.destroying = true
		leave(m, room, "alice")
		assert.same({ "alice@localhost" }, room.grants)
	end)

	it("hooks pre-join after mod_muc's own checks, and leave before mod_muc's own", function()
		local m, env = load()
		m.start()
		local by_name = {}
		for _, h in ipairs(env.hooks) do by_name[h[2]] = h[4] end
		assert.is_true(by_name["muc-occupant-pre-join"] < -30) -- the lock (-30) is mod_muc's lowest
		assert.is_true(by_name["muc-occupant-left"] > -1)
		assert.is_not_nil(by_name["muc-room-destroyed"])
	end)
end)

describe("moderation.lib, auth xmpp/jwt", function()
	-- What auth.lib says about each real full JID (a guest is nil).
	local roles = {
		["alice@auth.localhost/web"] = "owner",    -- auth domain / valid session / token without moderator=false
		["guest1@guest.localhost/x"] = nil,        -- guest
		["tok@guest.localhost/t"] = "member",      -- jwt: a valid token with context.user.moderator = false
		["late@guest.localhost/l"] = "owner",
		["late@guest.localhost/elsewhere"] = "owner", -- authenticated, but that session is not in the room
	}
	local function auth(mode) return { mode = mode, occupant_role = function(jid) return roles[jid] end } end

	for _, mode in ipairs({ "xmpp", "jwt" }) do
		it(mode .. ": authenticated occupants become owners, guests and members stay participants", function()
			local m = load(auth(mode))
			local room = fake_room("a-" .. mode)
			join(m, room, "guest", "guest1@guest.localhost/x") -- first joiner, but a guest
			assert.same({}, room.grants)
			assert.equal("participant", role_of(room, "guest"))
			join(m, room, "alice", "alice@auth.localhost/web")
			assert.same({ "alice@auth.localhost" }, room.grants)
			assert.equal("moderator", role_of(room, "alice"))
			join(m, room, "tok", "tok@guest.localhost/t")
			assert.equal("participant", role_of(room, "tok"))
			-- no auto-owner: the owner leaves, nobody is promoted
			leave(m, room, "alice")
			assert.same({ "alice@auth.localhost" }, room.grants)
		end)
	end

	it("grants nothing when mod_muc will refuse the join for a nick another JID holds", function()
		local m = load(auth("xmpp"))
		local room = fake_room("conflict")
		join(m, room, "x", "guest1@guest.localhost/x")
		-- mod_muc passes the nick's holder as event.occupant; the joiner is the stanza's sender
		assert.is_nil(join(m, room, "x", "alice@auth.localhost/web"))
		assert.same({}, room.grants)
	end)

	it("refuses an auth object without a known mode (no silent fallback to auto-owner)", function()
		assert.has_error(function() load({ occupant_role = function() end }) end)
		assert.has_error(function() load({ mode = "token", occupant_role = function() end }) end)
		assert.has_error(function() load({ mode = "jwt" }) end)
	end)

	it("does not hook leaves (no auto-owner) outside auth none", function()
		local m, env = load(auth("xmpp"))
		m.start()
		for _, h in ipairs(env.hooks) do assert.not_equal("muc-occupant-left", h[2]) end
	end)

	it("grants to an occupant authenticated after it joined, only if it is in the room", function()
		local m, env = load(auth("xmpp"))
		local room = fake_room("late")
		env.rooms[room.jid] = room
		join(m, room, "late", "late@guest.localhost/other") -- joined from a guest session
		assert.same({}, room.grants)
		m.authenticated(room.jid, "late@guest.localhost/elsewhere") -- not that session: not in the room
		assert.same({}, room.grants)
		room.occupants[room.jid .. "/late"].sessions["late@guest.localhost/l"] = true
		m.authenticated(room.jid, "late@guest.localhost/l")
		assert.same({ "late@guest.localhost" }, room.grants)
		m.authenticated("nope@" .. HOST, "late@guest.localhost/l") -- unknown room: nothing
		m.authenticated(room.jid .. "x@other.host", "late@guest.localhost/l")
	end)

	it("grants nothing in rooms it did not create", function()
		local m = load(auth("jwt"))
		local room = fake_room("plain", false)
		join(m, room, "alice", "alice@auth.localhost/web")
		assert.same({}, room.grants)
	end)
end)
