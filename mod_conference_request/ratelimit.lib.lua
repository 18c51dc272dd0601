-- ratelimit.lib.lua: per-client rate limits for both doors (docs/protocol.md §2.3, issue #9), one token
-- bucket per client and kind:
--
--   requests   every conference request, checked by the door before the request is parsed;
--   creations  rooms created (built-in focus) or new rooms announced to the external focus,
--              checked right before that happens (focus.lib / external_focus.lib call
--              requester.creation_limited, which service.lib sets).
--
-- A client is the HTTP requester's IP (Prosody's request.ip: the X-Forwarded-For address when the
-- connection comes from one of mod_http's trusted_proxies), or the XMPP requester's bare JID. A
-- c2s session on a host with anonymous authentication (SASL ANONYMOUS gives a fresh JID per
-- connection, so its JID identifies nothing) is keyed by the session's IP instead, sharing the
-- bucket of HTTP requests from that IP (`xmpp_by_ip`: "anonymous" by default, true = every c2s
-- session, false = always the JID). IPv6 addresses count per /64.
--
-- Buckets live in a util.cache of at most max_clients entries per kind (least recently seen
-- forgotten first): a client that is forgotten starts again with a full bucket, so an attacker
-- rotating addresses can make the limit more generous for others but never lock anyone out, and
-- never grows the table. Prosody admins (global `admins` or the component's) and the external
-- focus are never refused. Refusals are `resource-constraint` (type wait; HTTP 429 with
-- Retry-After) and counted (metrics.rate_limited).

local cache = require "util.cache";
local jid_bare = require "util.jid".bare;
local new_ip = require "util.ip".new_ip;
local st_time = require "util.time";
local usermanager = require "core.usermanager";

local function new(cfg, metrics)
	local limits = cfg.rate_limits;
	local rl = {};
	if not limits then return rl; end
	local now = st_time.monotonic;
	local by_ip = limits.xmpp_by_ip;

	-- One kind of limit: check(key) → nil when a token was taken, else seconds until one is due.
	local function bucket(spec)
		if not spec then return nil; end
		local rate, burst = spec.rate, spec.burst;
		local clients = cache.new(limits.max_clients); -- key -> { tokens, last refill (monotonic s) }
		return function(key)
			local t = now();
			local b = clients:get(key);
			if not b then
				clients:set(key, { burst - 1, t });
				return nil;
			end
			local tokens = b[1] + (t - b[2]) * rate;
			if tokens > burst then tokens = burst; end
			b[2] = t;
			if tokens >= 1 then
				b[1] = tokens - 1;
				return nil;
			end
			b[1] = tokens;
			return (1 - tokens) / rate;
		end, clients;
	end
	local check_request, request_clients = bucket(limits.requests);
	local check_creation, creation_clients = bucket(limits.creations);

	local function ip_key(ip)
		if type(ip) ~= "string" then return "ip:?"; end
		if ip:find(":", 1, true) then
			local v4 = ip:match("^::[fF][fF][fF][fF]:(%d+%.%d+%.%d+%.%d+)$");
			if v4 then return "ip:" .. v4; end
			local parsed = new_ip(ip);
			if parsed and parsed.proto == "IPv6" then
				return "ip6:" .. parsed.bits:sub(1, 64);
			end
		end
		return "ip:" .. ip;
	end
	rl.ip_key = ip_key;

	local anonymous_hosts = {}; -- local host -> whether its authentication provider is anonymous
	local function anonymous_host(host)
		local known = anonymous_hosts[host];
		if known ~= nil then return known; end
		local h = prosody.hosts[host];
		if not h then return false; end
		local provider = h.users and h.users.name;
		-- "anonymous" (mod_auth_anonymous) or a variant such as Jitsi's "jitsi-anonymous"
		known = type(provider) == "string" and provider:find("anonymous$") ~= nil;
		anonymous_hosts[host] = known;
		return known;
	end

	local function key_of(requester)
		local key = requester.limit_key;
		if key then return key; end
		if requester.door == "http" then
			key = ip_key(requester.ip);
		else
			local origin = requester.origin;
			if origin and origin.type == "c2s" and origin.ip
			and (by_ip == true or (by_ip == "anonymous" and anonymous_host(origin.host))) then
				key = ip_key(origin.ip);
			else
				key = "jid:" .. (jid_bare(requester.jid) or "?");
			end
		end
		requester.limit_key = key;
		return key;
	end
	rl.key_of = key_of;

	-- Only asked when a bucket is empty: the normal path costs nothing.
	local function exempt(requester)
		if requester.door ~= "xmpp" then return false; end
		local bare = requester.jid and jid_bare(requester.jid);
		if not bare then return false; end
		if cfg.focus and bare == cfg.focus then return true; end
		return usermanager.is_admin(bare, module.host) and true or false;
	end

	local last_warning, refused_since = -math.huge, 0;
	local function refuse(kind, key, wait)
		local seconds = math.max(1, math.ceil(wait));
		metrics.rate_limited(kind);
		refused_since = refused_since + 1;
		local t = now();
		if t - last_warning >= 60 then
			module:log("warn", "rate limit: %d request(s) refused in the last minute (latest: %s from %s); "
				.. "see conference_request_rate_limits", refused_since, kind, key);
			last_warning, refused_since = t, 0;
		else
			module:log("debug", "rate limit: %s from %s refused, retry in %d s", kind, key, seconds);
		end
		return { condition = "resource-constraint", retry_after = seconds,
			text = ("too many %s from this client: retry in %d s"):format(
				kind == "creations" and "new conferences" or "requests", seconds) };
	end

	-- nil when the request may go on, else an error result (service.lib / the doors answer it).
	if check_request then
		function rl.request(requester)
			local key = key_of(requester);
			local wait = check_request(key);
			if not wait or exempt(requester) then return nil; end
			return refuse("requests", key, wait);
		end
	end
	if check_creation then
		function rl.creation(requester)
			local key = key_of(requester);
			local wait = check_creation(key);
			if not wait or exempt(requester) then return nil; end
			return refuse("creations", key, wait);
		end
	end

	-- For specs and the shell: clients currently remembered per kind.
	function rl.clients()
		return request_clients and request_clients:count() or 0, creation_clients and creation_clients:count() or 0;
	end

	return rl;
end

return { new = new };
