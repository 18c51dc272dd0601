-- service.lib.lua: the door-independent request flow (docs/protocol.md §2, §3).
--
--   service.handle(request, requester, respond)
--
-- `request` is what codec:parse_stanza / codec:parse_json returned; `requester` describes who asks
-- ({ door = "xmpp"|"http", jid = full JID or nil }); `respond(result)` is called exactly once, now
-- or later, with either an answer table (native README, codec:render_*) or an error
-- { condition = "<xmpp condition>", text = "<for the client>" }. Nothing here may raise past
-- `handle`: a Lua error becomes internal-server-error, so every request gets one answer.

local jid = require "util.jid";

-- registry: the native registry (only :state is used here). ratelimit: ratelimit.lib (optional).
-- auth: auth.lib (check before the focus, session fields added to the answer).
-- visitors: visitors.lib (optional: live queue, redirects; it calls focus.request itself).
local function new(cfg, focus, metrics, registry, ratelimit, auth, visitors)
	local service = {};
	local limit_request = ratelimit and ratelimit.request;
	local limit_creation = ratelimit and ratelimit.creation;
	-- Jitsi tenants (docs/protocol.md §2.1, tenant.lib): nil unless a tenant base is configured.
	local tenants = cfg.tenant_base and module:require "tenant".new(cfg.tenant_base, cfg.muc_hosts) or nil;

	-- The doors ask this before parsing a request: nil, or an error result to answer (with
	-- retry_after, seconds). The focus asks requester.creation_limited(requester) right before it
	-- creates a room or announces a new one to the external focus.
	function service.limit_request(requester)
		if not limit_request then return nil; end
		local ok, limited = pcall(limit_request, requester);
		if not ok then -- never a reason to leave a request unanswered: let it through
			module:log("error", "rate limit check failed: %s", tostring(limited));
			return nil;
		end
		return limited;
	end

	service.limits_requests = limit_request ~= nil; -- whether limit_request can refuse anything

	local function err(condition, text)
		return { condition = condition, text = text };
	end
	service.err = err;

	-- Normalizes and checks the room; returns room, muc_host[, client_room] or nil, error.
	-- client_room: the client's own (normalized) form of a tenant room; room is then the mapped one.
	function service.check_room(raw)
		if type(raw) ~= "string" or raw == "" then
			return nil, err("bad-request", "missing 'room'");
		end
		local node, host, resource = jid.prepped_split(raw);
		if not host then
			return nil, err("jid-malformed", "'room' is not a valid JID");
		end
		if not node or resource then
			return nil, err("jid-malformed", "'room' must be a bare JID of the form name@muc-host");
		end
		if not cfg.muc_hosts[host] then
			local mapped, muc_host = nil, nil;
			if tenants then mapped, muc_host = tenants.map(node, host); end
			if mapped then return mapped .. "@" .. muc_host, muc_host, node .. "@" .. host; end
			if mapped == false then return nil, err("jid-malformed", muc_host); end
			return nil, err("item-not-found", ("'room' is not on a conference service of this server (%s)"):format(cfg.muc));
		end
		return node .. "@" .. host, host;
	end

	-- A copy: the external focus hands one answer table to many waiters.
	local function tenants_answer(result, client_room)
		local copy = {};
		for k, v in pairs(result) do copy[k] = v; end
		copy.room = client_room;
		return copy;
	end

	local function flow(request, requester, respond)
		-- Fast path: the registry's keys are normalized bare JIDs of rooms on served MUC hosts, so
		-- a room string that is a ready key as it stands needs no stringprep (jid.prepped_split
		-- is ~15K instructions, a fifth of the HTTP door's own cost). Both focus implementations
		-- answer a ready room without looking at the host.
		local raw = request.room;
		local room, host, client_room = raw, nil, nil;
		if not (type(raw) == "string" and registry:state(raw) == "ready") then
			room, host, client_room = service.check_room(raw);
			if not room then
				return respond(host);
			end
		end
		if client_room then
			-- a tenant room: served as `room`, answered in the client's form, forwarded to an
			-- external focus in the client's form (as client_proxy forwards it)
			request.client_room = client_room;
			local plain = respond;
			respond = function(result)
				if result.room then result = tenants_answer(result, client_room); end
				return plain(result);
			end;
		end
		-- Token and session checks apply to every request, before the focus (docs/protocol.md §5).
		if auth and auth.mode ~= "none" then
			local refusal = auth.check(request, requester, room);
			if refusal then return respond(refusal); end
			if requester.session then
				local plain = respond;
				respond = function(result) return plain(auth.decorate(result, requester)); end
			end
		end
		if visitors then -- docs/protocol.md §6
			return visitors.request(room, host, request, requester, respond, focus.request);
		end
		return focus.request(room, host, request, requester, respond);
	end

	function service.handle(request, requester, respond)
		local answered = false;
		local door = requester.door;
		requester.creation_limited = limit_creation;
		local function once(result)
			if answered then
				module:log("warn", "second answer for one %s request suppressed", door);
				return;
			end
			answered = true;
			if result.condition then
				metrics.request(door, "error", result.condition);
				module:log("debug", "%s request from %s: %s (%s)", door, requester.jid or requester.ip or "?",
					result.condition, result.text or "");
			else
				metrics.request(door, result.ready and "ready" or "not_ready");
				module:log("debug", "%s request from %s for %s: ready=%s", door, requester.jid or requester.ip or "?",
					result.room, tostring(result.ready));
			end
			return respond(result);
		end
		local ok, fault = pcall(flow, request, requester, once);
		if not ok then
			module:log("error", "internal fault handling a %s request: %s", door, tostring(fault));
			if not answered then
				once(err("internal-server-error", "internal error while handling the request"));
			end
		end
	end

	-- The doors' fast path (issue 15). When nothing in flow() can depend on more than the room's
	-- readiness (no authentication mode, no visitor nodes), a request whose room string is, as it
	-- stands, a ready key gets exactly the focus's answer(room, true): flow() takes no other branch
	-- for it. The doors then parse, look up and render it in one native call
	-- (codec:ready_json(body, registry, fast.focus_jid)) and report it with fast.answered; anything
	-- else goes through service.handle. nil when the fast path does not apply.
	local ready = focus.ready_answer;
	if ready and not visitors and not (auth and auth.mode ~= "none") then
		local count = ready.count;
		service.fast = {
			focus_jid = ready.focus_jid,
			registry = registry,
			answered = function(door, who, room) -- what handle() and focus.request() record
				if count then count(); end
				metrics.request(door, "ready");
				module:log("debug", "%s request from %s for %s: ready=true", door, who or "?", room);
			end,
		};
	end

	-- A door that failed before the flow (parse error, wrong method…) counts its error here.
	function service.rejected(door, condition)
		metrics.request(door, "error", condition);
	end

	return service;
end

return { new = new };
