-- focus.lib.lua: the built-in focus (docs/protocol.md §4.1) and the MUC tracking that keeps the
-- C registry a mirror of the served MUC hosts (docs/protocol.md §3).
--
-- A room that exists in the MUC is ready. A missing room is created through mod_muc's API
-- (create_room: no presence, so restrict_room_creation does not apply), the creating request's
-- properties become room._data.conference_properties, and the room is destroyed again when nobody
-- joins it within conference_request_empty_room_timeout of its creation (requests do not extend
-- that wait). When the registry is full, the oldest unjoined room the module created is destroyed
-- to admit a new one.
--
-- Parking. mod_muc keeps at most muc_room_cache_size (default 100) rooms live and saves every room
-- it evicts past that, persistent or not (mod_muc.lua: room_save(room, nil, true)); the list of
-- saved rooms is a map store that memory and internal storage emulate with one keyval entry, so
-- each eviction rewrites the whole list: O(rooms saved). A flood of requests for new rooms made
-- every creation evict, save and later restore one: the server wedged. So a room the module creates
-- is taken out of mod_muc's live cache at once (forget_room: no save) and kept here ("parked")
-- until the first stanza addressed to it reaches its MUC host (a join, a disco query…), which puts
-- it back (track_room) before mod_muc looks it up. A parked room costs mod_muc nothing; it is
-- created non-persistent (so its destruction leaves no tombstone). What does not see a parked
-- room: code on the MUC host that looks rooms up by itself (get_room_from_jid, live_rooms) before
-- any stanza was sent to it.

local st_time = require "util.time";
local jid_bare = require "util.jid".bare;

local function new(cfg, registry, metrics)
	local focus = {};
	local attached = {};        -- muc host -> true once its events are hooked
	local creating = {};        -- room jid -> properties, while create_room runs
	-- Rooms we created, not yet joined: room jid -> entry { jid, host, deadline (monotonic s),
	-- room = the room object while parked }; the same entries are linked in creation order
	-- (first = oldest; e.prev/e.next), so there are never more of them than tracked rooms.
	local unjoined = {};
	local first, last;

	local function link(e)
		e.prev, e.next = last, nil;
		if last then last.next = e; else first = e; end
		last = e;
		unjoined[e.jid] = e;
	end

	local function unlink(room_jid)
		local e = unjoined[room_jid];
		if not e then return; end
		unjoined[room_jid] = nil;
		if e.prev then e.prev.next = e.next; else first = e.next; end
		if e.next then e.next.prev = e.prev; else last = e.prev; end
		e.prev, e.next = nil, nil;
		return e;
	end
	local sweeping = false;     -- the one empty-room timer is armed
	local reloading = false;    -- save() ran: the next instance adopts the parked rooms

	local function muc_api(host)
		local h = prosody.hosts[host];
		return h and h.modules.muc;
	end
	focus.muc_api = muc_api;

	local function flat_to_map(list)
		local map = {};
		if list then
			for i = 1, #list - 1, 2 do
				map[list[i]] = list[i + 1];
			end
		end
		return map;
	end

	local function answer(room_jid, ready)
		return { room = room_jid, ready = ready, focus_jid = cfg.focus_jid, visitors_supported = false };
	end
	focus.answer = answer;
	-- What answer(room, true) holds besides the room: the doors' fast path (service.lib) renders it natively.
	focus.ready_answer = { focus_jid = cfg.focus_jid };

	-- For the health route and the shell (the external focus also says how many resources are online).
	function focus.status()
		return { mode = "built-in" };
	end

	local function track(room_jid)
		local waiters, cond = registry:set_ready(room_jid);
		if not waiters then
			module:log("warn", "room %s not tracked: %s", room_jid, cond);
			return;
		end
		-- Built-in mode never parks requests; answer any waiter ({ respond = fn }) defensively.
		for _, w in ipairs(waiters) do
			w.respond(answer(room_jid, true));
		end
	end

	local function untrack(room_jid)
		unlink(room_jid);
		for _, w in ipairs(registry:forget(room_jid)) do
			w.respond(answer(room_jid, false));
		end
	end

	-- MUC events -----------------------------------------------------------------------------
	local function on_room_created(event)
		local room = event.room;
		local props = creating[room.jid];
		local e = unjoined[room.jid];
		if e and e.room and e.room ~= room then
			-- somebody else created it anew while ours was out of mod_muc's sight: theirs wins
			unlink(room.jid);
		end
		if props then
			room._data.conference_properties = props;
			-- ours: temporary whatever muc_room_default_persistent says (its owners may change that)
			room:set_persistent(false);
		end
		track(room.jid);
	end

	local function on_room_restored(event)
		track(event.room.jid);
	end

	local function on_room_destroyed(event)
		untrack(event.room.jid);
	end

	local function on_occupant_joined(event)
		local room_jid = event.room.jid;
		if unlink(room_jid) then
			module:log("debug", "room %s joined, empty-room timeout cancelled", room_jid);
		end
	end

	-- Parking -----------------------------------------------------------------------------------
	local function park(e, room)
		local muc = muc_api(e.host);
		if not muc or muc.get_room_from_jid(e.jid) ~= room then return; end
		muc.forget_room(room); -- out of the live cache, without the save an eviction does
		e.room = room;
	end

	-- Back into mod_muc's live cache (which may evict its least recently used room, as any use of
	-- a room does). Returns false when mod_muc refuses (muc_max_rooms reached).
	local function unpark(e)
		local room = e.room;
		local muc = muc_api(e.host);
		if not room or not muc then return true; end
		e.room = nil;
		if muc.track_room(room) then return true; end
		e.room = room;
		module:log("warn", "room %s could not be put back into %s's live rooms (muc_max_rooms reached?)", e.jid, e.host);
		return false;
	end

	-- Any stanza to a parked room (or to one of its occupants' nicks): put the room back first.
	local function on_stanza_to_room(event)
		local to = event.stanza.attr.to;
		local e = to and unjoined[jid_bare(to)];
		if e and e.room then unpark(e); end
	end

	-- A reloaded mod_muc starts with no rooms: parked ones are gone with the old one.
	local function on_muc_unloaded(host)
		local gone = {};
		for room_jid, e in pairs(unjoined) do
			if e.host == host and e.room then gone[#gone + 1] = room_jid; end
		end
		for _, room_jid in ipairs(gone) do untrack(room_jid); end
		if #gone > 0 then module:log("info", "forgot %d unjoined room(s) of %s with its MUC module", #gone, host); end
	end

	local function rebuild(host)
		local muc = muc_api(host);
		if not muc then return; end
		local n = 0;
		for room in muc.live_rooms() do
			if registry:state(room.jid) ~= "ready" then
				track(room.jid);
			end
			n = n + 1;
		end
		module:log("debug", "tracking %d live room(s) of %s", n, host);
	end

	local function attach(host)
		if attached[host] or not prosody.hosts[host] then return; end
		attached[host] = true;
		local ctx = module:context(host);
		ctx:hook("muc-room-created", on_room_created, 100);
		ctx:hook("muc-room-restored", on_room_restored);
		ctx:hook("muc-room-destroyed", on_room_destroyed, 100);
		ctx:hook("muc-occupant-joined", on_occupant_joined);
		ctx:hook("module-loaded", function(event)
			if event.module == "muc" then rebuild(host); end
		end);
		ctx:hook("module-unloaded", function(event)
			if event.module == "muc" then on_muc_unloaded(host); end
		end);
		for _, name in ipairs({ "presence/bare", "presence/full", "message/bare", "message/full", "iq/bare", "iq/full" }) do
			ctx:hook(name, on_stanza_to_room, 1000);
		end
		rebuild(host);
		module:log("debug", "attached to MUC host %s", host);
	end

	function focus.start()
		for host in pairs(cfg.muc_hosts) do
			attach(host);
		end
		module:hook_global("host-activated", function(host)
			if cfg.muc_hosts[host] then attach(host); end
		end);
		local function check_mucs()
			for host in pairs(cfg.muc_hosts) do
				if not muc_api(host) then
					module:log("warn", "%s is not a MUC component of this server (no mod_muc there): "
						.. "requests for its rooms get service-unavailable", host);
				end
			end
		end
		-- once every host has been activated (timers run only once the main loop does)
		module:add_timer(1, check_mucs);
	end

	-- Empty-room timeout: deadlines are creation + timeout, so the list is in deadline order and
	-- one timer serves every room (after a reload with a changed timeout a room may go a little
	-- late: when the rooms listed before it do).
	local SWEEP_BATCH = 500; -- rooms destroyed per event-loop turn

	local function destroy_unjoined(e, why)
		unlink(e.jid);
		local room = e.room;
		if not room then
			local muc = muc_api(e.host);
			room = muc and muc.get_room_from_jid(e.jid);
		end
		if room and not room:has_occupant() then
			e.room = nil;
			module:log("info", "room %s %s, destroying it", e.jid, why);
			metrics.room_expired();
			room:destroy(nil, "Nobody joined the conference");
			return true;
		end
		-- occupied although no join reached us: it is somebody's room now, back in mod_muc's sight
		if e.room then unpark(e); end
		return false;
	end

	local function sweep()
		local now = st_time.monotonic();
		local e, budget = first, SWEEP_BATCH;
		while e and e.deadline <= now and budget > 0 do
			budget = budget - 1;
			local ok, fault = pcall(destroy_unjoined, e, ("was not joined within %gs"):format(cfg.empty_room_timeout));
			if not ok then
				module:log("error", "destroying unjoined room %s: %s", e.jid, tostring(fault));
				unlink(e.jid);
			end
			e = first;
		end
		if not e then
			sweeping = false;
			return;
		end
		if budget == 0 then return 0.001; end -- more are due: after the others have had a turn
		return math.max(e.deadline - now, 0.01);
	end

	local function arm(room_jid, host, deadline)
		unlink(room_jid);
		local e = { jid = room_jid, host = host, deadline = deadline or st_time.monotonic() + cfg.empty_room_timeout };
		link(e);
		if not sweeping then
			sweeping = true;
			module:add_timer(math.max(e.deadline - st_time.monotonic(), 0.01), sweep);
		end
		return e;
	end

	-- Registry full: the oldest unjoined room we created goes, as its timer would have made it go.
	local function evict_unjoined()
		while first do
			if destroy_unjoined(first, "was the oldest unjoined room while the registry was full") then return true; end
		end
		return false;
	end

	local function err(condition, text)
		return { condition = condition, text = text };
	end

	-- The built-in decision for one checked room.
	function focus.request(room_jid, host, request, requester, respond)
		if registry:state(room_jid) == "ready" then
			return respond(answer(room_jid, true));
		end
		local muc = muc_api(host);
		if not muc then
			return respond(err("service-unavailable", "the conference service is not available"));
		end
		local room = muc.get_room_from_jid(room_jid);
		if room == false then
			return respond(err("internal-server-error", "the conference service could not load the room"));
		end
		if room then
			track(room_jid);
			return respond(answer(room_jid, true));
		end
		-- Only requesters auth.lib allowed may create (docs/protocol.md §5); guests join existing rooms only.
		if requester.may_create == false then return respond(err("not-authorized", "not allowed to create the conference")); end
		local limited = requester.creation_limited and requester.creation_limited(requester);
		if limited then return respond(limited); end
		-- only a requester that may create makes room for its room
		while #registry >= cfg.max_rooms and evict_unjoined() do end
		if #registry >= cfg.max_rooms then
			module:log("warn", "not creating %s: %d rooms tracked (conference_request_max_rooms)", room_jid, #registry);
			return respond(err("resource-constraint", "too many conferences on this server"));
		end
		creating[room_jid] = flat_to_map(request.properties);
		local ok, created, why = pcall(muc.create_room, room_jid);
		creating[room_jid] = nil;
		if not ok or not created then
			local reason = not ok and created or why or "room limit of the conference service reached";
			module:log("warn", "could not create room %s: %s", room_jid, tostring(reason));
			if registry:state(room_jid) ~= "absent" and not muc.get_room_from_jid(room_jid) then
				untrack(room_jid);
			end
			if why == "room-exists" then
				return respond(answer(room_jid, true));
			end
			return respond(err(ok and "resource-constraint" or "internal-server-error", "the conference room could not be created"));
		end
		if registry:state(room_jid) ~= "ready" then
			track(room_jid);
		end
		metrics.room_created();
		module:log("info", "created room %s for a %s request", room_jid, requester.door);
		park(arm(room_jid, host), created);
		return respond(answer(room_jid, true));
	end

	-- For operators: room, state, waiters, whether we wait for a first join, stored properties.
	function focus.rooms()
		local list = {};
		for room_jid, state, waiters in registry:each() do
			local props;
			local host = room_jid:match("@(.*)$");
			local muc = host and muc_api(host);
			local e = unjoined[room_jid];
			local room = e and e.room or muc and muc.get_room_from_jid(room_jid);
			if room then props = room._data.conference_properties; end
			table.insert(list, { room = room_jid, state = state, waiters = waiters,
				unjoined = e ~= nil, properties = props });
		end
		table.sort(list, function(a, b) return a.room < b.room; end);
		return list;
	end

	-- Module reload: the empty-room deadlines survive (monotonic clock, same process), and so do
	-- the parked rooms (the next instance keeps them out of mod_muc's live cache).
	function focus.save()
		reloading = true;
		local saved = {};
		for room_jid, e in pairs(unjoined) do saved[room_jid] = { deadline = e.deadline, room = e.room }; end
		return saved;
	end

	function focus.restore(saved)
		if type(saved) ~= "table" then return; end
		local list = {};
		for room_jid, v in pairs(saved) do
			if type(v) == "number" then v = { deadline = v }; end -- an older instance's format
			if type(v) == "table" and type(v.deadline) == "number" then
				list[#list + 1] = { jid = room_jid, deadline = v.deadline, room = v.room };
			end
		end
		table.sort(list, function(a, b) return a.deadline < b.deadline; end);
		for _, v in ipairs(list) do
			local host = v.jid:match("@(.*)$");
			if host and cfg.muc_hosts[host] and (v.room or registry:state(v.jid) == "ready") then
				if v.room and registry:state(v.jid) ~= "ready" then track(v.jid); end
				arm(v.jid, host, v.deadline).room = v.room;
			end
		end
	end

	-- Unload: nobody will answer parked requests any more; they get ready=false (docs/protocol.md §8). Parked
	-- rooms are destroyed unless the module is being reloaded (nobody else knows them).
	function focus.stop()
		local rooms = {};
		for room_jid, _, waiters in registry:each() do
			if waiters > 0 then table.insert(rooms, room_jid); end
		end
		for _, room_jid in ipairs(rooms) do
			for _, w in ipairs(registry:forget(room_jid)) do
				w.respond(answer(room_jid, false));
			end
		end
		if not reloading then
			local parked = {};
			for _, e in pairs(unjoined) do
				if e.room then parked[#parked + 1] = e; end
			end
			for _, e in ipairs(parked) do
				local ok, fault = pcall(destroy_unjoined, e, "was never joined and the module is unloaded");
				if not ok then module:log("error", "destroying unjoined room %s: %s", e.jid, tostring(fault)); end
			end
		end
		for room_jid in pairs(unjoined) do unjoined[room_jid] = nil; end
		first, last = nil, nil;
	end

	return focus;
end

return { new = new };
