-- focus.lib.lua: the built-in focus (SPEC §4 "Built-in") and the MUC tracking that keeps the
-- C registry a mirror of the served MUC hosts (SPEC §3).
--
-- A room that exists in the MUC is ready. A missing room is created through mod_muc's API
-- (create_room: no presence, so restrict_room_creation does not apply), the creating request's
-- properties become room._data.conference_properties, and the room is destroyed again when nobody
-- joins it within conference_request_empty_room_timeout (each new request restarts that wait).

local st_time = require "util.time";

local function new(cfg, registry, metrics)
	local focus = {};
	local attached = {};        -- muc host -> true once its events are hooked
	local creating = {};        -- room jid -> properties, while create_room runs
	local unjoined = {};        -- room jid -> deadline (monotonic s) for rooms we created, not yet joined

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
		unjoined[room_jid] = nil;
		for _, w in ipairs(registry:forget(room_jid)) do
			w.respond(answer(room_jid, false));
		end
	end

	-- MUC events -----------------------------------------------------------------------------
	local function on_room_created(event)
		local room = event.room;
		local props = creating[room.jid];
		if props then
			room._data.conference_properties = props;
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
		if unjoined[room_jid] then
			unjoined[room_jid] = nil;
			module:log("debug", "room %s joined, empty-room timeout cancelled", room_jid);
		end
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

	-- Empty-room timeout: one timer per created room; a request moves the deadline, the timer
	-- re-arms itself until the deadline passes, a join removes the entry.
	local function arm(room_jid, host, delay)
		delay = delay or cfg.empty_room_timeout;
		unjoined[room_jid] = st_time.monotonic() + delay;
		module:add_timer(delay, function()
			local deadline = unjoined[room_jid];
			if not deadline then return; end
			local now = st_time.monotonic();
			if now < deadline then
				return deadline - now;
			end
			unjoined[room_jid] = nil;
			local muc = muc_api(host);
			local room = muc and muc.get_room_from_jid(room_jid);
			if room and not room:has_occupant() then
				module:log("info", "room %s was not joined within %gs, destroying it", room_jid, cfg.empty_room_timeout);
				metrics.room_expired();
				room:destroy(nil, "Nobody joined the conference");
			end
		end);
	end

	local function touch(room_jid)
		if unjoined[room_jid] then
			unjoined[room_jid] = st_time.monotonic() + cfg.empty_room_timeout;
		end
	end

	local function err(condition, text)
		return { condition = condition, text = text };
	end

	-- The built-in decision for one checked room.
	function focus.request(room_jid, host, request, requester, respond)
		if registry:state(room_jid) == "ready" then
			touch(room_jid);
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
			touch(room_jid);
			return respond(answer(room_jid, true));
		end
		-- Only requesters auth.lib allowed may create (SPEC §5); guests join existing rooms only.
		if requester.may_create == false then return respond(err("not-authorized", "not allowed to create the conference")); end
		if #registry >= cfg.max_rooms then
			module:log("warn", "not creating %s: %d rooms tracked (conference_request_max_rooms)", room_jid, #registry);
			return respond(err("resource-constraint", "too many conferences on this server"));
		end
		local limited = requester.creation_limited and requester.creation_limited(requester);
		if limited then return respond(limited); end
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
		arm(room_jid, host);
		return respond(answer(room_jid, true));
	end

	-- For operators: room, state, waiters, whether we wait for a first join, stored properties.
	function focus.rooms()
		local list = {};
		for room_jid, state, waiters in registry:each() do
			local props;
			local host = room_jid:match("@(.*)$");
			local muc = host and muc_api(host);
			local room = muc and muc.get_room_from_jid(room_jid);
			if room then props = room._data.conference_properties; end
			table.insert(list, { room = room_jid, state = state, waiters = waiters,
				unjoined = unjoined[room_jid] ~= nil, properties = props });
		end
		table.sort(list, function(a, b) return a.room < b.room; end);
		return list;
	end

	-- Module reload: the empty-room deadlines survive (monotonic clock, same process).
	function focus.save()
		local saved = {};
		for room_jid, deadline in pairs(unjoined) do saved[room_jid] = deadline; end
		return saved;
	end

	function focus.restore(saved)
		if type(saved) ~= "table" then return; end
		local now = st_time.monotonic();
		for room_jid, deadline in pairs(saved) do
			local host = room_jid:match("@(.*)$");
			if registry:state(room_jid) == "ready" and host and cfg.muc_hosts[host] then
				arm(room_jid, host, math.max(deadline - now, 0.01));
			end
		end
	end

	-- Unload: nobody will answer parked requests any more; they get ready=false (SPEC §8).
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
		for room_jid in pairs(unjoined) do unjoined[room_jid] = nil; end
	end

	return focus;
end

return { new = new };
