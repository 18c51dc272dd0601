-- http.lib.lua: the HTTP door (docs/protocol.md §2.4) on Prosody's HTTP server.
--
--   POST    /conference-request/v1          JSON request in, JSON answer out
--   OPTIONS /conference-request/v1          CORS preflight
--   GET     /conference-request/v1/health   {"status":"ok", …counters}
--   other methods on those paths            405 + Allow
--
-- CORS is done here so that the headers are exactly ours. Prosody's per-app CORS stays enabled
-- because disabling it (cors = { enabled = false }) breaks unloading in 0.12.3: mod_http then
-- unhooks a nil handler and the module reload fails ("multitable.lua:54: table index is nil").
-- It is given an empty origin list instead (cors.origins = {}): its handler, which runs before
-- ours (priority 1) on every request, then returns at once (mod_http's apply_cors_headers: no
-- origin is allowed) instead of building its four headers (two set-to-string conversions per
-- request) for ours to clear. Ours still clears them should an http_cors_override put them back.
-- Errors are JSON {"error":"<condition>","message":"…"} with the status of native.conditions.

local json = require "util.json";

local function new(cfg, native, codec, service, metrics, registry, focus, visitors, reporter)
	local conditions = native.conditions;
	local started = os.time();

	local function cors(request, response)
		local headers = response.headers;
		if headers.access_control_allow_origin then -- Prosody's per-app CORS applied (an override)
			headers.access_control_allow_methods, headers.access_control_allow_headers = nil, nil;
			headers.access_control_max_age, headers.access_control_allow_credentials = nil, nil;
			headers.access_control_allow_origin = nil;
		end
		if #cfg.http_cors == 0 then
			return;
		elseif cfg.http_cors_any then
			response.headers.access_control_allow_origin = "*";
		else
			local origin = request.headers.origin;
			if origin and cfg.http_cors_set[origin] then
				response.headers.access_control_allow_origin = origin;
				response.headers.vary = "Origin";
			end
		end
	end

	local function send_error(request, response, condition, text, status)
		local c = conditions[condition];
		response.status_code = status or (c and c.http) or 500;
		response.headers.content_type = "application/json";
		cors(request, response);
		return response:send(json.encode({ error = condition, message = text or condition }));
	end

	local function method_not_allowed(allow)
		return function(event)
			local request, response = event.request, event.response;
			response.headers.allow = allow;
			service.rejected("http", "not-allowed");
			send_error(request, response, "not-allowed",
				("method %s is not allowed here (allowed: %s)"):format(request.method, allow), 405);
			return true;
		end
	end

	local function is_json(content_type)
		if content_type == "application/json" then return true; end -- the usual spelling, no pattern
		if not content_type then return false; end
		local media = content_type:match("^%s*([^;%s]+)");
		return media ~= nil and media:lower() == "application/json";
	end

	local function bearer(request)
		local auth = request.headers.authorization;
		return auth and auth:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$") or nil;
	end

	-- Bodies in Prosody 0.12.3's net.http.server (issue #9):
	--  * Transfer-Encoding is ignored on the server side (the parser's `have_body` is only set for
	--    client parsers): a chunked request is handed over with an empty body and its chunks are
	--    then parsed as the next request, which fails and closes the connection. It cannot be
	--    served; it is refused with 411 Length Required (RFC 9110 §15.5.12) before that happens.
	--  * With streaming_uploads, a Content-Length over http_max_content_size reaches the handler
	--    with the headers only (request.body == false, request.partial == true); without a
	--    request.body_sink Prosody then closes the connection. Over max_body it is refused here
	--    with 413 before the body is read; otherwise a sink collects it (at most max_body bytes)
	--    and the handler is called again once it is complete (partial == nil, body still false).
	-- After such a refusal Prosody's parser closes the connection itself on the first bytes it
	-- cannot use, and a second close right now would drop the queued answer (net.server_epoll
	-- destroys a connection closed twice): the answer says `Connection: close`, and the
	-- connection is closed a second later, once the answer has been written, if it is still open
	-- (the rest of a chunked body may not end a header block Prosody's parser looks for).
	local function refuse_and_close(request, response, condition, text, status)
		service.rejected("http", condition);
		response.persistent = true;
		response.headers.connection = "close";
		send_error(request, response, condition, text, status);
		local conn = response.conn;
		module:add_timer(1, function() conn:close(); end);
		return true;
	end

	local function collector()
		local parts = {};
		return { write = function(_, data) parts[#parts + 1] = data; return true; end,
			body = function() return table.concat(parts); end };
	end

	-- Every route handler sees a whole body (a string) and answers once.
	local function whole_body(handler)
		return function(event)
			local request, response = event.request, event.response;
			local coding = request.headers.transfer_encoding;
			if coding and coding:lower() ~= "identity" then
				return refuse_and_close(request, response, "bad-request", ("Transfer-Encoding %s is not supported here: "
					.. "send the body with a Content-Length (at most %d bytes)"):format(coding, cfg.max_body), 411);
			end
			if request.body == false then
				if request.partial then
					local length = tonumber(request.headers.content_length);
					if not length or length > cfg.max_body then
						return refuse_and_close(request, response, "policy-violation",
							("request body over %d bytes"):format(cfg.max_body), 413);
					end
					request.body_sink = collector();
					return true;
				end
				local sink = request.body_sink;
				if type(sink) ~= "table" or not sink.body then return; end -- not ours: Prosody answers
				request.body = sink.body();
			end
			return handler(event);
		end
	end

	local function refuse_limited(request, response, limited)
		service.rejected("http", limited.condition);
		response.headers.retry_after = tostring(limited.retry_after);
		send_error(request, response, limited.condition, limited.text);
		return true;
	end

	-- The general path. requester: given when the fast path below has applied the rate limit.
	local function on_post(event, requester)
		local request, response = event.request, event.response;
		local body = request.body or "";
		if not requester then
			requester = { door = "http", ip = request.ip, response = response };
			local limited = service.limit_request(requester); -- before any work (ratelimit.lib)
			if limited then return refuse_limited(request, response, limited); end
		end
		if #body > cfg.max_body then
			service.rejected("http", "policy-violation");
			send_error(request, response, "policy-violation",
				("request body over %d bytes"):format(cfg.max_body), 413);
			return true;
		end
		if not is_json(request.headers.content_type) then
			service.rejected("http", "bad-request");
			send_error(request, response, "bad-request", "Content-Type must be application/json", 415);
			return true;
		end
		local ok, parsed, condition, text = pcall(codec.parse_json, codec, body);
		if not ok then
			module:log("error", "parse_json raised: %s", tostring(parsed));
			parsed, condition, text = nil, "internal-server-error", "could not parse the request";
		end
		if not parsed then
			service.rejected("http", condition);
			send_error(request, response, condition, text);
			return true;
		end
		parsed.token = bearer(request);
		service.handle(parsed, requester, function(result)
			if result.condition then
				if result.retry_after then response.headers.retry_after = tostring(result.retry_after); end
				-- lib-jitsi-meet's session test: "400 invalid-session" after the first character
				local message = result.session_invalid and ("HTTP 400 invalid-session: " .. (result.text or "")) or result.text;
				return send_error(request, response, result.condition, message);
			end
			local rendered, body_out = pcall(codec.render_json, codec, result);
			if not rendered then
				module:log("error", "rendering the answer for %s failed: %s", tostring(result.room), tostring(body_out));
				return send_error(request, response, "internal-server-error", "could not render the answer");
			end
			response.status_code = 200;
			response.headers.content_type = "application/json";
			cors(request, response);
			return response:send(body_out);
		end);
		return true;
	end

	-- The fast path (issue 15; service.fast says when it applies): a whole body, the same checks
	-- in the same order as on_post, then one native call parses the body, looks its room up and
	-- renders the ready answer: no Lua table is built for the request (but the rate limit's
	-- requester when limits are on). Anything the call does not answer (parse errors, rooms that
	-- are not ready keys) goes on through on_post, which answers it as it always did; the answer
	-- is byte for byte the general path's (spec/native_fastpath_spec.lua compares them).
	local fast = service.fast;
	local post = whole_body(on_post);
	if fast then
		local fast_registry, fast_focus_jid, fast_answered = fast.registry, fast.focus_jid, fast.answered;
		local limits_on, max_body = service.limits_requests, cfg.max_body;
		local slow_post = post;
		post = function(event)
			local request = event.request;
			local body, headers = request.body, request.headers;
			if not body or headers.transfer_encoding then return slow_post(event); end
			local requester;
			if limits_on then
				requester = { door = "http", ip = request.ip, response = event.response };
				local limited = service.limit_request(requester);
				if limited then return refuse_limited(request, event.response, limited); end
			end
			if #body <= max_body and is_json(headers.content_type) then
				local ok, out, room = pcall(codec.ready_json, codec, body, fast_registry, fast_focus_jid);
				if ok and out then
					fast_answered("http", request.ip, room);
					local response = event.response;
					response.status_code = 200;
					response.headers.content_type = "application/json";
					cors(request, response);
					response:send(out);
					return true;
				end
			end
			return on_post(event, requester);
		end
	end

	local function on_options(event)
		local request, response = event.request, event.response;
		response.status_code = 204;
		response.headers.allow = "POST, OPTIONS";
		cors(request, response);
		if response.headers.access_control_allow_origin then
			response.headers.access_control_allow_methods = "POST, OPTIONS";
			response.headers.access_control_allow_headers = "Content-Type, Authorization";
			response.headers.access_control_max_age = tostring(cfg.http_cors_max_age);
		end
		response:send("");
		return true;
	end

	local function on_health(event)
		local request, response = event.request, event.response;
		local stats = registry:stats();
		local counts = metrics.counts;
		local focus_status = focus.status();
		response.headers.content_type = "application/json";
		response.headers.cache_control = "no-store";
		cors(request, response);
		local vis;
		if visitors then -- per-node figures (docs/protocol.md §6, visitors.lib)
			local s = visitors.status();
			local nodes = {};
			for i, n in ipairs(s.nodes) do
				nodes[i] = { id = n.id, healthy = n.healthy, load = n.load, visitors = n.visitors, pending = n.pending,
					capacity = n.capacity, weight = n.weight, rooms = type(n.rooms) == "table" and #n.rooms or n.rooms,
					-- the report protocol (docs/protocol.md §6.2): seconds since the last report, why down
					reported = n.reported or json.null, down_reason = n.down_reason or json.null };
			end
			vis = { redirects = s.counts.redirects, queued = s.counts.queued, forwarded = s.counts.forwarded,
				choice = { reuse = s.counts.reuse, hash = s.counts.hash, least_loaded = s.counts.least_loaded,
					none = s.counts.none }, nodes = nodes };
		end
		local report; -- a visitor node's reports to the main server (vnode_role.lib)
		if reporter then
			local r = reporter.status();
			report = { node = r.node, main = r.main, total = r.total, rooms = r.rooms, in_flight = r.in_flight,
				sent = r.counts.sent, acked = r.counts.acked, failed = r.counts.failed, full = r.counts.full,
				max_bytes = r.counts.max_bytes };
		end
		return json.encode({
			status = "ok", visitors = vis, report = report,
			uptime = os.time() - started,
			rooms = stats.rooms, rooms_ready = stats.ready, rooms_pending = stats.pending, waiters = stats.waiters,
			requests = counts.requests, answers_ready = counts.ready, answers_not_ready = counts.not_ready,
			errors = counts.errors, rooms_created = counts.rooms_created, rooms_expired = counts.rooms_destroyed,
			rate_limited_requests = counts.rate_limited_requests, rate_limited_creations = counts.rate_limited_creations,
			focus = focus_status.jid or focus_status.mode, focus_online = focus_status.online,
		});
	end

	local not_v1 = method_not_allowed("POST, OPTIONS");
	local not_health = method_not_allowed("GET, HEAD");
	local route = {
		["POST /v1"] = on_post,
		["OPTIONS /v1"] = on_options,
		["GET /v1/health"] = on_health,
	};
	for _, method in ipairs({ "GET", "PUT", "DELETE", "PATCH" }) do
		route[method .. " /v1"] = not_v1;
	end
	for _, method in ipairs({ "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }) do
		route[method .. " /v1/health"] = not_health;
	end
	for key, handler in pairs(route) do
		route[key] = whole_body(handler);
	end
	route["POST /v1"] = post;

	module:depends("http");
	module:provides("http", {
		name = "conference_request",
		default_path = "/conference-request",
		cors = { enabled = true, origins = {} }, -- on (unload) but a no-op: see the top of this file
		streaming_uploads = true, -- chunked and large bodies reach whole_body (above)
		route = route,
	});

	return {};
end

return { new = new };
