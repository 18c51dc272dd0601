-- legacy_rooms.lib.lua: the per-room state of the legacy protocol (legacy.lib) and everything that
-- keeps it true: ids of occupants, the instance-level route_stanza that rewrites `from` for legacy
-- recipients (and hides the real JIDs of private participants), browse pushes, and the room events
-- (join/nick change/leave, creation, restore, destruction, module reload).
--
-- Every stanza a MUC room emits goes through room:route_stanza() (muc.lib.lua: broadcast,
-- presence, history, subject, private messages and IQs all end there), so one function per room
-- sees everything a legacy participant receives from the room.
--
-- Nick changes: mod_muc announces one as unavailable (status 303) from the old nick and available
-- from the new one, both through room:publicise_occupant_status(). A room with legacy participants
-- also gets an instance-level publicise_occupant_status that marks the two broadcasts of a rename
-- (state.quiet = the nick JID being announced) so that legacy_route drops them for legacy
-- recipients: those learn of the rename by the browse push alone (docs/protocol.md §7).
--
-- History: mod_muc 0.12 keeps only the stanza (from room/<nick at the time>) and a timestamp per
-- history entry, not the sender's real JID. The module notes it when mod_muc adds the entry (a
-- weak table on the room, keyed by the entry's stanza, which is the very object mod_muc replays),
-- so that a legacy participant sees every replayed line from the sender's id, after a rename or a
-- leave too, plus the jabber:x:delay stamp old clients read.

local st = require "util.stanza";
local jid_util = require "util.jid";
local new_id = require "util.id".short;
local datetime = require "util.datetime";

local jid_bare, jid_resource = jid_util.bare, jid_util.resource;

local NS_BROWSE = "jabber:iq:browse";
local NS_MUC_USER = "http://jabber.org/protocol/muc#user";
local NS_DELAY = "urn:xmpp:delay";
local NS_X_DELAY = "jabber:x:delay";
local PUSH_PREFIX = "legacy-push-";

-- muc_api(): mod_muc's environment or nil; send(stanza): routes from the MUC host;
-- id_of(real full JID): the participant id.
local function new(muc_api, send, id_of)
	-- Rooms with legacy participants: room jid → state
	--   by_jid[real full jid] = participant { jid, id, nick, private, joining, queue, renaming }
	--   by_id[id] = participant
	--   ids[occupant nick jid] = id (every occupant's id, cached; kept until the occupant has left)
	--   pushed[id] = nick legacy participants were last told
	--   quiet = nick JID whose presence legacy participants are not sent (a nick change under way)
	--   renamed = { nick = new nick JID, jid = real JID } between the two broadcasts of a rename
	local states = {};
	-- real full JID → in how many rooms it is a legacy participant (legacy.lib: whose errors get codes)
	local participant_rooms = {};

	local function count_in(jid, delta)
		local n = (participant_rooms[jid] or 0) + delta;
		participant_rooms[jid] = n > 0 and n or nil;
	end

	local function is_participant(jid)
		return participant_rooms[jid] ~= nil;
	end

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

	-- Real JIDs of the senders of the room's history entries: entry stanza → real full JID (weak
	-- keys: an entry mod_muc drops from its history goes from here too). On the room object, like
	-- the state, so that a reloaded module still knows the senders of earlier lines.
	local function history_senders(room, create)
		local senders = rawget(room, "_legacy_history_senders");
		if not senders and create then
			senders = setmetatable({}, { __mode = "k" });
			rawset(room, "_legacy_history_senders", senders);
		end
		return senders;
	end

	-- The urn:xmpp:delay a replayed line carries: mod_muc stamps its history entries (and the
	-- subject it sends a joiner) with one from the room itself, and strips such a delay from what
	-- occupants send, so only the room's own replays carry it.
	local function room_delay(room, stanza)
		if stanza.name ~= "message" or stanza.attr.type ~= "groupchat" then return nil; end
		for delay in stanza:childtags("delay", NS_DELAY) do
			if delay.attr.from == room.jid then return delay; end
		end
	end

	-- A replayed line as a legacy participant sees it: from the sender's id when the room knows
	-- the sender's real JID (else from the room), with jabber:x:delay (XEP-0091, CCYYMMDDThh:mm:ss).
	local function rewrite_replay(room, stanza, out, delay)
		local real;
		if stanza:get_child("body") then
			local senders = history_senders(room, false);
			real = senders and senders[stanza];
		else
			local subject = rawget(room, "_legacy_subject_sender");
			real = subject and subject.nick == stanza.attr.from and subject.jid or nil;
		end
		out.attr.from = real and (room.jid .. "/" .. id_of(real)) or room.jid;
		local t = delay.attr.stamp and datetime.parse(delay.attr.stamp);
		if t and not out:get_child("x", NS_X_DELAY) then
			out:tag("x", { xmlns = NS_X_DELAY, from = room.jid, stamp = datetime.legacy(t) }):up();
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
		if recipient and from_nick and s.quiet == from_nick and stanza.name == "presence" then
			return; -- a nick change: legacy participants get the browse push with the new name only
		end
		local priv = from_nick and stanza.name == "presence" and private_of_nick(room, s, from_nick);
		if priv and priv.jid == to then priv = nil; end -- one always sees one's own JID
		if not recipient and not priv then return base(room, stanza); end
		local out = st.clone(stanza);
		if priv then strip_real_jids(out); end
		local delay = recipient and room_delay(room, stanza);
		if delay then
			rewrite_replay(room, stanza, out, delay);
		elseif recipient and from_nick then
			local id = id_of_nick(room, s, from_nick);
			out.attr.from = id and (room.jid .. "/" .. id) or room.jid;
		end
		if recipient and recipient.joining then
			table.insert(recipient.queue, out);
			return;
		end
		return base(room, out);
	end

	local function has_status(x, code)
		for status in x:childtags("status") do
			if status.attr.code == code then return true; end
		end
		return false;
	end

	-- The instance-level publicise_occupant_status of a room with legacy participants: marks the
	-- two broadcasts of a nick change (mod_muc's "normal nick change": the old nick's unavailable
	-- with status 303 and the new nick, then the new nick's available) for legacy_route.
	local function legacy_publicise(room, occupant, x, nick, ...)
		local base = getmetatable(room).__index.publicise_occupant_status;
		local s = states[room.jid];
		if not s or not occupant then return base(room, occupant, x, nick, ...); end
		local quiet;
		local base_x = x and (x.base or x);
		if nick and base_x and base_x.name and has_status(base_x, "303") then
			quiet = occupant.nick;
			s.renamed = { nick = room.jid .. "/" .. nick, jid = occupant.jid };
		elseif s.renamed and s.renamed.nick == occupant.nick and s.renamed.jid == occupant.jid then
			quiet = occupant.nick;
			s.renamed = nil;
		end
		if not quiet then return base(room, occupant, x, nick, ...); end
		local before = s.quiet;
		s.quiet = quiet;
		local ok, err = pcall(base, room, occupant, x, nick, ...);
		s.quiet = before;
		if not ok then error(err, 0); end
	end

	-- The state also hangs on the room object (not in room._data: never stored), so that a reloaded
	-- module adopts the legacy participants of live rooms.
	local function attach(room, s)
		if room.route_stanza ~= legacy_route then
			rawset(room, "route_stanza", legacy_route);
		end
		local class = getmetatable(room).__index;
		if type(class) == "table" and class.publicise_occupant_status and room.publicise_occupant_status ~= legacy_publicise then
			rawset(room, "publicise_occupant_status", legacy_publicise);
		end
		rawset(room, "_legacy_state", s);
		return s;
	end

	local function unattach(room)
		if rawget(room, "route_stanza") == legacy_route then rawset(room, "route_stanza", nil); end
		if rawget(room, "publicise_occupant_status") == legacy_publicise then
			rawset(room, "publicise_occupant_status", nil);
		end
	end

	local function detach_if_empty(room_jid)
		local s = states[room_jid];
		if s and s.count == 0 then
			states[room_jid] = nil;
			local muc = muc_api();
			local room = muc and muc.get_room_from_jid(room_jid);
			if room then unattach(room); end
			if room and rawget(room, "_legacy_state") == s then rawset(room, "_legacy_state", nil); end
		end
	end

	local function push(room, to, id, nick)
		local iq = st.iq({ type = "set", from = room.jid, to = to, id = PUSH_PREFIX .. new_id() })
			:tag("user", { xmlns = NS_BROWSE, jid = room.jid .. "/" .. id, name = nick, type = not nick and "remove" or nil });
		send(iq);
	end

	-- To every legacy participant but those entering (they get the full list after their result)
	-- and one renaming itself by a set (it gets its push after its result).
	local function push_all(room, s, id, nick)
		for real_jid, p in pairs(s.by_jid) do
			if not p.joining and not p.renaming then push(room, real_jid, id, nick); end
		end
	end

	local function add_participant(s, p)
		s.by_jid[p.jid] = p;
		s.by_id[p.id] = p;
		s.count = s.count + 1;
		count_in(p.jid, 1);
	end

	local function remove_participant(s, p)
		if s.by_jid[p.jid] == p then
			s.by_jid[p.jid] = nil;
			s.by_id[p.id] = nil;
			s.count = s.count - 1;
			count_in(p.jid, -1);
		end
	end

	-- a room's state dropped whole (room destroyed, module unloaded)
	local function drop_state(room_jid)
		local s = states[room_jid];
		if not s then return; end
		states[room_jid] = nil;
		for jid in pairs(s.by_jid) do count_in(jid, -1); end
	end

	-- room events: pushes, state upkeep
	local function on_broadcast_presence(event)
		local room, occupant = event.room, event.occupant;
		local s = states[room.jid];
		if not s or not occupant or occupant.role == nil then return; end
		if event.stanza and event.stanza.attr.type == "unavailable" then return; end
		local id = id_of_nick(room, s, occupant.nick);
		local nick = jid_resource(occupant.nick);
		local p = occupant.jid and s.by_jid[occupant.jid];
		if p and not p.joining then p.nick = nick; end -- a rename by presence to room/newnick too
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

	-- Every line mod_muc adds to a room's history (any room: a legacy participant may join later)
	-- is noted with its sender's real JID; so is the subject's setter. mod_muc's history hook on
	-- muc-broadcast-message runs at priority 0 and appends the entry: the last entry before it and
	-- after it tell whether this message added one.
	local function on_message_before(event)
		local history = event.room._history;
		event.legacy_last_entry = history and history[#history] or false;
	end

	local function on_message_after(event)
		local room, stanza = event.room, event.stanza;
		local from = stanza.attr.from;
		local occupant = from and from ~= room.jid and room:get_occupant_by_nick(from);
		local real = occupant and occupant.jid;
		if not real then return; end
		local history = room._history;
		local last = history and history[#history];
		if last and last ~= event.legacy_last_entry and event.legacy_last_entry ~= nil then
			history_senders(room, true)[last.stanza] = real;
		elseif stanza:get_child("subject") and not stanza:get_child("body") then
			rawset(room, "_legacy_subject_sender", { nick = from, jid = real });
		end
	end

	-- an occupied room evicted from mod_muc's cache comes back as a new object
	local function on_room_restored(event)
		local s = states[event.room.jid];
		if s then attach(event.room, s); end
	end

	local function on_room_destroyed(event)
		drop_state(event.room.jid);
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
				for jid in pairs(s.by_jid) do count_in(jid, 1); end
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
			if room then unattach(room); end
			drop_state(room_jid);
		end
	end

	-- Room events, hooked on the MUC host by legacy.lib (ctx = module:context(muc host)).
	local function hook(ctx)
		ctx:hook("muc-broadcast-presence", on_broadcast_presence, -10);
		ctx:hook("muc-occupant-left", on_occupant_left, 10);
		ctx:hook("muc-room-pre-create", on_room_pre_create, 100);
		ctx:hook("muc-room-destroyed", on_room_destroyed, -10);
		ctx:hook("muc-room-restored", on_room_restored);
		ctx:hook("muc-broadcast-message", on_message_before, 1);
		ctx:hook("muc-broadcast-message", on_message_after, -1);
		ctx:hook("module-loaded", function(event)
			if event.module == "muc" then adopt(); end
		end);
		adopt();
	end

	return {
		states = states, PUSH_PREFIX = PUSH_PREFIX,
		state_of = state_of, id_of_nick = id_of_nick, nick_of_id = nick_of_id, is_participant = is_participant,
		attach = attach, detach_if_empty = detach_if_empty,
		add_participant = add_participant, remove_participant = remove_participant,
		push = push, hook = hook, stop = stop,
	};
end

return { new = new };
