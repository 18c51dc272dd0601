-- auth.lib.lua: who may create a room (docs/protocol.md §5), `conference_request_auth = "none" | "xmpp" | "jwt"`.
--
--   local auth = module:require "auth".new(cfg.auth, native)
--   auth.check(request, requester, room_jid) -> nil | refusal   (service.lib, before the focus)
--   auth.decorate(result, requester) -> result                  (session-id / identity in the answer)
--   auth.occupant_role(real_full_jid) -> "owner" | "member" | nil   (moderation.lib)
--   auth.on_authenticated = function(room_jid, real_full_jid)      (optional; set by the wiring, e.g.
--       moderation.authenticated: a JID already in the room became authenticated, as jicofo's
--       "authenticated" listener)
--
-- check() sets requester.may_create (false: the focus refuses to create a missing room with
-- not-authorized; nil in mode "none": anyone creates), requester.session (xmpp) and
-- requester.claims (jwt: the verified claims, user_id / group / moderator for the visitors work).
--
-- xmpp: sessions as jicofo keeps them. An auth-domain requester with a machine-uid and no
-- session-id gets a session (id from util.id: 27 bytes of util.random, the OS CSPRNG), bound to that
-- machine-uid; presenting the id again with the same machine-uid, from any JID (a guest on the same
-- machine), authenticates. Sessions live in an LRU of conference_request_auth_max_sessions entries
-- and die after conference_request_auth_lifetime seconds without use. login-url and logout IQs are
-- answered as jicofo answers them.
-- jwt: native.jwt_verifier (the C core) checks the token; a valid one authenticates, none makes a
-- guest, an invalid one is not-authorized with the verifier's text (never the token).
-- Nothing here logs a token, a secret or a session id.

local jid = require "util.jid";
local st = require "util.stanza";
local id = require "util.id";
local cache = require "util.cache";
local st_time = require "util.time";
local http_util = require "util.http";

local NS = "http://jitsi.org/protocol/focus";

local function session_error(text)
	return { condition = "not-acceptable", text = text, session_invalid = true };
end

local function refuse(text)
	return { condition = "not-authorized", text = text };
end

-- "[tenant]name" (Jitsi's muc_domain_mapper form) -> name, tenant
local function room_name(room_jid)
	local node = room_jid:match("^(.-)@") or room_jid;
	local tenant, name = node:match("^%[([^%]]+)%](.+)$");
	if tenant then return name, tenant; end
	return node, nil;
end

-- opts: cfg.auth (config.lib); native: the binding (jwt_verifier, conditions);
-- clock: monotonic seconds (injectable for specs).
local function new(opts, native, clock)
	local auth = { mode = opts.mode };
	local mode = opts.mode;
	local now = clock or st_time.monotonic;

	-- What the answers say (docs/protocol.md §2.2): authentication always, externalAuth when auth is on.
	function auth.codec_config(codec_config)
		codec_config.authentication = mode ~= "none";
		if mode ~= "none" then codec_config.external_auth = mode == "jwt"; end
		return codec_config;
	end

	if mode == "none" then
		function auth.check() return nil; end
		function auth.decorate(result) return result; end
		function auth.occupant_role() return nil; end
		function auth.save() return nil; end
		function auth.restore() end
		function auth.stop() end
		auth.counts = function() return {}; end
		return auth;
	end

	local lifetime = opts.lifetime;
	local auth_domain = opts.domain;

	-- Full JIDs the moderation branch asks about: full JID -> session id (xmpp) or
	-- { moderator = bool|nil } (jwt). Bounded LRU: the oldest binding goes first.
	local remembered = cache.new(opts.max_jids);

	-- Sessions (xmpp) --------------------------------------------------------------------------
	local by_machine = {};      -- identity .. "\0" .. machine_uid -> session id
	local sessions = cache.new(opts.max_sessions, function(_, s)
		by_machine[s.key] = nil;
	end);
	local counts = { sessions_created = 0, sessions_expired = 0, sessions_evicted = 0, logouts = 0 };

	local function drop(s)
		sessions:set(s.id, nil);
		by_machine[s.key] = nil;
	end

	local function live(session_id)
		local s = session_id and sessions:get(session_id);
		if not s then return nil; end
		if now() - s.last > lifetime then
			drop(s);
			counts.sessions_expired = counts.sessions_expired + 1;
			return nil;
		end
		return s;
	end

	local function touch(s)
		s.last = now();
		sessions:set(s.id, s); -- to the head of the LRU
	end

	local function new_session(identity, machine_uid)
		local key = identity .. "\0" .. machine_uid;
		local s = live(by_machine[key]);
		if s then return s; end
		if sessions:count() >= opts.max_sessions then
			counts.sessions_evicted = counts.sessions_evicted + 1;
		end
		s = { id = id.long(), identity = identity, machine_uid = machine_uid, key = key, last = now() };
		sessions:set(s.id, s);
		by_machine[key] = s.id;
		counts.sessions_created = counts.sessions_created + 1;
		module:log("debug", "auth session created for %s", identity);
		return s;
	end

	-- Idle sessions are dropped from the LRU's tail (least recently used first).
	local function sweep()
		local t = now();
		while true do
			local sid, s = sessions:tail();
			if not sid or t - s.last <= lifetime then break; end
			drop(s);
			counts.sessions_expired = counts.sessions_expired + 1;
		end
	end
	auth.sweep = sweep;

	local verifier;
	if mode == "jwt" then
		verifier = opts.verifier;
		if not verifier then
			if not native.jwt_verifier then
				error("invalid option conference_request_auth: \"jwt\" needs a native build with jwt_verifier", 0);
			end
			local ok, v = pcall(native.jwt_verifier, opts.jwt);
			if not ok then
				error(("invalid option %s: %s"):format(opts.jwt.public_keys and "conference_request_jwt_public_keys"
					or "conference_request_jwt_secret", tostring(v)), 0);
			end
			verifier = v;
		end
	end

	-- The per-request decision --------------------------------------------------------------------
	-- Tells the owner of auth.on_authenticated; never lets its fault reach the request.
	function auth.notify(room_jid, full)
		local listener = auth.on_authenticated;
		if not listener then return; end
		local ok, err = pcall(listener, room_jid, full);
		if not ok then module:log("error", "on_authenticated failed: %s", tostring(err)); end
	end

	local function check_xmpp(request, requester, room_jid)
		local full = requester.door == "xmpp" and requester.jid or nil;
		local session;
		if request.session_id then
			session = live(request.session_id);
			if not session then
				return session_error("invalid session");
			end
			if request.machine_uid ~= session.machine_uid then
				return session_error("machine UID mismatch or empty");
			end
		elseif full and jid.host(full) == auth_domain then
			if not request.machine_uid then
				return session_error("missing mandatory attribute 'machine-uid'");
			end
			session = new_session(jid.bare(full), request.machine_uid);
		end
		if session then
			touch(session);
		end
		-- HTTP requests have no JID: they are guests, a valid session does not change that (docs/protocol.md §5).
		if session and full then
			requester.session = session;
			remembered:set(full, session.id);
			requester.may_create = true;
			auth.notify(room_jid, full);
		else
			requester.may_create = false;
		end
		return nil;
	end

	local function check_jwt(request, requester, room_jid)
		local token = request.token;
		if not token then
			requester.may_create = false;
			return nil;
		end
		local name, tenant = room_name(room_jid);
		local claims, _, text = verifier:verify(token, name, os.time(), tenant);
		if not claims then
			return refuse(text or "token refused");
		end
		requester.claims = claims;
		requester.may_create = true;
		local full = requester.door == "xmpp" and requester.jid or nil;
		if full then
			remembered:set(full, { moderator = claims.moderator });
			auth.notify(room_jid, full);
		end
		return nil;
	end

	auth.check = mode == "xmpp" and check_xmpp or check_jwt;

	-- The answer to a requester with a session carries session-id and identity (XMPP only).
	-- A copy: the external focus hands one answer table to many waiters.
	function auth.decorate(result, requester)
		local s = requester.session;
		if not s or result.condition then return result; end
		local copy = {};
		for k, v in pairs(result) do copy[k] = v; end
		copy.session_id, copy.identity = s.id, s.identity;
		return copy;
	end

	function auth.occupant_role(real_jid)
		if type(real_jid) ~= "string" then return nil; end
		local value = remembered:get(real_jid);
		if mode == "xmpp" then
			if jid.host(real_jid) == auth_domain then return "owner"; end
			if value and live(value) then return "owner"; end
			return "member";
		end
		if value and value.moderator ~= false then return "owner"; end
		return "member";
	end

	function auth.counts()
		counts.sessions = sessions:count();
		counts.remembered_jids = remembered:count();
		return counts;
	end

	-- login-url (get) and logout (set), as jicofo answers them -----------------------------------
	local conditions = native.conditions;
	local function error_reply(stanza, condition, text)
		local c = conditions[condition];
		return st.error_reply(stanza, c and c.type or "cancel", condition, text, module.host);
	end

	local function on_login_url(event)
		local origin, stanza = event.origin, event.stanza;
		local el = stanza.tags[1];
		local room, machine_uid = el.attr.room, el.attr["machine-uid"];
		if not room or room == "" then
			origin.send(error_reply(stanza, "not-acceptable", "missing 'room'"));
			return true;
		end
		if not machine_uid or machine_uid == "" then
			origin.send(error_reply(stanza, "bad-request", "missing mandatory attribute 'machineUID'"));
			return true;
		end
		local attr = { xmlns = NS };
		if mode == "xmpp" then
			local node = jid.split(room) or room;
			attr.url = http_util.urlencode("./" .. node .. "?login=true");
		end
		origin.send(st.reply(stanza):tag("login-url", attr));
		return true;
	end

	local function on_logout(event)
		local origin, stanza = event.origin, event.stanza;
		local s = mode == "xmpp" and live(stanza.tags[1].attr["session-id"]) or nil;
		if not s then
			local reply = error_reply(stanza, "not-acceptable", "invalid session");
			reply:tag("session-invalid", { xmlns = NS }):up();
			origin.send(reply);
			return true;
		end
		drop(s);
		counts.logouts = counts.logouts + 1;
		module:log("debug", "auth session of %s ended by logout", s.identity);
		origin.send(st.reply(stanza):tag("logout", { xmlns = NS }));
		return true;
	end

	local function guarded(handler)
		return function(event)
			local ok, err = pcall(handler, event);
			if not ok then
				module:log("error", "auth IQ handler failed: %s", tostring(err));
				event.origin.send(error_reply(event.stanza, "internal-server-error", "internal error"));
			end
			return true;
		end
	end

	module:hook("iq-get/host/" .. NS .. ":login-url", guarded(on_login_url));
	module:hook("iq-set/host/" .. NS .. ":logout", guarded(on_logout));

	local timer_stopped = false;
	if mode == "xmpp" then
		local interval = math.max(1, math.min(60, lifetime / 2));
		module:add_timer(interval, function()
			if timer_stopped then return; end
			sweep();
			return interval;
		end);
	end

	-- Module reload: sessions and remembered JIDs carry over (monotonic clock, same process).
	function auth.save()
		local list, jids = {}, {};
		for _, s in sessions:items() do table.insert(list, 1, s); end
		for k, v in remembered:items() do table.insert(jids, 1, { k, v }); end
		return { mode = mode, sessions = list, jids = jids };
	end

	function auth.restore(saved)
		if type(saved) ~= "table" or saved.mode ~= mode then return; end
		for _, s in ipairs(saved.sessions or {}) do
			sessions:set(s.id, s);
			by_machine[s.key] = s.id;
		end
		for _, pair in ipairs(saved.jids or {}) do remembered:set(pair[1], pair[2]); end
		sweep();
	end

	function auth.stop()
		timer_stopped = true;
	end

	return auth;
end

return { new = new, room_name = room_name, session_error = session_error };
