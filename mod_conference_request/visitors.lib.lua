-- visitors.lib.lua: visitor nodes (docs/protocol.md §6; issue 11 items 2-5): the live queue, the redirect
-- rules and, with the built-in focus, the node choice of the C core (native.vnodes).
--
--   local visitors = module:require "visitors".new(vcfg, env)
--   visitors.request(room_jid, host, request, requester, respond, pass)
--       called by service.lib instead of pass(room_jid, host, request, requester, respond) (the
--       focus's own request function); answers the live queue itself, lets the focus answer and
--       turns that answer into a redirect (built-in), or forwards the request to the external
--       focus and relays its answer (external mode, env.forward).
--
-- env: { native = the binding (built-in mode: native.vnodes makes the node set), set = a node set
--        (specs: instead of native), forward = fn(room_jid, request,
--        requester, respond) (external mode), main_muc = cfg.muc, focus = external focus bare JID or
--        nil, focus_jid = the focusjid answered, max_rooms = rooms remembered in external mode,
--        clock = monotonic seconds (specs) }.
--
-- The rules (docs/protocol.md §6) only apply to requests whose properties carry
-- `visitors-version` (jibri, jigasi and old clients never send it) from a JID outside
-- `ignore_domains`. Room facts come from the MUC room object: Jitsi's room metadata
-- (`room.jitsiMetadata`, or `room._data.jitsiMetadata` where a module persists it: `visitors.live`,
-- `participants`, `moderators`, `participantsSoftLimit`, `visitorsEnabled`, `lobbyEnabled`), the
-- lobby of mod_muc_lobby_rooms (`room._data.lobbyroom`), MUC affiliations and occupants.

local jid = require "util.jid";
local st_time = require "util.time";
local cache = require "util.cache";

-- visitors-version present (its value does not matter), visitor=true anywhere in the list (jicofo
-- scans every entry for it).
local function flags(props)
	local version, asked = false, false;
	if props then
		for i = 1, #props - 1, 2 do
			local name = props[i];
			if name == "visitors-version" then
				version = true;
			elseif name == "visitor" and props[i + 1] == "true" then
				asked = true;
			end
		end
	end
	return version, asked;
end

local function metadata(room)
	if not room then return nil; end
	local meta = room.jitsiMetadata;
	if meta == nil and type(room._data) == "table" then meta = room._data.jitsiMetadata; end
	if type(meta) ~= "table" then return nil; end
	return meta;
end

local function listed(list, value)
	if type(list) ~= "table" or value == nil then return false; end
	for _, v in ipairs(list) do
		if v == value then return true; end
	end
	return false;
end

local preferred_affiliation = { member = true, admin = true, owner = true };

local function new(vcfg, env)
	local v = {};
	local set, forward = env.set, env.forward;
	local external = env.focus ~= nil;
	if not external and not set then -- the built-in focus chooses nodes in the C core
		local native = env.native;
		if not (native and native.vnodes) then
			error("invalid option conference_request_visitors: needs a native build with vnodes (native.vnodes)", 0);
		end
		local core_nodes = {}; -- the C core's fields only (jid, muc, reports are the report protocol's)
		for i, n in ipairs(vcfg.nodes) do
			core_nodes[i] = { id = n.id, focus_jid = n.focus_jid, weight = n.weight, capacity = n.capacity };
		end
		local ok, made = pcall(native.vnodes, { nodes = core_nodes, pending_window = vcfg.pending_window,
			max_rooms = env.max_rooms });
		if not ok then error("invalid option conference_request_visitors: " .. tostring(made), 0); end
		set = made;
	end
	local now = env.clock or st_time.monotonic;
	local muc_of = {}; -- node id -> its MUC host (answered as vnode-muc)
	for _, n in ipairs(vcfg.nodes or {}) do muc_of[n.id] = n.muc; end
	-- v.health: vnode_main.lib (reports from the nodes) when it runs: node health and report ages
	local ignore = {};
	for _, d in ipairs(vcfg.ignore_domains or {}) do ignore[d] = true; end
	-- external mode: rooms the focus sent visitors of to a node (bounded, forgotten with the room)
	local remembered = external and cache.new(env.max_rooms or 100000) or nil;

	v.counts = { redirects = 0, queued = 0, forwarded = 0, reuse = 0, hash = 0, least_loaded = 0, none = 0 };
	local m_queued = module:measure("visitors_queued", "rate");
	local m_forwarded = module:measure("visitors_forwarded", "rate");
	local m_choice, m_redirect = {}, {};
	for _, how in ipairs({ "reuse", "hash", "least_loaded", "none" }) do
		m_choice[how] = module:measure("visitors_choice_" .. how, "rate");
	end
	local n_redirect = 0; -- metric names made (external mode: node ids come from the focus's answers)
	local function redirected(node)
		local f = m_redirect[node];
		if not f then
			local name = n_redirect < 64 and node:gsub("[^%w_]", "_") or "other";
			f = m_redirect[name] or module:measure("visitors_redirect_" .. name, "rate");
			m_redirect[node], m_redirect[name] = f, f;
			n_redirect = n_redirect + 1;
		end
		f();
		v.counts.redirects = v.counts.redirects + 1;
	end

	local function muc_api(host)
		local h = prosody.hosts[host];
		return h and h.modules.muc;
	end

	local function get_room(host, room_jid)
		local muc = host and muc_api(host);
		if not muc then return nil; end
		local room = muc.get_room_from_jid(room_jid);
		return room or nil;
	end
	v.get_room = get_room;

	-- Visitors are enabled for this room (the answer's visitors-supported): on in the config, not a
	-- breakout room (an extra MUC), not turned off by the room's metadata, and flagged on when
	-- require_room_flag says so.
	function v.supported(host, meta)
		if not vcfg.enabled or host ~= env.main_muc then return false; end
		local flag = meta and meta.visitorsEnabled;
		if flag == false then return false; end
		if vcfg.require_room_flag and flag ~= true then return false; end
		return true;
	end

	-- Lobby on: visitors and lobby do not go together (jicofo).
	function v.lobby(room, meta)
		if meta and meta.lobbyEnabled == true then return true; end
		return room ~= nil and type(room._data) == "table" and room._data.lobbyroom ~= nil
			and room._data.lobbyroom ~= false;
	end

	-- preferred: stays in the main room unless it asked (MUC affiliation member/admin/owner, or
	-- its JWT user id / group listed in the metadata's moderators or participants);
	-- allowed: may be in the main room at all (no participants list = open room).
	function v.standing(room, meta, requester)
		local preferred = false;
		local who = requester.jid and jid.bare(requester.jid);
		if room and who and preferred_affiliation[room:get_affiliation(who)] then
			preferred = true;
		end
		local claims = requester.claims;
		if not preferred and meta and claims then
			local user, group = claims.user_id, claims.group;
			preferred = listed(meta.moderators, user) or listed(meta.moderators, group)
				or listed(meta.participants, user) or listed(meta.participants, group);
		end
		local allowed = preferred or not (meta and type(meta.participants) == "table");
		return preferred, allowed;
	end

	function v.live(meta)
		local vis = meta and meta.visitors;
		return type(vis) == "table" and vis.live == true;
	end

	function v.limit(meta)
		local soft = meta and tonumber(meta.participantsSoftLimit);
		if soft and soft > 0 then return soft; end
		return vcfg.max_participants;
	end

	-- Occupants of the main room that count (not from ignore_domains, not the external focus),
	-- counted up to `limit` at most.
	function v.count(room, limit)
		if not room then return 0; end
		local n = 0;
		for _, occupant in room:each_occupant() do
			local bare = occupant.bare_jid;
			if bare ~= env.focus and not ignore[jid.host(bare) or ""] then
				n = n + 1;
				if n >= limit then break; end
			end
		end
		return n;
	end

	function v.uses(room_jid)
		if remembered then return remembered:get(room_jid) ~= nil; end
		return set:uses(room_jid, now());
	end

	local function with_supported(result, supported)
		if result.condition or result.visitors_supported == supported then return result; end
		local copy = {};
		for k, val in pairs(result) do copy[k] = val; end
		copy.visitors_supported = supported;
		return copy;
	end

	local function supported_respond(respond, supported)
		if not supported then return respond; end
		return function(result) return respond(with_supported(result, true)); end
	end

	-- The decision for one request: what the module knows before the focus answers.
	-- Returns kind, supported where kind is "pass" (no visitor handling), "queue" (live queue),
	-- "redirect" (the built-in focus chooses a node once the main room is ready; external mode:
	-- forward to the focus).
	function v.decide(room_jid, host, request, requester)
		local version, asked = flags(request.properties);
		local room = get_room(host, room_jid);
		local meta = metadata(room);
		local supported = v.supported(host, meta);
		if not version or not vcfg.enabled then return "pass", supported; end
		local from = requester.jid and jid.host(requester.jid);
		if from and ignore[from] then return "pass", supported; end
		local preferred, allowed = v.standing(room, meta, requester);
		if vcfg.enable_live_room and not v.live(meta) and (asked or not allowed) then
			return "queue", supported;
		end
		if not supported or v.lobby(room, meta) then return "pass", supported; end
		-- external mode: a guest's request never makes the focus create a room (docs/protocol.md §5)
		if external and not room and requester.may_create == false then return "pass", supported; end
		if asked then return "redirect", supported, "asked"; end
		if external then
			-- the focus owns the lists: what the module can know is "no visitor node, below the limit"
			if v.uses(room_jid) then return "redirect", supported, "uses"; end
			local limit = v.limit(meta);
			if v.count(room, limit) >= limit then return "redirect", supported, "limit"; end
			return "pass", supported;
		end
		if preferred then return "pass", supported; end
		if v.uses(room_jid) then return "redirect", supported, "uses"; end
		local limit = v.limit(meta);
		if v.count(room, limit) >= limit then return "redirect", supported, "limit"; end
		return "pass", supported;
	end

	local function remember(room_jid, node)
		if remembered then remembered:set(room_jid, node); end
	end

	function v.request(room_jid, host, request, requester, respond, pass)
		host = host or room_jid:match("@(.+)$");
		local kind, supported, why = v.decide(room_jid, host, request, requester);
		if kind == "pass" then
			return pass(room_jid, host, request, requester, supported_respond(respond, supported));
		end
		if kind == "queue" then
			v.counts.queued = v.counts.queued + 1;
			m_queued();
			module:log("debug", "%s request for %s queued: the room is not live", requester.door, room_jid);
			return respond({ room = room_jid, ready = false, focus_jid = env.focus or env.focus_jid, live_queue = true,
				visitors_supported = supported });
		end
		if external then
			v.counts.forwarded = v.counts.forwarded + 1;
			m_forwarded();
			module:log("debug", "%s request for %s forwarded to the focus (%s)", requester.door, room_jid, why);
			return forward(room_jid, request, requester, function(result)
				if not result.condition and result.vnode then
					remember(room_jid, result.vnode);
					redirected(result.vnode);
				end
				return respond(result);
			end);
		end
		return pass(room_jid, host, request, requester, function(result)
			if result.condition or not result.ready then return respond(with_supported(result, supported)); end
			if v.health then v.health.tick(); end -- report ages as of now (the timer may lag a little)
			local node, focus_jid, how = set:choose(room_jid, now());
			how = node and how or "none";
			local key = how:gsub("%-", "_");
			if v.counts[key] then
				v.counts[key] = v.counts[key] + 1;
				m_choice[key]();
			end
			if not node then
				module:log("warn", "no healthy visitor node for %s: not redirected", room_jid);
				return respond(with_supported(result, supported));
			end
			local copy = {};
			for k, val in pairs(result) do copy[k] = val; end
			copy.vnode, copy.focus_jid, copy.visitors_supported = node, focus_jid, true;
			copy.vnode_muc = muc_of[node];
			redirected(node);
			module:log("info", "%s request for %s redirected to visitor node %s (%s, %s)", requester.door, room_jid,
				node, why, how);
			return respond(copy);
		end);
	end

	function v.forget(room_jid)
		if remembered then
			remembered:set(room_jid, nil);
		elseif set then
			set:forget_room(room_jid);
		end
	end

	-- Operators (shell.lib, health route) -------------------------------------------------------
	-- The node set of the built-in focus (nil in external mode); module reloads may replace it.
	function v.node_set() return set; end

	function v.nodes()
		if not set then return {}; end
		if v.health then v.health.tick(); end
		local list = set:nodes(now());
		if v.health then v.health.annotate(list); end
		return list;
	end

	function v.room(room_jid)
		if remembered then
			local node = remembered:get(room_jid);
			return node and { [node] = { visitors = 0, pending = 0 } } or nil;
		end
		return set:room(room_jid, now());
	end

	function v.set_healthy(node, healthy)
		if not set then return nil, "item-not-found", "the external focus chooses visitor nodes"; end
		-- with reports, the operator's mark is one of the health inputs: down wins until up
		if v.health then return v.health.operator(node, healthy); end
		local ok, cond, text = set:set_healthy(node, healthy);
		if ok then module:log("info", "visitor node %s marked %s", node, healthy and "up" or "down"); end
		return ok, cond, text;
	end

	-- A node's reported visitors, in one room or in total (trials, until nodes report themselves).
	function v.set_load(node, visitors, room_jid)
		if not set then return nil, "item-not-found", "the external focus chooses visitor nodes"; end
		if room_jid then return set:report(node, room_jid, visitors, now()); end
		if not set.report_total then return nil, "feature-not-implemented", "this build has no report_total"; end
		return set:report_total(node, visitors, now());
	end

	function v.status()
		return { counts = v.counts, nodes = v.nodes(), mode = external and "external" or "built-in",
			rooms_remembered = remembered and remembered:count() or nil };
	end

	-- Module reload: the node set (loads, pending redirects, health) or the rooms remembered in
	-- external mode carry over when the mode and the node list are unchanged.
	local function nodes_key()
		local parts = { external and "external" or "built-in", tostring(vcfg.pending_window) };
		for _, n in ipairs(vcfg.nodes) do
			parts[#parts + 1] = ("%s|%s|%s|%s"):format(n.id, n.focus_jid, tostring(n.weight), tostring(n.capacity));
		end
		return table.concat(parts, "\n");
	end

	function v.save()
		return { key = nodes_key(), set = set, remembered = remembered };
	end

	function v.restore(saved)
		if type(saved) ~= "table" or saved.key ~= nodes_key() then return; end
		if external then
			if saved.remembered then remembered = saved.remembered; end
		elseif saved.set then
			set = saved.set;
		end
	end

	-- Rooms destroyed: their (room, node) state goes with them.
	local attached = {};
	local function attach(host)
		if attached[host] or not prosody.hosts[host] then return; end
		attached[host] = true;
		module:context(host):hook("muc-room-destroyed", function(event) v.forget(event.room.jid); end);
	end

	function v.start()
		attach(env.main_muc);
		module:hook_global("host-activated", function(host)
			if host == env.main_muc then attach(host); end
		end);
	end

	return v;
end

return { new = new, flags = flags, metadata = metadata };
