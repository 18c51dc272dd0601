-- legacy.lib.lua: the legacy jabber:iq:conference protocol (jabberd 1.x "conference-0.4") on the
-- MUC host, docs/protocol.md §7. A legacy participant is a real MUC occupant: its join is a XEP-0045 presence
-- from its own full JID that the MUC host's own presence handling processes (room creation rules,
-- passwords, bans, members-only, nick conflicts all stay Prosody's). What is legacy-specific:
--   * the iq get/set in jabber:iq:conference (payload parsed by the C core), browse of a room;
--   * ids: room@host/<sha1 hex of the real full JID> for every occupant, as seen by legacy clients;
--   * `from` rewriting of everything the room sends to a legacy participant: a room with legacy
--     participants gets an instance-level route_stanza (legacy_rooms.lib) that rewrites per
--     recipient and delegates to the room class's own method, removed when the last one leaves;
--   * browse pushes on every join, nick change and leave (legacy_rooms.lib); privacy mode; the
--     invite:<jid> relay; stanzas to room@host/<id> addressed to that occupant.

local st = require "util.stanza";
local jid_util = require "util.jid";
local hashes = require "util.hashes";

local jid_bare, jid_resource, jid_prep = jid_util.bare, jid_util.resource, jid_util.prep;
local resourceprep = require "util.encodings".stringprep.resourceprep;

local NS = "jabber:iq:conference";
local NS_BROWSE = "jabber:iq:browse";
local NS_MUC = "http://jabber.org/protocol/muc";
local NS_MUC_USER = "http://jabber.org/protocol/muc#user";

-- Legacy error codes (XEP-0086); policy-violation has no legacy code: 406 is the closest.
local legacy_codes = {
	["bad-request"] = "400", ["jid-malformed"] = "400", ["not-authorized"] = "401",
	["payment-required"] = "402", ["forbidden"] = "403", ["item-not-found"] = "404",
	["not-allowed"] = "405", ["not-acceptable"] = "406", ["policy-violation"] = "406",
	["registration-required"] = "407", ["conflict"] = "409", ["gone"] = "302",
	["internal-server-error"] = "500", ["resource-constraint"] = "500",
	["feature-not-implemented"] = "501", ["service-unavailable"] = "503",
	["remote-server-timeout"] = "504",
};
local error_types = {
	["bad-request"] = "modify", ["jid-malformed"] = "modify", ["not-authorized"] = "auth",
	["forbidden"] = "auth", ["item-not-found"] = "cancel", ["not-allowed"] = "cancel",
	["not-acceptable"] = "modify", ["policy-violation"] = "modify", ["registration-required"] = "auth",
	["conflict"] = "cancel", ["internal-server-error"] = "cancel", ["resource-constraint"] = "wait",
	["feature-not-implemented"] = "cancel", ["service-unavailable"] = "cancel", ["gone"] = "cancel",
};

local function id_of(real_jid)
	return hashes.sha1(real_jid, true);
end

-- Options, read and checked here (the module refuses to load on a bad value).
local function read_options()
	local function bool(name, default)
		local v = module:get_option(name, default);
		if v == "true" or v == 1 then return true; end
		if v == "false" or v == 0 then return false; end
		if type(v) ~= "boolean" then error(("invalid option %s: expected true or false, got %s"):format(name, tostring(v)), 0); end
		return v;
	end
	local function whole(name, default, min, max)
		local v = module:get_option(name, default);
		if math.type(v) ~= "integer" or v < min or v > max then
			error(("invalid option %s: expected a whole number in [%d, %d], got %s"):format(name, min, max, tostring(v)), 0);
		end
		return v;
	end
	return {
		privacy_everywhere = bool("conference_request_legacy_privacy", false),
		max_nicks = whole("conference_request_legacy_max_nicks", 16, 1, 256),
		max_nick = whole("conference_request_legacy_max_nick", 1023, 1, 1023),
		max_secret = whole("conference_request_legacy_max_secret", 1023, 1, 65535),
		max_name = whole("conference_request_legacy_max_name", 1023, 1, 65535),
		max_outsiders = whole("conference_request_legacy_max_outsiders", 10000, 1, 10000000),
		max_status = whole("conference_request_legacy_max_status", 1023, 0, 65535),
		outsiders_budget = whole("conference_request_legacy_outsiders_budget", 1048576, 1024, 1073741824),
		gc1 = bool("conference_request_legacy_gc1", true),
	};
end

local function new(muc_host, native, opts)
	opts = opts or read_options();
	local parser = native.legacy_parser({
		max_nicks = opts.max_nicks, max_nick = opts.max_nick,
		max_secret = opts.max_secret, max_name = opts.max_name,
	});
	local ctx = module:context(muc_host);
	local looks_like_id = native.legacy_nick_is_id; -- 40 hex digits: the shape of an id
	local measure_set = module:measure("legacy_set", "rate");
	local measure_get = module:measure("legacy_get", "rate");
	local measure_error = module:measure("legacy_error", "rate");

	local function muc_api()
		local h = prosody.hosts[muc_host];
		return h and h.modules.muc;
	end

	local function send(stanza)
		return ctx:send(stanza);
	end

	local rooms = module:require "legacy_rooms".new(muc_api, send, id_of);
	local states = rooms.states; -- room jid → state (legacy_rooms.lib)
	local state_of, id_of_nick, nick_of_id = rooms.state_of, rooms.id_of_nick, rooms.nick_of_id;
	local attach, detach_if_empty, push = rooms.attach, rooms.detach_if_empty, rooms.push;
	local add_participant, remove_participant = rooms.add_participant, rooms.remove_participant;

	-- Presence to the bare room from outsiders (the "availability tracker"): remembered as a small
	-- summary (outsiders.lib: one show, one truncated status), bounded in entries and bytes, a
	-- session's entries dropped when it ends.
	local outsiders = module:require "legacy_outsiders".new(opts);

	local function error_reply(stanza, condition, text)
		local reply = st.error_reply(stanza, error_types[condition] or "cancel", condition, text, stanza.attr.to);
		local e = reply:get_child("error");
		if e then e.attr.code = legacy_codes[condition]; end
		measure_error();
		return reply;
	end

	-- Discovery of the service and its rooms, groupchat 1.0 joins (legacy_discovery/gc1.lib)
	local discovery = module:require "legacy_discovery".new(muc_host, muc_api, states,
		error_reply);
	local gc1 = opts.gc1 and module:require "legacy_gc1".new(muc_host, muc_api,
		function(condition) return legacy_codes[condition]; end, discovery.mark_creation);

	local function privacy_allowed(room)
		return opts.privacy_everywhere or room._data.legacy_privacy == true;
	end

	-- Runs the MUC host's own presence handling for a presence we synthesized; returns the error
	-- stanza the MUC answered (captured, not sent), or nil.
	local function run_presence(origin, presence)
		local captured;
		local proxy = setmetatable({
			send = function(stanza)
				if stanza.attr.type == "error" and not captured then
					captured = stanza;
					return true;
				end
				return origin.send(stanza);
			end,
		}, { __index = origin });
		local h = prosody.hosts[muc_host];
		local ok, err = pcall(h.events.fire_event, "presence/full", { origin = proxy, stanza = presence });
		if not ok then
			module:log("error", "legacy: MUC presence handling raised: %s", tostring(err));
			return st.error_reply(presence, "cancel", "internal-server-error", "could not enter the room");
		end
		return captured;
	end

	local function muc_error(captured)
		local _, condition, text = captured:get_error();
		return condition or "internal-server-error", text;
	end

	-- Picks the first usable, free nick; returns prepped nick or nil, condition, text.
	local function choose_nick(room, nicks, own_nick_jid)
		if #nicks == 0 then return nil, "conflict", "no <nick> offered"; end
		local taken, invalid = 0, 0;
		for _, raw in ipairs(nicks) do
			local nick = raw:find("%S") and resourceprep(raw, true);
			if not nick or nick == "" or not nick:find("%S") or looks_like_id(nick) then
				invalid = invalid + 1;
			else
				local nick_jid = room.jid .. "/" .. nick;
				if nick_jid == own_nick_jid or not room:get_occupant_by_nick(nick_jid) then
					return nick;
				end
				taken = taken + 1;
			end
		end
		if taken == 0 then
			return nil, "conflict", "no usable <nick>: empty, invalid, or 40 hex digits (the shape of an id)";
		end
		return nil, "conflict", "every offered nick is in use";
	end

	local function result_query(stanza, p, room)
		local reply = st.reply(stanza):tag("query", { xmlns = NS })
			:text_tag("nick", p.nick)
			:text_tag("id", room.jid .. "/" .. p.id);
		if p.private then reply:tag("privacy"):up(); end
		return reply;
	end

	local function change_nick(origin, stanza, room, p, request)
		local current = room.jid .. "/" .. p.nick;
		local nick, condition, text = choose_nick(room, request.nicks, current);
		if not nick then return origin.send(error_reply(stanza, condition, text)); end
		local changed = nick ~= p.nick;
		if changed then
			local occupant = room:get_occupant_by_real_jid(p.jid);
			local pres = occupant and occupant:get_presence(p.jid);
			pres = pres and st.clone(pres) or st.presence();
			pres.attr.from, pres.attr.to, pres.attr.type = p.jid, room.jid .. "/" .. nick, nil;
			p.renaming = true; -- its own push follows its result
			local ok, captured = pcall(run_presence, origin, pres);
			p.renaming = nil;
			if not ok then error(captured, 0); end
			if captured or room:get_occupant_jid(p.jid) ~= room.jid .. "/" .. nick then
				local c, t = "conflict", "the nick could not be taken";
				if captured then c, t = muc_error(captured); end
				return origin.send(error_reply(stanza, c, t or "the nick could not be taken"));
			end
			p.nick = nick;
		end
		origin.send(result_query(stanza, p, room));
		if changed then push(room, p.jid, p.id, nick); end
	end

	local function enter(origin, stanza, room_jid, request)
		local muc = muc_api();
		if not muc then return origin.send(error_reply(stanza, "service-unavailable", "the MUC service is not available")); end
		local room = muc.get_room_from_jid(room_jid);
		if room == false then return origin.send(error_reply(stanza, "resource-constraint", "the room could not be loaded")); end
		local real_jid = stanza.attr.from;
		if room then
			local s = states[room.jid];
			local p = s and s.by_jid[real_jid];
			if p and not p.joining then return change_nick(origin, stanza, room, p, request); end
			if room:get_occupant_jid(real_jid) then
				return origin.send(error_reply(stanza, "conflict", "already in this room through groupchat"));
			end
		end

		local was_missing = room == nil;
		local nick, condition, text;
		if room then
			nick, condition, text = choose_nick(room, request.nicks);
		else
			for _, raw in ipairs(request.nicks) do
				local n = raw:find("%S") and resourceprep(raw, true);
				if n and n:find("%S") and not looks_like_id(n) then nick = n; break; end
			end
			if not nick then condition, text = "conflict", "no usable <nick>: empty, invalid, or 40 hex digits (the shape of an id)"; end
		end
		if not nick then return origin.send(error_reply(stanza, condition, text)); end

		local password = room and room:get_password();
		if password and password ~= "" and request.secret ~= password then
			return origin.send(error_reply(stanza, "not-authorized",
				request.secret and "wrong secret" or "this room requires a <secret>"));
		end

		local p = {
			jid = real_jid, id = id_of(real_jid), nick = nick, joining = true, queue = {},
			private = request.privacy and (room == nil or privacy_allowed(room)) or false,
		};
		local s = state_of(room_jid, true);
		add_participant(s, p);
		s.ids[room_jid .. "/" .. nick] = p.id;
		if room then attach(room, s); end -- a new room is attached in muc-room-pre-create

		local pres = st.presence({ from = real_jid, to = room_jid .. "/" .. nick });
		local remembered = outsiders.get(real_jid, room_jid);
		if remembered then
			if remembered.show then pres:text_tag("show", remembered.show); end
			if remembered.status then pres:text_tag("status", remembered.status); end
		end
		pres:tag("x", { xmlns = NS_MUC });
		if request.secret and request.secret ~= "" then pres:text_tag("password", request.secret, { xmlns = NS_MUC }); end
		pres:up();
		s.creating = room == nil and p or nil;
		local captured = run_presence(origin, pres);
		s.creating = nil;
		room = muc.get_room_from_jid(room_jid);
		if captured or not room or room:get_occupant_jid(real_jid) ~= room_jid .. "/" .. nick then
			remove_participant(s, p);
			s.ids[room_jid .. "/" .. nick] = nil;
			detach_if_empty(room_jid);
			local c, t = "internal-server-error", "could not enter the room";
			if captured then c, t = muc_error(captured); end
			if c == "not-allowed" and was_missing then
				t = "this service does not create rooms on request";
			end
			return origin.send(error_reply(stanza, c, t or c));
		end
		outsiders.forget(real_jid, room_jid);
		if origin.directed then origin.directed[room_jid] = true; end -- unavailable on disconnect

		if p.created then
			if room._data.locked then
				ctx:fire_event("muc-room-unlocked", { room = room });
				room._data.locked = nil;
			end
			if request.name and request.name ~= "" then room:set_name(request.name); end
			if request.privacy then
				room._data.legacy_privacy = true;
				p.private = true;
			end
			module:log("info", "legacy: %s created %s", real_jid, room_jid);
		end

		origin.send(result_query(stanza, p, room));
		-- the joiner learns of every participant (itself included), then the queued traffic
		p.joining = false;
		for nick_jid in room:each_occupant() do
			local id = id_of_nick(room, s, nick_jid);
			if id then push(room, real_jid, id, jid_resource(nick_jid)); end
		end
		local queue = p.queue;
		p.queue = nil;
		local base = getmetatable(room).__index.route_stanza;
		for _, out in ipairs(queue) do base(room, out); end
		module:log("debug", "legacy: %s entered %s as %s", real_jid, room_jid, nick);
	end

	local function room_name(room)
		local name = room:get_name();
		if not name or name == "" then name = jid_util.node(room.jid); end
		return name;
	end

	local function on_get(origin, stanza, room_jid)
		measure_get();
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(room_jid);
		if not room then
			return origin.send(error_reply(stanza, "item-not-found", "this room does not exist yet: a set will create it"));
		end
		local s = states[room.jid];
		local p = s and s.by_jid[stanza.attr.from];
		local reply = st.reply(stanza):tag("query", { xmlns = NS });
		if p then
			reply:text_tag("nick", p.nick):text_tag("id", room.jid .. "/" .. p.id);
		else
			reply:tag("nick"):up();
		end
		local password = room:get_password();
		if password and password ~= "" then reply:tag("secret"):up(); end
		if privacy_allowed(room) then reply:tag("privacy"):up(); end
		reply:text_tag("name", room_name(room));
		origin.send(reply);
	end

	local function on_set(origin, stanza, room_jid)
		measure_set();
		local ok, request, condition, text = pcall(parser.parse, parser, tostring(stanza.tags[1]));
		if not ok then
			module:log("error", "legacy: parse raised: %s", tostring(request));
			request, condition, text = nil, "internal-server-error", "could not parse the request";
		end
		if not request then return origin.send(error_reply(stanza, condition, text)); end
		local done, err = pcall(enter, origin, stanza, room_jid, request);
		if not done then
			module:log("error", "legacy: entering %s failed: %s", room_jid, tostring(err));
			local s = states[room_jid];
			local p = s and s.by_jid[stanza.attr.from];
			if p and p.joining then remove_participant(s, p); detach_if_empty(room_jid); end
			if not origin.replied then -- a failure after the result (e.g. in the pushes) adds no second reply
				origin.send(error_reply(stanza, "internal-server-error", "could not enter the room"));
			end
		end
	end

	local function on_browse(origin, stanza, room_jid)
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(room_jid);
		if not room then return origin.send(error_reply(stanza, "item-not-found", "no such room")); end
		local public = room:get_public();
		local reply = st.reply(stanza):tag("conference", {
			xmlns = NS_BROWSE, jid = room.jid, type = public and "public" or "private", name = room_name(room) });
		local s = state_of(room.jid, false) or { ids = {} };
		if public or room:get_occupant_jid(stanza.attr.from) then
			for nick_jid in room:each_occupant() do
				local id = id_of_nick(room, s, nick_jid);
				if id then reply:tag("user", { jid = room.jid .. "/" .. id, name = jid_resource(nick_jid) }):up(); end
			end
		end
		origin.send(reply);
	end

	-- Every IQ gets exactly one reply: handlers see the session through this proxy, which notes
	-- when the reply to `stanza` has gone out, so that a failure after it adds no second one.
	local function replying(origin, stanza)
		local proxy = setmetatable({}, { __index = origin });
		function proxy.send(out)
			local t = out.attr.type;
			if out.name == "iq" and out.attr.id == stanza.attr.id and (t == "result" or t == "error") then
				proxy.replied = true;
			end
			return origin.send(out);
		end
		return proxy;
	end

	-- iq to a bare room: our namespaces, and the replies to our pushes
	local function on_iq_bare(event)
		local origin, stanza = event.origin, event.stanza;
		local t = stanza.attr.type;
		if t == "result" or t == "error" then
			local id = stanza.attr.id;
			if id and id:sub(1, #rooms.PUSH_PREFIX) == rooms.PUSH_PREFIX then return true; end -- replies to pushes
			return;
		end
		local payload = stanza.tags[1];
		local xmlns = payload and payload.attr.xmlns;
		local room_jid = jid_bare(stanza.attr.to);
		local handler;
		if xmlns == NS then
			handler = t == "get" and on_get or on_set;
		elseif xmlns == NS_BROWSE and t == "get" then
			handler = on_browse;
		else
			return;
		end
		local session = replying(origin, stanza);
		local ok, err = pcall(handler, session, stanza, room_jid);
		if not ok then -- on_set answers its own failures; this is the last resort for every path
			module:log("error", "legacy: %s to %s failed: %s", xmlns, room_jid, tostring(err));
			if not session.replied then
				origin.send(error_reply(stanza, "internal-server-error", "could not answer this request"));
			end
		end
		return true;
	end

	-- presence to a bare room
	local function on_presence_bare(event)
		local stanza = event.stanza;
		local t = stanza.attr.type;
		if t ~= nil and t ~= "unavailable" then return; end
		local from, room_jid = stanza.attr.from, jid_bare(stanza.attr.to);
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(room_jid);
		if room and room:get_occupant_jid(from) then return; end -- a participant: MUC's own handling
		if t == nil then
			outsiders.remember(event.origin, from, room_jid, stanza);
		else
			outsiders.forget(from, room_jid);
		end
		return true; -- no reply: "any presence here is just fluff"
	end

	-- messages to a bare room: the invite:<jid> relay, type forced to groupchat for legacy senders
	local function on_message_bare(event)
		local origin, stanza = event.origin, event.stanza;
		local t = stanza.attr.type;
		if t == "error" then return; end
		local room_jid = jid_bare(stanza.attr.to);
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(room_jid);
		if not room then return; end
		local from = stanza.attr.from;
		local nick_jid = room:get_occupant_jid(from);
		if not nick_jid then return; end
		local subject = stanza:get_child_text("subject");
		local target = subject and subject:match("^%s*[Ii][Nn][Vv][Ii][Tt][Ee]:%s*(.-)%s*$");
		if target then
			local to = jid_prep(target);
			if not to or target == "" then
				origin.send(error_reply(stanza, "bad-request", "invite: must be followed by a JID"));
				return true;
			end
			local relay = st.clone(stanza);
			relay.attr.to, relay.attr.from = to, nick_jid;
			if relay.attr.type == "groupchat" then relay.attr.type = nil; end -- a normal message to the invitee
			send(relay);
			return true;
		end
		local s = states[room.jid];
		if s and s.by_jid[from] and t ~= "groupchat" and not stanza:get_child("x", NS_MUC_USER) then
			stanza.attr.type = "groupchat"; -- conference-0.4 forced it
		end
	end

	-- stanzas to room@host/<id>: addressed to the occupant with that id; privacy mode
	local function on_full(event)
		local origin, stanza = event.origin, event.stanza;
		local to = stanza.attr.to;
		local room_jid, resource = jid_bare(to), jid_resource(to);
		local s = states[room_jid];
		if not s or not resource then return; end
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(room_jid);
		if not room then return; end
		local target_nick = to;
		if looks_like_id(resource) and not room:get_occupant_by_nick(to) then
			local nick_jid = nick_of_id(room, s, resource);
			if nick_jid then
				target_nick = nick_jid;
				stanza.attr.to = nick_jid;
			end
		end
		if stanza.name == "iq" and (stanza.attr.type == "get" or stanza.attr.type == "set") then
			local target = room:get_occupant_by_nick(target_nick);
			local payload = stanza.tags[1];
			if target and payload and payload.attr.xmlns == NS_BROWSE and stanza.attr.type == "get"
			and room:get_occupant_jid(stanza.attr.from) then
				-- browse of a participant: the room answers ("it's *our* id")
				local p = target.jid and s.by_jid[target.jid];
				local reply = st.reply(stanza):tag("user", { xmlns = NS_BROWSE,
					jid = room.jid .. "/" .. (id_of_nick(room, s, target_nick) or ""), name = jid_resource(target_nick) });
				if not (p and p.private) and target.jid then reply:tag("user", { jid = target.jid }):up(); end
				reply.attr.from = to;
				origin.send(reply);
				return true;
			end
			local p = target and target.jid and s.by_jid[target.jid];
			if p and p.private and target.jid ~= stanza.attr.from then
				local reply = error_reply(stanza, "forbidden", "this participant is in privacy mode: only messages are relayed");
				reply.attr.from = to;
				origin.send(reply);
				return true;
			end
		end
	end

	-- mod_muc's own errors to legacy clients carry the legacy `code` too (docs/protocol.md §7). A
	-- stanza is from a legacy client when its sender is a jabber:iq:conference participant of some
	-- room, when its c2s session has spoken the legacy protocol to this host (a conference or
	-- browse iq to a room, presence to a bare room from outside), or when it is a groupchat 1.0
	-- presence (to room/nick without the MUC <x/>) from someone not in the room. For such a stanza
	-- the handlers after this one see the session through a proxy whose send() adds the code to
	-- the errors; other senders' stanzas are left alone (their session object is not replaced),
	-- and so is presence to a bare room (no error of mod_muc's to code there, and
	-- legacy_outsiders.lib keys its entries by the session object itself).
	local legacy_sessions = setmetatable({}, { __mode = "k" });

	local function speaks_legacy(origin, stanza)
		local from = stanza.attr.from;
		if not from then return false; end
		if rooms.is_participant(from) then return true; end
		local name, t = stanza.name, stanza.attr.type;
		local to = stanza.attr.to;
		local room_jid, resource = jid_bare(to), jid_resource(to);
		if origin and origin.type == "c2s" then
			if legacy_sessions[origin] then return true; end
			local payload = name == "iq" and stanza.tags[1];
			local xmlns = payload and payload.attr.xmlns;
			local marks = (xmlns == NS and not resource) or (xmlns == NS_BROWSE and (t == "get" or t == "set"));
			if not marks and name == "presence" and not resource and t == nil then
				local muc = muc_api();
				local room = muc and muc.get_room_from_jid(room_jid);
				marks = not (room and room:get_occupant_jid(from));
			end
			if marks then
				legacy_sessions[origin] = true;
				return true;
			end
		end
		if name == "presence" and resource and (t == nil or t == "unavailable")
		and not stanza:get_child("x", NS_MUC) then
			local muc = muc_api();
			local room = muc and muc.get_room_from_jid(room_jid);
			if room and room:get_occupant_jid(from) then return false; end
			-- a groupchat 1.0 join: its session's later errors get codes too
			if t == nil and origin and origin.type == "c2s" then legacy_sessions[origin] = true; end
			return true;
		end
		return false;
	end

	-- The legacy code of an error mod_muc answered `stanza` with: the XEP-0086 code of its
	-- condition, except groupchat from outside the room (mod_muc: not-acceptable), which the old
	-- servers refused with 403.
	local function code_of(stanza, reply)
		local _, condition = reply:get_error();
		if condition == "not-acceptable" and stanza.name == "message" and stanza.attr.type == "groupchat"
		and not jid_resource(stanza.attr.to) then
			return "403";
		end
		return legacy_codes[condition];
	end

	local function on_stanza_coded(event)
		local origin, stanza = event.origin, event.stanza;
		if stanza.attr.type == "error" or not speaks_legacy(origin, stanza) then return; end
		-- presence to a bare room: only noted (outsiders.lib keys its entries by the session itself)
		if stanza.name == "presence" and not jid_resource(stanza.attr.to) then return; end
		event.origin = setmetatable({
			send = function(out, ...)
				if out.attr.type == "error" then
					local e = out:get_child("error");
					if e and e.attr.code == nil then e.attr.code = code_of(stanza, out); end
				end
				return origin.send(out, ...);
			end,
		}, { __index = origin });
	end

	-- Hook the MUC host once it exists (hooking a host that is not active yet would silently hook
	-- the global event bus instead).
	local attached = false;
	local function attach_host()
		if attached or not prosody.hosts[muc_host] then return; end
		attached = true;
		ctx:hook("iq/bare", on_iq_bare, 10);
		ctx:hook("presence/bare", on_presence_bare, 10);
		ctx:hook("message/bare", on_message_bare, 10);
		ctx:hook("message/full", on_full, 10);
		ctx:hook("iq/full", on_full, 10);
		ctx:hook("presence/full", on_full, 10);
		for _, name in ipairs({ "presence/bare", "presence/full", "message/bare", "message/full", "iq/bare", "iq/full" }) do
			ctx:hook(name, on_stanza_coded, 20);
		end
		rooms.hook(ctx);
		discovery.hook();
		if gc1 then gc1.hook(); end
		module:log("debug", "legacy jabber:iq:conference served on %s", muc_host);
	end
	if prosody.hosts[muc_host] then
		attach_host();
	else
		module:hook_global("host-activated", function(host)
			if host == muc_host then attach_host(); end
		end);
	end

	local function stop()
		rooms.stop();
		discovery.stop();
		outsiders.clear();
	end

	return { stop = stop, NS = NS, states = states, outsiders = outsiders };
end

return { new = new, read_options = read_options, id_of = id_of };
