-- legacy_rooms.lib.lua: the per-room state of the legacy protocol (legacy.lib) and everything that
-- keeps it true: ids of occupants, the instance-level route_stanza that rewrites `from` for legacy
-- recipients (and hides the real JIDs of private participants), browse pushes, and the room events
-- (join/nick change/leave, creation, restore, destruction, module reload).
--
-- Every stanza a MUC room emits goes through room:route_stanza() (muc.lib.lua: broadcast,
-- presence, history, subject, private messages and IQs all end there), so one function per room
-- sees everything a legacy participant receives from the room.

local st = require "util.stanza";
local jid_util = require "util.jid";
local new_id = require "util.id".short;

local jid_bare, jid_resource = jid_util.bare, jid_util.resource;

local NS_BROWSE = "jabber:iq:browse";
local NS_MUC_USER = "http://jabber.org/protocol/muc#user";
local PUSH_PREFIX = "legacy-push-";

-- muc_api(): mod_muc's environment or nil; send(stanza): routes from the MUC host;
-- id_of(real full JID): the participant id.
local function new(muc_api, send, id_of)
	-- Rooms with legacy participants: room jid → state
	--   by_jid[real full jid] = participant { jid, id, nick, private, joining, queue }
	--   by_id[id] = participant
	--   ids[occupant nick jid] = id (every occupant's id, cached; kept until the occupant has left)
	--   pushed[id] = nick legacy participants were last told
	local states = {};

	local function state_of(room_jid, create)
		local s = states[room_jid];
		if not s and create then
			s = { by_jid = {}, by_id = {}, ids = {}, pushed = {}, count = 0 };
			states[room_jid] = s;
		end
		return s;
	end

	-- id of the occupant whose in-room JID is `nick_jid` (cached; computed from its real JID)
	local function id_of_nick(room, s, nick_jid)
		local id = s.ids[nick_jid];
		if id then return id; end
		local occupant = room:get_occupant_by_nick(nick_jid);
		if not occupant or not occupant.jid then return nil; end
		id = id_of(occupant.jid);
		s.ids[nick_jid] = id;
		return id;
	end

	-- in-room JID (room@host/nick) of the occupant with this id, or nil
	local function nick_of_id(room, s, id)
		id = id:lower();
		for nick_jid, known in pairs(s.ids) do
			if known == id and room:get_occupant_by_nick(nick_jid) then return nick_jid; end
		end
		for nick_jid, occupant in room:each_occupant() do
			if occupant.jid and id_of(occupant.jid) == id then
				s.ids[nick_jid] = id;
				return nick_jid;
			end
		end
	end

	local function private_of_nick(room, s, nick_jid)
		local occupant = room:get_occupant_by_nick(nick_jid);
		local p = occupant and occupant.jid and s.by_jid[occupant.jid];
		if p and p.private then return p; end
		-- an occupant that has just left: found by its cached id
		local id = s.ids[nick_jid];
		p = id and s.by_id[id];
		if p and p.private then return p; end
	end

	local function strip_real_jids(stanza)
		for x in stanza:childtags("x", NS_MUC_USER) do
			for item in x:childtags("item") do item.attr.jid = nil; end
		end
	end

	-- The instance-level route_stanza of a room with legacy participants.
	local function legacy_route(room, stanza)
		local base = getmetatable(room).__index.route_stanza;
		local s = states[room.jid];
		if not s then return base(room, stanza); end
		local to, from = stanza.attr.to, stanza.attr.from;
		local recipient = to and s.by_jid[to];
		local from_nick = from and from ~= room.jid and jid_bare(from) == room.jid and from or nil;
		local priv = from_nick and stanza.name == "presence" and private_of_nick(room, s, from_nick);
		if priv and priv.jid == to then priv = nil; end -- one always sees one's own JID
		if not recipient and not priv then return base(room, stanza); end
		local out = st.clone(stanza);
		if priv then strip_real_jids(out); end
		if recipient and from_nick then
			local id = id_of_nick(room, s, from_nick);
			out.attr.from = id and (room.jid .. "/" .. id) or room.jid;
		end
		if recipient and recipient.joining then
			table.insert(recipient.queue, out);
			return;
		end
		return base(room, out);
	end

	-- The state also hangs on the room object (not in room._data: never stored), so that a reloaded
	-- module adopts the legacy participants of live rooms.
	local function attach(room, s)
		if room.route_stanza ~= legacy_route then
			rawset(room, "route_stanza", legacy_route);
		end
		rawset(room, "_legacy_state", s);
		return s;
	end

	local function detach_if_empty(room_jid)
		local s = states[room_jid];
		if s and s.count == 0 then
			states[room_jid] = nil;
			local muc = muc_api();
			local room = muc and muc.get_room_from_jid(room_jid);
			if room and rawget(room, "route_stanza") == legacy_route then rawset(room, "route_stanza", nil); end
			if room and rawget(room, "_legacy_state") == s then rawset(room, "_legacy_state", nil); end
		end
	end

	local function push(room, to, id, nick)
		local iq = st.iq({ type = "set", from = room.jid, to = to, id = PUSH_PREFIX .. new_id() })
			:tag("user", { xmlns = NS_BROWSE, jid = room.jid .. "/" .. id, name = nick, type = not nick and "remove" or nil });
		send(iq);
	end

	local function push_all(room, s, id, nick)
		for real_jid, p in pairs(s.by_jid) do
			if not p.joining then push(room, real_jid, id, nick); end
		end
	end

	local function add_participant(s, p)
		s.by_jid[p.jid] = p;
		s.by_id[p.id] = p;
		s.count = s.count + 1;
	end

	local function remove_participant(s, p)
		if s.by_jid[p.jid] == p then
			s.by_jid[p.jid] = nil;
			s.by_id[p.id] = nil;
			s.count = s.count - 1;
		end
	end

	-- room events: pushes, state upkeep
	local function on_broadcast_presence(event)
		local room, occupant = event.room, event.occupant;
		local s = states[room.jid];
		if not s or not occupant or occupant.role == nil then return; end
		if event.stanza and event.stanza.attr.type == "unavailable" then return; end
		local id = id_of_nick(room, s, occupant.nick);
		local nick = jid_resource(occupant.nick);
		if id and s.pushed[id] ~= nick then
			s.pushed[id] = nick;
			push_all(room, s, id, nick);
		end
	end

	local function on_occupant_left(event)
		local room, occupant = event.room, event.occupant;
		local s = states[room.jid];
		if not s or not occupant then return; end
		local nick_jid = occupant.nick;
		local id = s.ids[nick_jid] or (occupant.jid and id_of(occupant.jid));
		local stanza = event.stanza;
		local renamed = stanza and stanza.name == "presence" and stanza.attr.type == nil
			and stanza.attr.to ~= nick_jid and jid_bare(stanza.attr.to) == room.jid;
		s.ids[nick_jid] = nil;
		if renamed then return; end -- a nick change: the new nick's presence pushes the new name
		if id then
			s.pushed[id] = nil;
			local p = s.by_id[id];
			if p and not p.joining then remove_participant(s, p); end
			push_all(room, s, id, nil);
		end
		detach_if_empty(room.jid);
	end

	local function on_room_pre_create(event)
		local s = states[event.room.jid];
		if s and s.creating then
			s.creating.created = true;
			attach(event.room, s);
		end
	end

	-- an occupied room evicted from mod_muc's cache comes back as a new object
	local function on_room_restored(event)
		local s = states[event.room.jid];
		if s then attach(event.room, s); end
	end

	local function on_room_destroyed(event)
		states[event.room.jid] = nil;
	end

	-- Legacy participants of live rooms (a module reload): their state is taken over.
	local function adopt()
		local muc = muc_api();
		if not muc then return; end
		local n = 0;
		for room in muc.live_rooms() do
			local s = rawget(room, "_legacy_state");
			if s and s.count > 0 and not states[room.jid] then
				states[room.jid] = s;
				attach(room, s);
				n = n + 1;
			end
		end
		if n > 0 then module:log("info", "legacy: took over the participants of %d room(s)", n); end
	end

	-- On unload the rooms keep their state for the next instance (see attach); only our function goes.
	local function stop()
		for room_jid in pairs(states) do
			local muc = muc_api();
			local room = muc and muc.get_room_from_jid(room_jid);
			if room and rawget(room, "route_stanza") == legacy_route then rawset(room, "route_stanza", nil); end
			states[room_jid] = nil;
		end
	end

	-- Room events, hooked on the MUC host by legacy.lib (ctx = module:context(muc host)).
	local function hook(ctx)
		ctx:hook("muc-broadcast-presence", on_broadcast_presence, -10);
		ctx:hook("muc-occupant-left", on_occupant_left, 10);
		ctx:hook("muc-room-pre-create", on_room_pre_create, 100);
		ctx:hook("muc-room-destroyed", on_room_destroyed, -10);
		ctx:hook("muc-room-restored", on_room_restored);
		ctx:hook("module-loaded", function(event)
			if event.module == "muc" then adopt(); end
		end);
		adopt();
	end

	return {
		states = states, PUSH_PREFIX = PUSH_PREFIX,
		state_of = state_of, id_of_nick = id_of_nick, nick_of_id = nick_of_id,
		attach = attach, detach_if_empty = detach_if_empty,
		add_participant = add_participant, remove_participant = remove_participant,
		push = push, hook = hook, stop = stop,
	};
end

return { new = new };
