-- moderation.lib.lua: owner rights granted by the built-in focus (docs/protocol.md §4.2).
--
-- Only with the built-in focus (in external mode the focus, e.g. jicofo, decides and this library
-- is not loaded), and only in the rooms created for a conference request (they carry
-- room._data.conference_properties): the module is their focus. Other rooms on the served MUC
-- hosts are plain MUC rooms (created by a user's presence, whose creator mod_muc made owner, or
-- set up by an operator) and keep mod_muc's own rules; see README "Moderation".
--
--   auth "none":        the first occupant becomes owner; when no owner is left in the room, the
--                       longest-present occupant becomes owner (jicofo's auto-owner).
--   auth "xmpp"/"jwt":  an occupant whose real full JID auth.occupant_role() calls "owner" becomes
--                       owner when it joins (or when auth later says so, moderation.authenticated);
--                       everyone else stays as mod_muc made them; no auto-owner.
--
-- Grants are affiliations, so they go to the real bare JID (every occupant of that bare JID, any
-- nick, any resource, is owner). A joiner is granted as it joins (muc-occupant-pre-join at -100,
-- after every check that may refuse it: mod_muc's go down to -30, Jitsi's are all positive), so
-- the join presence it and the room receive already says owner/moderator: no second
-- self-presence in the middle of the client's join (slixmpp, for one, takes such a presence
-- before the subject for an error and leaves). Promotions of occupants already in the room
-- (auto-owner on a departure, moderation.authenticated) go through room:set_affiliation, which
-- mod_muc broadcasts.
--
-- Per-room state (auto-owner only) hangs on the room object, never in room._data (never stored):
--   room[STATE] = { seq = { [bare jid] = join order }, size = #seq, present = occupants at last
--                   scan, next = counter, owner = bare jid of an occupant known to be owner }
-- seq holds the bare JIDs present in the room plus those that left since the last scan; it is
-- compacted when it outgrows 2 × the room + 32, so it stays bounded by the room's own size. The
-- state goes with the room object (destroyed, evicted or hibernated rooms take it along) and is
-- cleared on muc-room-destroyed.

local jid_bare = require "util.jid".bare;

local STATE = "conference_request_moderation";
local COMPACT_SLACK = 32;

local function new(cfg, auth)
	-- auth: { mode = "none" | "xmpp" | "jwt", occupant_role = function(real_full_jid) } (auth.lib)
	assert(type(auth) == "table" and type(auth.occupant_role) == "function", "moderation needs an auth object");
	local mode = auth.mode;
	assert(mode == "none" or mode == "xmpp" or mode == "jwt", "moderation: auth.mode must be none, xmpp or jwt");
	local moderation = { mode = mode };
	local attached = {};

	local function is_conference_room(room)
		return room._data ~= nil and room._data.conference_properties ~= nil;
	end

	local function state_of(room, create)
		local s = rawget(room, STATE);
		if s == nil and create then
			s = { seq = {}, size = 0, present = 0, next = 0, owner = nil };
			room[STATE] = s;
		end
		return s;
	end
	moderation.state_of = state_of;

	local function is_owner(room, bare)
		return room:get_affiliation(bare) == "owner";
	end

	-- Grants owner to a real bare JID; true when it is owner afterwards.
	local function grant(room, bare, why)
		if is_owner(room, bare) then return true; end
		local ok, err_type, condition = room:set_affiliation(true, bare, "owner");
		if not ok then
			module:log("warn", "room %s: could not make %s owner (%s): %s %s", room.jid, bare, why,
				tostring(err_type), tostring(condition));
			return false;
		end
		module:log("info", "room %s: %s made owner (%s)", room.jid, bare, why);
		return true;
	end

	-- auth "none": auto-owner -----------------------------------------------------------------
	local function eligible(occupant)
		return occupant.role ~= nil and occupant.role ~= "visitor";
	end

	-- Rebuilds seq to the bare JIDs in the room (order kept).
	local function compact(room, s)
		local present, seq, n, size = {}, {}, 0, 0;
		for _, occupant in room:each_occupant() do
			local bare = occupant.bare_jid;
			n = n + 1;
			if not present[bare] then
				present[bare] = true;
				seq[bare] = s.seq[bare];
				if seq[bare] then size = size + 1; end
			end
		end
		s.seq, s.size, s.present = seq, size, n;
	end

	local function note_join(room, s, bare)
		if s.seq[bare] == nil then
			s.next = s.next + 1;
			s.seq[bare] = s.next;
			s.size = s.size + 1;
			if s.size > 2 * s.present + COMPACT_SLACK then
				compact(room, s);
			end
		end
	end

	-- true when an occupant of the room is owner (s.owner caches one; it is dropped whenever an
	-- occupant of that bare JID leaves, so a cached owner is still in the room).
	local function owner_present(room, s)
		if s.owner and is_owner(room, s.owner) then return true; end
		s.owner = nil;
		for _, occupant in room:each_occupant() do
			if is_owner(room, occupant.bare_jid) then
				s.owner = occupant.bare_jid;
				return true;
			end
		end
		return false;
	end

	-- When nobody in the room is owner: the longest-present eligible occupant becomes owner.
	-- Occupants that joined before the module was loaded (no seq) count as the longest present.
	-- Returns true when an occupant is owner afterwards.
	local function elect(room, s)
		if owner_present(room, s) then return true; end
		local best, best_seq;
		for nick, occupant in room:each_occupant() do
			if eligible(occupant) then
				local seq = s.seq[occupant.bare_jid] or 0;
				if best == nil or seq < best_seq or (seq == best_seq and nick < best.nick) then
					best, best_seq = occupant, seq;
				end
			end
		end
		if best and grant(room, best.bare_jid, "auto-owner") then
			s.owner = best.bare_jid;
			return true;
		end
		return false;
	end

	-- The occupant is joining (a new occupant, or another session of one): it is owner when it
	-- joins if it is the one to elect. Occupants already in the room come first (the joiner is the
	-- newest), so a joiner into a room without an owner but with eligible occupants promotes the
	-- longest-present of them instead. O(1) while the cached owner holds.
	local function join_none(room, occupant)
		local s = state_of(room, true);
		local bare = occupant.bare_jid;
		note_join(room, s, bare);
		if is_owner(room, bare) or owner_present(room, s) then return false; end
		if elect(room, s) then return false; end
		return eligible(occupant) and grant(room, bare, "first occupant");
	end

	local function join_auth(real_jid, room, occupant)
		return auth.occupant_role(real_jid) == "owner"
			and grant(room, occupant.bare_jid, "authenticated (" .. mode .. ")");
	end

	local function on_pre_join(event)
		local room, occupant, stanza = event.room, event.occupant, event.stanza;
		if not is_conference_room(room) or room.destroying or not occupant then return; end
		-- A nick held by another bare JID: mod_muc refuses the join (conflict) right after this
		-- event, and event.occupant is then the holder.
		local holder = room:get_occupant_by_nick(occupant.nick);
		if holder and holder.bare_jid ~= jid_bare(stanza.attr.from) then return; end
		local granted;
		if mode == "none" then
			granted = join_none(room, occupant);
		else
			granted = join_auth(stanza.attr.from, room, occupant);
		end
		if granted and occupant.role ~= "moderator" then
			-- mod_muc computed the new occupant's role before this event; give it an owner's
			occupant.role = room:get_default_role("owner") or occupant.role;
		end
	end

	-- The join went through: an owner among the occupants is now known (O(1) later joins).
	local function on_joined_none(event)
		local room, occupant = event.room, event.occupant;
		local s = state_of(room, false);
		if s and occupant and s.owner == nil and is_owner(room, occupant.bare_jid) then
			s.owner = occupant.bare_jid;
		end
	end

	local function on_left_none(event)
		local room, occupant = event.room, event.occupant;
		local s = state_of(room, false);
		if s == nil or room.destroying then return; end
		local stanza = event.stanza;
		if stanza and stanza.name == "presence" and stanza.attr.type == nil then
			-- A nick change (an available presence to another nick): the occupant stays, under a
			-- nick mod_muc has not saved yet. Same bare JID, so seq and the owner cache hold.
			return;
		end
		local bare = occupant.bare_jid;
		local was_owner = s.owner == bare or is_owner(room, bare);
		if s.owner == bare then s.owner = nil; end
		if not room:has_occupant() then
			room[STATE] = nil; -- empty: a later first joiner starts afresh
			return;
		end
		if was_owner then elect(room, s); end
	end

	-- auth "xmpp" / "jwt": authenticated occupants -----------------------------------------------
	local function check_session(room, real_jid)
		if not is_conference_room(room) or room.destroying or not real_jid then return; end
		if auth.occupant_role(real_jid) == "owner" then
			grant(room, jid_bare(real_jid), "authenticated (" .. mode .. ")");
		end
	end

	-- For auth.lib: a request from real_jid was authenticated for room_jid while that session may
	-- already be in the room (jicofo's "authenticated" listener): grants owner if it is in the room
	-- and auth.occupant_role says "owner".
	function moderation.authenticated(room_jid, real_jid)
		if mode == "none" or type(room_jid) ~= "string" or type(real_jid) ~= "string" then return; end
		local host = room_jid:match("@([^@/]+)$");
		local h = host and cfg.muc_hosts[host] and prosody.hosts[host];
		local muc = h and h.modules.muc;
		local room = muc and muc.get_room_from_jid(room_jid);
		if room and room:get_occupant_jid(real_jid) then
			check_session(room, real_jid);
		end
	end

	local function on_destroyed(event)
		rawset(event.room, STATE, nil);
	end

	moderation.handlers = {
		pre_join = on_pre_join, joined = on_joined_none, left = on_left_none, destroyed = on_destroyed,
	};

	local function attach(host)
		if attached[host] or not prosody.hosts[host] then return; end
		attached[host] = true;
		local ctx = module:context(host);
		-- after every check that may refuse the join (mod_muc's lowest is the lock, -30)
		ctx:hook("muc-occupant-pre-join", on_pre_join, -100);
		if mode == "none" then
			ctx:hook("muc-occupant-joined", on_joined_none, -10);
			-- before mod_muc's own (-1), which destroys an empty non-persistent room
			ctx:hook("muc-occupant-left", on_left_none, 10);
		end
		ctx:hook("muc-room-destroyed", on_destroyed, 100);
	end

	function moderation.start()
		for host in pairs(cfg.muc_hosts) do
			attach(host);
		end
		module:hook_global("host-activated", function(host)
			if cfg.muc_hosts[host] then attach(host); end
		end);
		module:log("debug", "moderation by the built-in focus: auth %s (%s)", mode,
			mode == "none" and "first occupant and auto-owner" or "authenticated occupants become owners");
	end

	return moderation;
end

return { new = new };
