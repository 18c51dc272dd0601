-- Specs of auth.lib (docs/protocol.md §5) with a stand-in `module` and, for "jwt", a stub verifier that
-- follows the native.jwt_verifier contract (verify(token, room_name, now, tenant) -> claims | nil,
-- condition, text). The real verifier and the real Prosody are covered by tests/integration.

local function load_auth(logs, hooks)
	local module = {
		host = "focus.localhost",
		log = function(_, level, fmt, ...)
			table.insert(logs, { level = level, text = fmt:format(...) });
		end,
		hook = function(_, name, fn) hooks[name] = fn; end,
		add_timer = function() end,
	};
	local env = setmetatable({ module = module }, { __index = _G });
	local f = assert(loadfile("mod_conference_request/auth.lib.lua", "t", env));
	return f();
end

local conditions = {
	["not-acceptable"] = { type = "modify", http = 400 }, ["bad-request"] = { type = "modify", http = 400 },
	["not-authorized"] = { type = "auth", http = 403 }, ["internal-server-error"] = { type = "cancel", http = 500 },
};

local function make(opts, clock)
	local logs, hooks = {}, {};
	local lib = load_auth(logs, hooks);
	local defaults = { lifetime = 60, max_sessions = 100, max_jids = 100 };
	for k, v in pairs(defaults) do if opts[k] == nil then opts[k] = v; end end
	local auth = lib.new(opts, { conditions = conditions }, clock);
	return auth, logs, hooks, lib;
end

local function xmpp_requester(full) return { door = "xmpp", jid = full }; end

describe("auth.lib", function()
	it("splits tenant rooms", function()
		local lib = load_auth({}, {});
		assert.same({ "room1" }, { lib.room_name("room1@conference.example.com") });
		assert.same({ "room1", "acme" }, { lib.room_name("[acme]room1@conference.example.com") });
	end);

	describe("mode none", function()
		it("checks nothing, answers authentication=false, grants no role", function()
			local auth = make({ mode = "none" });
			local requester = xmpp_requester("a@x/r");
			assert.is_nil(auth.check({ room = "r@c" }, requester, "r@c"));
			assert.is_nil(requester.may_create);
			local cc = auth.codec_config({});
			assert.is_false(cc.authentication);
			assert.is_nil(cc.external_auth);
			assert.is_nil(auth.occupant_role("a@x/r"));
		end);
	end);

	describe("mode xmpp", function()
		local t;
		local function clock() return t; end
		before_each(function() t = 1000; end);

		it("answers authentication=true, externalAuth=false", function()
			local cc = make({ mode = "xmpp", domain = "auth.x" }).codec_config({});
			assert.is_true(cc.authentication);
			assert.is_false(cc.external_auth);
		end);

		it("a session: created for the auth domain, reused by a guest on the same machine, expires idle", function()
			local auth = make({ mode = "xmpp", domain = "auth.x", lifetime = 10 }, clock);
			local user = xmpp_requester("u@auth.x/r1");
			assert.is_nil(auth.check({ machine_uid = "m1" }, user, "r@c"));
			assert.is_true(user.may_create);
			local sid = user.session.id;
			assert.is_true(#sid >= 32);
			local answer = auth.decorate({ room = "r@c", ready = true }, user);
			assert.equal(sid, answer.session_id);
			assert.equal("u@auth.x", answer.identity);
			local guest = xmpp_requester("g@guest.x/r");
			assert.is_nil(auth.check({ machine_uid = "m1", session_id = sid }, guest, "r@c"));
			assert.is_true(guest.may_create);
			assert.equal("owner", auth.occupant_role("g@guest.x/r"));
			assert.equal("member", auth.occupant_role("other@guest.x/r"));
			assert.equal("owner", auth.occupant_role("u@auth.x/any"));
			t = t + 11;
			local late = xmpp_requester("g@guest.x/r");
			local refusal = auth.check({ machine_uid = "m1", session_id = sid }, late, "r@c");
			assert.equal("not-acceptable", refusal.condition);
			assert.is_true(refusal.session_invalid);
			assert.equal("member", auth.occupant_role("g@guest.x/r"));
		end);

		it("use keeps a session alive", function()
			local auth = make({ mode = "xmpp", domain = "auth.x", lifetime = 10 }, clock);
			local user = xmpp_requester("u@auth.x/r1");
			auth.check({ machine_uid = "m1" }, user, "r@c");
			local sid = user.session.id;
			for _ = 1, 5 do
				t = t + 8;
				assert.is_nil(auth.check({ machine_uid = "m1", session_id = sid }, xmpp_requester("g@guest.x/r"), "r@c"));
			end
		end);

		it("guests and HTTP requests may not create; HTTP gets no session", function()
			local auth = make({ mode = "xmpp", domain = "auth.x" }, clock);
			local guest = xmpp_requester("g@guest.x/r");
			assert.is_nil(auth.check({ machine_uid = "m" }, guest, "r@c"));
			assert.is_false(guest.may_create);
			local user = xmpp_requester("u@auth.x/r1");
			auth.check({ machine_uid = "m1" }, user, "r@c");
			local web = { door = "http" };
			assert.is_nil(auth.check({ machine_uid = "m1", session_id = user.session.id }, web, "r@c"));
			assert.is_false(web.may_create);
			assert.is_nil(web.session);
		end);

		it("session errors: unknown, machine mismatch, missing machine-uid", function()
			local auth = make({ mode = "xmpp", domain = "auth.x" }, clock);
			local user = xmpp_requester("u@auth.x/r1");
			auth.check({ machine_uid = "m1" }, user, "r@c");
			local sid = user.session.id;
			for _, req in ipairs({ { machine_uid = "m1", session_id = "nope" }, { machine_uid = "m2", session_id = sid },
				{ session_id = sid }, { } }) do
				local refusal = auth.check(req, xmpp_requester("u@auth.x/r2"), "r@c");
				assert.equal("not-acceptable", refusal.condition);
				assert.is_true(refusal.session_invalid);
			end
		end);

		it("the session count is bounded (least recently used goes)", function()
			local auth = make({ mode = "xmpp", domain = "auth.x", max_sessions = 3 }, clock);
			local ids = {};
			for i = 1, 5 do
				local u = xmpp_requester("u" .. i .. "@auth.x/r");
				auth.check({ machine_uid = "m" }, u, "r@c");
				ids[i] = u.session.id;
			end
			assert.equal(3, auth.counts().sessions);
			assert.is_not_nil(auth.check({ machine_uid = "m", session_id = ids[1] }, xmpp_requester("g@g/r"), "r@c"));
			assert.is_nil(auth.check({ machine_uid = "m", session_id = ids[5] }, xmpp_requester("g@g/r"), "r@c"));
		end);

		it("the remembered JIDs are bounded", function()
			local auth = make({ mode = "xmpp", domain = "auth.x", max_jids = 2 }, clock);
			local u = xmpp_requester("u@auth.x/r");
			auth.check({ machine_uid = "m" }, u, "r@c");
			for i = 1, 3 do
				auth.check({ machine_uid = "m", session_id = u.session.id }, xmpp_requester("g" .. i .. "@g/r"), "r@c");
			end
			assert.equal(2, auth.counts().remembered_jids);
			assert.equal("member", auth.occupant_role("g1@g/r"));
			assert.equal("owner", auth.occupant_role("g3@g/r"));
		end);

		it("tells on_authenticated which JID became authenticated for which room", function()
			local auth = make({ mode = "xmpp", domain = "auth.x" }, clock);
			local seen = {};
			auth.on_authenticated = function(room, full) table.insert(seen, { room, full }); end
			local u = xmpp_requester("u@auth.x/r");
			auth.check({ machine_uid = "m" }, u, "r1@c");
			auth.check({ machine_uid = "m", session_id = u.session.id }, xmpp_requester("g@g/r"), "r2@c");
			auth.check({ machine_uid = "m" }, xmpp_requester("g2@g/r"), "r3@c");
			assert.same({ { "r1@c", "u@auth.x/r" }, { "r2@c", "g@g/r" } }, seen);
			auth.on_authenticated = function() error("boom"); end
			assert.is_nil(auth.check({ machine_uid = "m" }, u, "r1@c"));
		end);

		it("logs no session id", function()
			local auth, logs = make({ mode = "xmpp", domain = "auth.x" }, clock);
			local u = xmpp_requester("u@auth.x/r");
			auth.check({ machine_uid = "m" }, u, "r@c");
			for _, l in ipairs(logs) do assert.falsy(l.text:find(u.session.id, 1, true)); end
		end);
	end);

	describe("mode jwt", function()
		local calls;
		local verifier = {
			verify = function(_, token, room_name, now, tenant)
				table.insert(calls, { token = token, room = room_name, now = now, tenant = tenant });
				if token == "good" then return { alg = "HS256", user_id = "u1", group = "g1" }; end
				if token == "nomod" then return { alg = "HS256", moderator = false }; end
				return nil, "not-authorized", "token expired";
			end,
		};
		before_each(function() calls = {}; end);

		local function jwt_auth(extra)
			local opts = { mode = "jwt", verifier = verifier };
			for k, v in pairs(extra or {}) do opts[k] = v; end
			return make(opts);
		end

		it("answers authentication=true, externalAuth=true", function()
			local cc = jwt_auth().codec_config({});
			assert.is_true(cc.authentication);
			assert.is_true(cc.external_auth);
		end);

		it("a valid token creates and keeps the claims; no token is a guest; a bad one is refused", function()
			local auth = jwt_auth();
			local r = xmpp_requester("a@x/1");
			assert.is_nil(auth.check({ token = "good" }, r, "[acme]Room@c"));
			assert.is_true(r.may_create);
			assert.equal("u1", r.claims.user_id);
			assert.equal("g1", r.claims.group);
			assert.same({ "Room", "acme" }, { calls[1].room, calls[1].tenant });
			assert.equal("number", type(calls[1].now));
			local g = xmpp_requester("b@x/1");
			assert.is_nil(auth.check({}, g, "r@c"));
			assert.is_false(g.may_create);
			local bad = xmpp_requester("c@x/1");
			local refusal = auth.check({ token = "expired-token-text" }, bad, "r@c");
			assert.same({ condition = "not-authorized", text = "token expired" }, refusal);
		end);

		it("occupant_role: owner after a valid token unless moderator=false", function()
			local auth = jwt_auth();
			local seen = {};
			auth.on_authenticated = function(room, full) table.insert(seen, room .. " " .. full); end
			auth.check({ token = "good" }, xmpp_requester("a@x/1"), "r@c");
			auth.check({ token = "nomod" }, xmpp_requester("b@x/1"), "r@c");
			auth.check({}, xmpp_requester("c@x/1"), "r@c");
			auth.check({ token = "bad" }, xmpp_requester("d@x/1"), "r@c");
			assert.equal("owner", auth.occupant_role("a@x/1"));
			assert.equal("member", auth.occupant_role("a@x/2"));
			assert.equal("member", auth.occupant_role("b@x/1"));
			assert.equal("member", auth.occupant_role("c@x/1"));
			assert.equal("member", auth.occupant_role("d@x/1"));
			assert.same({ "r@c a@x/1", "r@c b@x/1" }, seen);
		end);

		it("refuses to load without a verifier in the binding, naming the option", function()
			local lib = load_auth({}, {});
			local ok, err = pcall(lib.new, { mode = "jwt", lifetime = 1, max_sessions = 1, max_jids = 1, jwt = {} },
				{ conditions = conditions });
			assert.is_false(ok);
			assert.matches("invalid option conference_request_auth", err);
			ok, err = pcall(lib.new, { mode = "jwt", lifetime = 1, max_sessions = 1, max_jids = 1, jwt = { public_keys = {} } },
				{ conditions = conditions, jwt_verifier = function() error("bad PEM for kid k1"); end });
			assert.is_false(ok);
			assert.matches("invalid option conference_request_jwt_public_keys: .*bad PEM", err);
		end);
	end);
end);

describe("config.lib auth options", function()
	local function read(options)
		local module = {
			host = "focus.localhost",
			get_option = function(_, key, default)
				local v = options[key];
				if v == nil then return default; end
				return v;
			end,
			log = function() end,
		};
		local env = setmetatable({ module = module }, { __index = _G });
		local f = assert(loadfile("mod_conference_request/config.lib.lua", "t", env));
		return f().read();
	end

	it("defaults to none, 24 h sessions", function()
		local a = read({ conference_request_muc = "conference.example.com" }).auth;
		assert.equal("none", a.mode);
		assert.equal(86400, a.lifetime);
		assert.equal(100000, a.max_sessions);
		assert.equal(100000, a.max_jids);
	end);

	it("xmpp needs the auth domain", function()
		local ok, err = pcall(read, { conference_request_muc = "c.x", conference_request_auth = "xmpp" });
		assert.is_false(ok);
		assert.matches("invalid option conference_request_auth_domain", err);
		local a = read({ conference_request_muc = "c.x", conference_request_auth = "xmpp",
			conference_request_auth_domain = "Auth.X" }).auth;
		assert.equal("auth.x", a.domain);
	end);

	it("jwt reads the secret file and the PEM files at load, sub domain from the MUC", function()
		local dir = os.tmpname();
		local function write(path, text) local f = assert(io.open(path, "w")); f:write(text); f:close(); end
		write(dir .. ".secret", "s3cret\n");
		write(dir .. ".pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
		local a = read({ conference_request_muc = "conference.meet.example.com", conference_request_auth = "jwt",
			conference_request_jwt_secret_file = dir .. ".secret",
			conference_request_jwt_public_keys = { k1 = dir .. ".pem" },
			conference_request_jwt_issuers = { "app" }, conference_request_jwt_audiences = "jitsi",
			conference_request_jwt_leeway = 30 }).auth;
		os.remove(dir .. ".secret"); os.remove(dir .. ".pem"); os.remove(dir);
		assert.equal("s3cret", a.jwt.hs256_secret);
		assert.matches("BEGIN PUBLIC KEY", a.jwt.public_keys.k1);
		assert.same({ "app" }, a.jwt.issuers);
		assert.same({ "jitsi" }, a.jwt.audiences);
		assert.equal("meet.example.com", a.jwt.domain);
		assert.equal(30, a.jwt.leeway);
	end);

	it("refuses bad jwt options", function()
		for _, o in ipairs({
			{ { conference_request_auth = "jwt" }, "conference_request_auth" },
			{ { conference_request_auth = "jwt", conference_request_jwt_secret = "a",
				conference_request_jwt_secret_file = "/etc/hostname" }, "conference_request_jwt_secret" },
			{ { conference_request_auth = "jwt", conference_request_jwt_secret_file = "/nonexistent" },
				"conference_request_jwt_secret_file" },
			{ { conference_request_auth = "jwt", conference_request_jwt_secret = "a",
				conference_request_jwt_leeway = -1 }, "conference_request_jwt_leeway" },
			{ { conference_request_auth = "jwt", conference_request_jwt_secret = "a",
				conference_request_jwt_public_keys = { k = "/nonexistent.pem" } }, "conference_request_jwt_public_keys" },
			{ { conference_request_auth = "JWT" }, "conference_request_auth" },
		}) do
			o[1].conference_request_muc = "c.x";
			local ok, err = pcall(read, o[1]);
			assert.is_false(ok);
			assert.matches("invalid option " .. o[2]:gsub("_", "%%_"), err);
		end
	end);
end);
