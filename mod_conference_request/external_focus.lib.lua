-- external_focus.lib.lua: the external focus (docs/protocol.md §4.3, issue #3), e.g. jicofo.
--
-- The module stands where Jitsi's client_proxy component stands:
--   * it learns the focus's online resources from the presence the focus sends to the module's
--     host (the focus account's roster must have the module's host subscribed to its presence,
--     as Jitsi's installer does with `mod_roster_command subscribe focus.<domain> focus@auth.<domain>`;
--     the module also asks for that subscription at load, as client_proxy does);
--   * a room is ready while an occupant whose real bare JID is the focus is in it (MUC events);
--   * for a room that is not ready, the first request is forwarded once to one focus resource as a
--     conference IQ NAT-ed like client_proxy does (from = <module host>/<requester full JID>;
--     HTTP requesters have no JID: from = <module host>, the bare host); every other request for
--     the room waits on that notification (single flight), re-notified at most once per
--     conference_request_ready_wait while the room stays not ready.
--
-- Room state lives in the C registry (native README: set_pending/set_ready/forget/wait/cancel/
-- expire/notify_due); this file only feeds it MUC events and timer ticks and turns its verdicts
-- into answers through the `respond` callbacks of service.lib.
--
-- Same interface as focus.lib (built-in): new(cfg, registry, metrics, conditions) -> { start, stop,
-- save, restore, request, rooms, answer, muc_api, focus_resources, counts } and forward (visitors.lib:
-- one request forwarded, the focus's answer relayed to its requester).

local st = require "util.stanza";
local jid = require "util.jid";
local id = require "util.id";
local st_time = require "util.time";
local configmanager = require "core.configmanager";

local NS = "http://jitsi.org/protocol/focus";

-- Errors that mean "the focus resource could not be reached", not "the focus refused": the
-- waiters get ready=false (clients retry) instead of an error they would treat as fatal.
local unreachable = {
	["service-unavailable"] = true, ["recipient-unavailable"] = true, ["remote-server-not-found"] = true,
	["remote-server-timeout"] = true, ["item-not-found"] = true, ["gone"] = true, ["redirect"] = true,
};

-- Conditions the focus may send that we relay as they are; anything else becomes
-- internal-server-error with the focus's text (a condition the doors can map to a status).
local function relayable(conditions, condition)
	return conditions == nil or conditions[condition] ~= nil;
end

local function new(cfg, registry, _, conditions)
	local ext = {};
	local focus_bare = cfg.focus;
	local focus_host = jid.host(focus_bare);
	local ready_wait = cfg.ready_wait;
	-- The single-flight interval: a notification may be repeated at most once per ready_wait.
	local notify_interval = ready_wait > 0 and ready_wait or 1;
	-- How often deadlines are checked while anyone waits.
	local tick = math.min(0.25, math.max(0.02, ready_wait / 10));
	local now = st_time.monotonic;

	local resources = {};       -- array of online focus resources, in arrival order
	local stopped = false;
	local ticking = false;
	local attached = {};        -- muc host -> true once hooked
	local unbind_hooked = {};   -- user host -> true once resource-unbind is hooked
	local by_session = setmetatable({}, { __mode = "k" }); -- c2s session -> { [waiter] = true }
	-- room jid -> properties of the request that notified the focus, until the MUC room exists
	-- (docs/protocol.md §3: the creating request's properties become room._data.conference_properties)
	local first_properties = {};
	local last_no_focus_warning = -math.huge;

	ext.counts = { notifications = 0, focus_errors = 0, timeouts = 0, no_focus = 0, bounded = 0,
		cancelled = 0, ready_after_wait = 0 };
	local m_notify = module:measure("focus_notifications", "rate");
	local m_time_to_ready = module:measure("focus_time_to_ready", "distribution", "seconds");
	local m_outcome = {};
	local function outcome(name)
		local f = m_outcome[name];
		if not f then
			f = module:measure("focus_answer_" .. name, "rate");
			m_outcome[name] = f;
		end
		f();
	end

	local function muc_api(host)
		local h = prosody.hosts[host];
		return h and h.modules.muc;
	end
	ext.muc_api = muc_api;

	local function answer(room_jid, ready)
		return { room = room_jid, ready = ready, focus_jid = focus_bare, visitors_supported = false };
	end
	ext.answer = answer;
	-- What answer(room, true) holds besides the room, and what request() counts for a ready room:
	-- the doors' fast path (service.lib) renders it natively.
	ext.ready_answer = { focus_jid = focus_bare, count = function() outcome("ready_now"); end };

	-- For the health route and the shell: which focus, and how many of its resources are online.
	function ext.status()
		return { mode = "external", jid = focus_bare, online = #resources };
	end

	function ext.focus_resources()
		local copy = {};
		for i, r in ipairs(resources) do copy[i] = r; end
		return copy;
	end

	-- Waiters ----------------------------------------------------------------------------------
	-- A waiter is { respond = fn, since = monotonic s, room = jid, id = registry id,
	--               session = c2s session or nil, done = bool }.

	local function release(w)
		w.done = true;
		local s = w.session;
		if s then
			local set = by_session[s];
			if set then
				set[w] = nil;
				if next(set) == nil then by_session[s] = nil; end
			end
		end
	end

	local function finish(w, result, how)
		if w.done then return; end
		release(w);
		outcome(how);
		local ok, err = pcall(w.respond, result);
		if not ok then
			module:log("error", "answering a waiter of %s failed: %s", w.room, tostring(err));
		end
	end

	-- Answers go out at most BATCH per event-loop turn: 10,000 waiters of one room do not stall the
	-- server for everyone else while they are answered. A job is { list, i, result_for, how, done }.
	local BATCH = 1000;
	local backlog, draining = {}, false;
	local function drain(limit)
		local budget = limit or BATCH;
		while budget > 0 and backlog[1] do
			local job = backlog[1];
			local list, i = job.list, job.i;
			local last = math.min(#list, i + budget - 1);
			for k = i, last do
				local w = list[k];
				finish(w, job.result_for(w), job.how);
			end
			budget = budget - (last - i + 1);
			if last >= #list then
				table.remove(backlog, 1);
				if job.done then job.done(); end
			else
				job.i = last + 1;
			end
		end
		if backlog[1] then return 0; end
		draining = false;
	end
	local function deliver(list, result_for, how, done)
		if #list == 0 then
			if done then done(); end
			return;
		end
		backlog[#backlog + 1] = { list = list, i = 1, result_for = result_for, how = how, done = done };
		if draining then return; end
		draining = true;
		if drain() == 0 then
			module:add_timer(0, function() return drain(); end);
		end
	end

	local function on_unbind(event)
		local set = by_session[event.session];
		if not set then return; end
		by_session[event.session] = nil;
		for w in pairs(set) do
			if not w.done then
				w.done = true;
				if registry:cancel(w.id) then
					ext.counts.cancelled = ext.counts.cancelled + 1;
					outcome("cancelled");
				end
			end
		end
	end

	-- Ties the waiter's lifetime to its client: a c2s session that closes, or an HTTP
	-- response whose connection goes away, cancels it in the registry.
	local function bind_client(w, requester)
		local origin = requester.origin;
		if origin and origin.type == "c2s" and origin.host and prosody.hosts[origin.host] then
			if not unbind_hooked[origin.host] then
				unbind_hooked[origin.host] = true;
				module:context(origin.host):hook("resource-unbind", on_unbind);
			end
			w.session = origin;
			local set = by_session[origin];
			if not set then set = {}; by_session[origin] = set; end
			set[w] = true;
		end
		local response = requester.response;
		if response then
			local previous = response.on_destroy;
			response.on_destroy = function(...)
				if not w.done then
					w.done = true;
					if registry:cancel(w.id) then
						ext.counts.cancelled = ext.counts.cancelled + 1;
						outcome("cancelled");
					end
				end
				if previous then return previous(...); end
			end;
		end
	end

	-- Rooms whose waiters all timed out stay pending with nobody waiting (the focus ignored the
	-- notification and created nothing). They are forgotten at most once per ready_wait, so a
	-- silent focus cannot make them pile up; forgetting one is harmless: its last notification is
	-- at least ready_wait old, so the next request may notify again anyway.
	local sweep_candidates, last_sweep = {}, now();
	local function sweep()
		local idle = {};
		for room_jid, state, waiters in registry:each() do
			if sweep_candidates[room_jid] and state == "pending" and waiters == 0 then
				idle[#idle + 1] = room_jid;
			end
		end
		sweep_candidates = {};
		for _, room_jid in ipairs(idle) do
			first_properties[room_jid] = nil;
			registry:forget(room_jid);
		end
		if #idle > 0 then
			module:log("debug", "forgot %d pending room(s) nobody waits for", #idle);
		end
	end

	-- Deadlines: one repeating timer while anyone waits.
	local ensure_ticker;
	local function on_tick()
		if stopped then ticking = false; return; end
		local t = now();
		local expired = registry:expire(t);
		for _, w in ipairs(expired) do
			sweep_candidates[w.room] = true;
		end
		ext.counts.timeouts = ext.counts.timeouts + #expired;
		deliver(expired, function(w) return answer(w.room, false); end, "timeout");
		if next(sweep_candidates) ~= nil and t - last_sweep >= notify_interval then
			last_sweep = t;
			sweep();
		end
		if registry:stats().waiters > 0 or next(sweep_candidates) ~= nil then
			return tick;
		end
		ticking = false;
	end
	function ensure_ticker()
		if ticking or stopped then return; end
		ticking = true;
		module:add_timer(tick, on_tick);
	end

	-- Readiness from MUC state -----------------------------------------------------------------
	local function focus_in(room)
		for _, occupant in room:each_occupant() do
			if occupant.bare_jid == focus_bare then return true; end
		end
		return false;
	end

	local function keep_properties(room)
		local props = first_properties[room.jid];
		if props then
			first_properties[room.jid] = nil;
			if room._data and room._data.conference_properties == nil then
				room._data.conference_properties = props;
			end
		end
	end

	local function become_ready(room_jid)
		local waiters, cond, text = registry:set_ready(room_jid);
		if not waiters then
			module:log("warn", "room %s has its focus but is not tracked: %s (%s)", room_jid, tostring(cond), tostring(text));
			return;
		end
		local first;
		for _, w in ipairs(waiters) do
			if not w.done and (not first or w.since < first) then first = w.since; end
		end
		if first then
			m_time_to_ready(now() - first);
			ext.counts.ready_after_wait = ext.counts.ready_after_wait + 1;
		end
		local t0 = now();
		local result = answer(room_jid, true);
		deliver(waiters, function() return result; end, "ready", function()
			module:log("info", "room %s is ready: focus %s joined; %d waiter(s) answered in %.1f ms", room_jid, focus_bare,
				#waiters, (now() - t0) * 1000);
		end);
	end

	local function drop_room(room_jid, result_for, how)
		first_properties[room_jid] = nil;
		deliver(registry:forget(room_jid), result_for, how);
	end

	local function on_occupant_joined(event)
		local occupant = event.occupant;
		if occupant and occupant.bare_jid == focus_bare then
			keep_properties(event.room);
			become_ready(event.room.jid);
		end
	end

	local function on_occupant_left(event)
		local occupant = event.occupant;
		if not (occupant and occupant.bare_jid == focus_bare) then return; end
		local room = event.room;
		if room.destroying or focus_in(room) then return; end
		if registry:state(room.jid) == "ready" then
			registry:set_pending(room.jid);
			module:log("info", "room %s is no longer ready: focus %s left", room.jid, focus_bare);
		end
	end

	local function on_room_destroyed(event)
		local room_jid = event.room.jid;
		if registry:state(room_jid) ~= "absent" then
			drop_room(room_jid, function(w) return answer(w.room, false); end, "room_destroyed");
		end
	end

	local function rebuild(host)
		local muc = muc_api(host);
		if not muc then return; end
		local n = 0;
		for room in muc.live_rooms() do
			if focus_in(room) and registry:state(room.jid) ~= "ready" then
				become_ready(room.jid);
				n = n + 1;
			end
		end
		module:log("debug", "%d live room(s) of %s have the focus", n, host);
	end

	local function attach(host)
		if attached[host] or not prosody.hosts[host] then return; end
		attached[host] = true;
		local ctx = module:context(host);
		ctx:hook("muc-occupant-joined", on_occupant_joined);
		ctx:hook("muc-occupant-left", on_occupant_left);
		ctx:hook("muc-room-destroyed", on_room_destroyed, 100);
		ctx:hook("muc-room-created", function(event) keep_properties(event.room); end);
		ctx:hook("module-loaded", function(event)
			if event.module == "muc" then rebuild(host); end
		end);
		rebuild(host);
	end

	-- Focus presence (as client_proxy) -----------------------------------------------------------
	local function focus_lost()
		module:log("warn", "focus %s has no online resource: requests for rooms that are not ready get ready=false", focus_bare);
		-- Nobody will make pending rooms ready now: answer their waiters at once.
		local pending = {};
		for room_jid, state in registry:each() do
			if state == "pending" then pending[#pending + 1] = room_jid; end
		end
		for _, room_jid in ipairs(pending) do
			drop_room(room_jid, function(w) return answer(w.room, false); end, "focus_lost");
		end
	end

	local function remove_resource(resource)
		for i, r in ipairs(resources) do
			if r == resource then
				table.remove(resources, i);
				module:log("info", "focus resource %s/%s went offline (%d left)", focus_bare, resource, #resources);
				if #resources == 0 then focus_lost(); end
				return;
			end
		end
	end

	local function on_presence(event)
		local stanza = event.stanza;
		local from = stanza.attr.from;
		if not from or jid.bare(from) ~= focus_bare then return; end -- not ours
		local ptype = stanza.attr.type;
		local resource = jid.resource(from);
		if ptype == nil then
			if resource then
				for _, r in ipairs(resources) do
					if r == resource then return true; end
				end
				table.insert(resources, resource);
				module:log("info", "focus resource %s online (%d online)", from, #resources);
			end
		elseif ptype == "unavailable" then
			if resource then
				remove_resource(resource);
			elseif #resources > 0 then
				-- from the bare JID: the focus's server says none of its resources is available
				for i = #resources, 1, -1 do resources[i] = nil; end
				focus_lost();
			end
		elseif ptype == "error" then
			if #resources > 0 then
				for i = #resources, 1, -1 do resources[i] = nil; end
				focus_lost();
			end
		elseif ptype == "subscribe" then
			module:send(st.presence({ type = "subscribed", from = module.host, to = jid.bare(from) }));
		elseif ptype == "probe" then
			module:send(st.presence({ from = module.host, to = from }));
		end
		return true;
	end

	local function ask_focus_presence()
		-- client_proxy does the same at load: harmless when already subscribed (the focus's server
		-- answers `subscribed` and the available resources); the probe answers the current ones.
		module:send(st.presence({ type = "subscribe", from = module.host, to = focus_bare }));
		module:send(st.presence({ type = "probe", from = module.host, to = focus_bare }));
	end

	-- Notification (single flight) -------------------------------------------------------------
	local function conference_element(room_jid, request)
		-- a tenant room goes as the client sent it (service.lib: request.client_room), as client_proxy does
		local el = st.stanza("conference", { xmlns = NS, room = request.client_room or room_jid,
			["machine-uid"] = request.machine_uid, ["session-id"] = request.session_id, token = request.token });
		local props = request.properties;
		if props then
			for i = 1, #props - 1, 2 do
				el:tag("property", { name = props[i], value = props[i + 1] }):up();
			end
		end
		return el;
	end

	local function on_focus_error(room_jid, err)
		if stopped then return; end
		local from_focus = type(err) == "table" and err.context and err.context.stanza;
		local condition = type(err) == "table" and err.condition or tostring(err);
		if not from_focus then
			module:log("debug", "notification for %s: %s", room_jid, tostring(condition));
			return;
		end
		if registry:state(room_jid) ~= "pending" then return; end
		ext.counts.focus_errors = ext.counts.focus_errors + 1;
		if unreachable[condition] then
			module:log("warn", "focus unreachable for %s (%s): waiters get ready=false", room_jid, condition);
			drop_room(room_jid, function(w) return answer(w.room, false); end, "focus_unreachable");
			return;
		end
		local text = err.text or ("the focus refused the conference (" .. condition .. ")");
		if not relayable(conditions, condition) then
			condition, text = "internal-server-error", "the focus answered: " .. text;
		end
		-- Application children of <error> (<reservation-error/>, <session-invalid/>) reach every
		-- waiter intact (docs/protocol.md §5); the doors render them (xmpp.lib: copied; http.lib: session-invalid).
		local result = { condition = condition, text = text };
		local error_el = from_focus:get_child("error");
		for _, child in ipairs(error_el and error_el.tags or {}) do
			if child.attr.xmlns ~= "urn:ietf:params:xml:ns:xmpp-stanzas" then
				if child.name == "session-invalid" then result.session_invalid = true; end
				result.extra = result.extra or {};
				table.insert(result.extra, st.clone(child));
			end
		end
		module:log("info", "focus answered %s for %s: relayed to every waiter", condition, room_jid);
		drop_room(room_jid, function() return result; end, "focus_error");
	end

	local function notify(room_jid, request, requester)
		local n = #resources;
		if n == 0 then return false; end
		local resource = resources[math.random(n)];
		local requester_jid = requester.jid or (requester.origin and requester.origin.full_jid);
		local from = requester_jid and (module.host .. "/" .. requester_jid) or module.host;
		local iq = st.iq({ type = "set", id = "cr-" .. id.short(), from = from, to = focus_bare .. "/" .. resource })
			:add_child(conference_element(room_jid, request));
		ext.counts.notifications = ext.counts.notifications + 1;
		if first_properties[room_jid] == nil then
			local map, props = {}, request.properties or {};
			for i = 1, #props - 1, 2 do map[props[i]] = props[i + 1]; end
			first_properties[room_jid] = map;
		end
		m_notify();
		module:log("debug", "notifying %s/%s for %s (from %s)", focus_bare, resource, room_jid, from);
		module:send_iq(iq, nil, math.max(ready_wait, 5) + 5):next(function()
			module:log("debug", "focus acknowledged the notification for %s", room_jid);
		end, function(err)
			local ok, fault = pcall(on_focus_error, room_jid, err);
			if not ok then module:log("error", "handling the focus's answer for %s: %s", room_jid, tostring(fault)); end
		end);
		return true;
	end

	-- The external decision for one checked room (service.lib calls it).
	function ext.request(room_jid, _, request, requester, respond)
		local state = registry:state(room_jid);
		if state == "ready" then
			outcome("ready_now");
			return respond(answer(room_jid, true));
		end
		-- The module's decision comes first (docs/protocol.md §5): a guest never makes the focus create a room.
		if requester.may_create == false and state ~= "pending" then
			outcome("not_authorized");
			return respond({ condition = "not-authorized", text = "not allowed to create the conference" });
		end
		if #resources == 0 or stopped then
			ext.counts.no_focus = ext.counts.no_focus + 1;
			outcome("no_focus");
			local t = now();
			if t - last_no_focus_warning >= 60 then
				last_no_focus_warning = t;
				module:log("warn", "no resource of focus %s is online: requests for rooms that are not ready get ready=false "
					.. "(%d so far; is the focus running, and is %s subscribed to its presence?)", focus_bare,
					ext.counts.no_focus, module.host);
			else
				module:log("debug", "no focus resource online: %s answered ready=false", room_jid);
			end
			return respond(answer(room_jid, false));
		end
		local limited = state == "absent" and requester.creation_limited and requester.creation_limited(requester);
		if limited then outcome("rate_limited"); return respond(limited); end
		if state == "absent" then
			local ok, cond = registry:set_pending(room_jid);
			if not ok then
				ext.counts.bounded = ext.counts.bounded + 1;
				outcome("bounded");
				module:log("warn", "room %s not tracked: %s", room_jid, tostring(cond));
				return respond(answer(room_jid, false));
			end
		end
		local t = now();
		local w = { respond = respond, since = t, room = room_jid };
		local wid = registry:wait(room_jid, w, t + ready_wait);
		if registry:notify_due(room_jid, t, notify_interval) and requester.may_create ~= false then
			notify(room_jid, request, requester);
		end
		if not wid then
			ext.counts.bounded = ext.counts.bounded + 1;
			outcome("bounded");
			-- nobody may be left waiting on it: forgotten like a room whose waiters timed out
			sweep_candidates[room_jid] = true;
			ensure_ticker();
			return respond(answer(room_jid, false));
		end
		w.id = wid;
		bind_client(w, requester);
		ensure_ticker();
	end

	-- Visitors (visitors.lib): one request forwarded as it is (client_proxy form) and the focus's
	-- answer relayed to that requester only: vnode, focusjid, ready, session-id, identity,
	-- visitors-supported, live. No focus online, or no answer: ready=false (the client retries).
	function ext.forward(room_jid, request, requester, respond)
		local n = #resources;
		if n == 0 or stopped then
			outcome("no_focus");
			return respond(answer(room_jid, false));
		end
		local requester_jid = requester.jid or (requester.origin and requester.origin.full_jid);
		local from = requester_jid and (module.host .. "/" .. requester_jid) or module.host;
		local iq = st.iq({ type = "set", id = "cr-" .. id.short(), from = from, to = focus_bare .. "/" .. resources[math.random(n)] })
			:add_child(conference_element(room_jid, request));
		local function relay(reply)
			local conf = reply and reply.stanza and reply.stanza:get_child("conference", NS);
			if not conf then
				outcome("forward_empty");
				return respond(answer(room_jid, false));
			end
			local result = answer(room_jid, conf.attr.ready == "true");
			local fj = conf.attr.focusjid and jid.prep(conf.attr.focusjid);
			if fj and not jid.resource(fj) then result.focus_jid = fj; end
			local vnode = conf.attr.vnode;
			if vnode and vnode ~= "" then result.vnode = vnode; end
			local sid = conf.attr["session-id"];
			if sid and sid ~= "" then result.session_id = sid; end
			local identity = conf.attr.identity;
			if identity and identity ~= "" then result.identity = identity; end
			for prop in conf:childtags("property") do
				local name, value = prop.attr.name, prop.attr.value;
				if name == "visitors-supported" then
					result.visitors_supported = value == "true";
				elseif name == "live" and value == "false" then
					result.live_queue = true;
				end
			end
			outcome("forwarded");
			return respond(result);
		end
		local function failed(err)
			local stanza = type(err) == "table" and err.context and err.context.stanza;
			local condition = type(err) == "table" and err.condition or tostring(err);
			if not stanza or unreachable[condition] then
				outcome("forward_unanswered");
				return respond(answer(room_jid, false));
			end
			local result = { condition = condition, text = err.text or ("the focus refused the conference (" .. condition .. ")") };
			if not relayable(conditions, condition) then
				result.condition, result.text = "internal-server-error", "the focus answered: " .. result.text;
			end
			local error_el = stanza:get_child("error");
			for _, child in ipairs(error_el and error_el.tags or {}) do
				if child.attr.xmlns ~= "urn:ietf:params:xml:ns:xmpp-stanzas" then
					if child.name == "session-invalid" then result.session_invalid = true; end
					result.extra = result.extra or {};
					table.insert(result.extra, st.clone(child));
				end
			end
			outcome("forward_error");
			return respond(result);
		end
		module:send_iq(iq, nil, math.max(ready_wait, 5) + 5):next(function(reply)
			local ok, fault = pcall(relay, reply);
			if not ok then
				module:log("error", "relaying the focus's answer for %s: %s", room_jid, tostring(fault));
				respond({ condition = "internal-server-error", text = "could not relay the focus's answer" });
			end
		end, function(err)
			local ok, fault = pcall(failed, err);
			if not ok then
				module:log("error", "relaying the focus's error for %s: %s", room_jid, tostring(fault));
				respond({ condition = "internal-server-error", text = "could not relay the focus's answer" });
			end
		end);
	end

	-- For operators: room, state, waiters, stored properties.
	function ext.rooms()
		local list = {};
		for room_jid, state, waiters in registry:each() do
			local host = room_jid:match("@(.*)$");
			local muc = host and muc_api(host);
			local room = muc and muc.get_room_from_jid(room_jid);
			local props = room and room._data.conference_properties or first_properties[room_jid];
			table.insert(list, { room = room_jid, state = state, waiters = waiters, unjoined = false, properties = props });
		end
		table.sort(list, function(a, b) return a.room < b.room; end);
		return list;
	end

	function ext.start()
		module:hook("presence/host", on_presence, 10);
		module:hook("presence/full", on_presence, 10);
		for host in pairs(cfg.muc_hosts) do attach(host); end
		module:hook_global("host-activated", function(host)
			if cfg.muc_hosts[host] then attach(host); end
			if host == focus_host then ask_focus_presence(); end
		end);
		-- A focus on a host of this server is asked once that host is active (now, or when it
		-- activates); a remote focus is asked now.
		local local_focus = configmanager.getconfig()[focus_host] ~= nil;
		if prosody.hosts[focus_host] or not local_focus then
			ask_focus_presence();
		end
	end

	-- Reload (module.save/restore): the focus's online resources carry over, so requests right
	-- after a reload are not told "no focus"; the probe sent at start corrects them anyway.
	function ext.save()
		return { focus_resources = ext.focus_resources() };
	end

	function ext.restore(saved)
		local list = type(saved) == "table" and saved.focus_resources;
		if type(list) ~= "table" then return; end
		for _, resource in ipairs(list) do
			if type(resource) == "string" then
				local known = false;
				for _, r in ipairs(resources) do
					if r == resource then known = true; break; end
				end
				if not known then table.insert(resources, resource); end
			end
		end
	end

	-- Unload: every waiter is answered ready=false (clients retry against the next instance).
	function ext.stop()
		stopped = true;
		drain(math.huge); -- timers of an unloaded module do not run: answer the backlog now
		local rooms = {};
		for room_jid, _, waiters in registry:each() do
			if waiters > 0 then rooms[#rooms + 1] = room_jid; end
		end
		for _, room_jid in ipairs(rooms) do
			drop_room(room_jid, function(w) return answer(w.room, false); end, "unload");
		end
		drain(math.huge);
	end

	return ext;
end

return { new = new };
