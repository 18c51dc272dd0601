-- Specs of tenant.lib: Jitsi's muc_domain_mapper form name@<prefix>.<tenant>.<base> ->
-- [tenant]name@<prefix>.<base> (docs/protocol.md §2.1 "Tenants"). The real Prosody is covered by
-- tests/integration/test_tenants.py.

local tenant = dofile("mod_conference_request/tenant.lib.lua");

local hosts = { ["conference.meet.example.com"] = true, ["breakout.meet.example.com"] = true,
	["muc.other.org"] = true };

describe("tenant.lib", function()
	it("is off without a base", function()
		assert.is_nil(tenant.new(nil, hosts));
	end);

	local t = tenant.new("meet.example.com", hosts);

	it("knows the served MUCs under its base", function()
		local list = {};
		for _, h in ipairs(t.hosts) do list[#list + 1] = h; end
		table.sort(list);
		assert.same({ "breakout.meet.example.com", "conference.meet.example.com" }, list);
	end);

	it("maps a tenant room of each served MUC", function()
		assert.same({ "[acme]room", "conference.meet.example.com" }, { t.map("room", "conference.acme.meet.example.com") });
		assert.same({ "[acme]room", "breakout.meet.example.com" }, { t.map("room", "breakout.acme.meet.example.com") });
		assert.same({ "[a-b_1]r", "conference.meet.example.com" }, { t.map("r", "conference.a-b_1.meet.example.com") });
	end);

	it("leaves hosts that are no tenant form alone", function()
		assert.is_nil(t.map("room", "conference.meet.example.com"));   -- served as it is (caller checks first)
		assert.is_nil(t.map("room", "conference.acme.other.org"));
		assert.is_nil(t.map("room", "lobby.acme.meet.example.com"));   -- not a served prefix
		assert.is_nil(t.map("room", "meet.example.com"));
		assert.is_nil(t.map("room", "xmeet.example.com"));
		assert.is_nil(t.map("room", "conference.acmemeet.example.com"));
	end);

	it("refuses malformed tenants", function()
		local function refused(host)
			local ok, text = t.map("room", host);
			assert.is_false(ok, host);
			assert.is_string(text);
		end
		refused("conference..meet.example.com");                 -- empty
		refused("conference.a.b.meet.example.com");              -- two labels: the mapper takes one
		refused("conference.a]b.meet.example.com");              -- breaks [tenant] parsing
		refused("conference.a[b.meet.example.com");
		refused("conference.a b.meet.example.com");
		refused("conference.a/b.meet.example.com");
		refused("conference.a:b.meet.example.com");
		refused("conference.a\1b.meet.example.com");
		refused("conference." .. ("a"):rep(64) .. ".meet.example.com"); -- over one DNS label
		assert.truthy(t.map("room", "conference." .. ("a"):rep(63) .. ".meet.example.com"));
		local ok = t.map(("n"):rep(1023 - 10), "conference." .. ("a"):rep(9) .. ".meet.example.com");
		assert.is_false(ok);                                      -- mapped node over 1023 bytes
		assert.truthy(t.map(("n"):rep(1023 - 11), "conference." .. ("a"):rep(9) .. ".meet.example.com"));
	end);

	it("prefers the longest served prefix", function()
		local t2 = tenant.new("example.com", { ["conference.example.com"] = true, ["x.conference.example.com"] = true });
		assert.same({ "[t]r", "x.conference.example.com" }, { t2.map("r", "x.conference.t.example.com") });
		assert.same({ "[t]r", "conference.example.com" }, { t2.map("r", "conference.t.example.com") });
	end);
end);

describe("service.lib with tenants", function()
	local module = {
		host = "focus.localhost",
		log = function() end,
		require = function(_, name) return dofile("mod_conference_request/" .. name .. ".lib.lua"); end,
	};
	local env = setmetatable({ module = module }, { __index = _G });
	local lib = assert(loadfile("mod_conference_request/service.lib.lua", "t", env))();
	local cfg = { muc = "conference.localhost", tenant_base = "localhost",
		muc_hosts = { ["conference.localhost"] = true, ["breakout.localhost"] = true } };
	local ready = {};
	local registry = { state = function(_, room) return ready[room] and "ready" or "absent"; end };
	local seen, shared;
	local focus = { request = function(room, host, request, _, respond)
		seen = { room = room, host = host, client_room = request.client_room };
		return respond(shared or { room = room, ready = true });
	end };
	local service = lib.new(cfg, focus, { request = function() end }, registry);
	local function ask(room)
		local answers = {};
		seen = nil;
		service.handle({ room = room }, { door = "xmpp", jid = "a@localhost/x" }, function(r) answers[#answers + 1] = r; end);
		assert.equal(1, #answers);
		return answers[1];
	end

	after_each(function() shared = nil; end);

	it("hands the mapped room to the focus and answers the client's form", function()
		local answer = ask("Room@Conference.ACME.localhost");
		assert.same({ room = "[acme]room@conference.localhost", host = "conference.localhost",
			client_room = "room@conference.acme.localhost" }, seen);
		assert.equal("room@conference.acme.localhost", answer.room);
	end);

	it("answers a copy: one result table shared by many waiters keeps the mapped room", function()
		shared = { room = "[acme]room@conference.localhost", ready = true };
		local answer = ask("room@conference.acme.localhost");
		assert.equal("room@conference.acme.localhost", answer.room);
		assert.equal("[acme]room@conference.localhost", shared.room);
	end);

	it("serves the mapped form and ready keys as they stand", function()
		ask("[acme]room@conference.localhost");
		assert.same({ room = "[acme]room@conference.localhost", host = "conference.localhost" }, seen);
		ready["[acme]fast@conference.localhost"] = true;
		assert.equal("[acme]fast@conference.localhost", ask("[acme]fast@conference.localhost").room);
		assert.is_nil(seen.host); -- the fast path: no stringprep, no host
	end);

	it("refuses malformed tenants without asking the focus", function()
		for _, room in ipairs({ "r@conference..localhost", "r@conference.a.b.localhost", "r@conference.a]b.localhost" }) do
			assert.equal("jid-malformed", ask(room).condition);
			assert.is_nil(seen);
		end
		assert.equal("item-not-found", ask("r@lobby.acme.localhost").condition);
	end);
end);

describe("config.lib tenant options", function()
	local function read(options)
		local logs = {};
		local module = {
			host = "focus.localhost",
			get_option = function(_, key, default)
				local v = options[key];
				if v == nil then return default; end
				return v;
			end,
			log = function(_, level, fmt, ...) logs[#logs + 1] = { level, fmt:format(...) }; end,
		};
		options.conference_request_muc = options.conference_request_muc or "conference.localhost";
		local env = setmetatable({ module = module }, { __index = _G });
		local cfg = assert(loadfile("mod_conference_request/config.lib.lua", "t", env))().read();
		return cfg, logs;
	end

	it("is off by default", function()
		assert.is_nil(read({}).tenant_base);
	end);

	it("takes ours, else Jitsi's, normalized; false turns Jitsi's off", function()
		assert.equal("localhost", read({ conference_request_tenant_base = "LocalHost" }).tenant_base);
		assert.equal("localhost", read({ muc_mapper_domain_base = "localhost" }).tenant_base);
		assert.equal("localhost", read({ conference_request_tenant_base = "localhost",
			muc_mapper_domain_base = "other.org" }).tenant_base);
		assert.is_nil(read({ conference_request_tenant_base = false, muc_mapper_domain_base = "localhost" }).tenant_base);
	end);

	it("refuses a bad base naming the option; Jitsi's with no MUC under it only warns", function()
		for _, v in ipairs({ 42, true, "", "a@b", "example.org" }) do
			assert.has_error(function() read({ conference_request_tenant_base = v }); end);
			local ok, err = pcall(read, { conference_request_tenant_base = v });
			assert.is_false(ok);
			assert.matches("invalid option conference_request_tenant_base", err, 1, true);
		end
		assert.has_error(function() read({ muc_mapper_domain_base = 42 }); end,
			"invalid option muc_mapper_domain_base: expected a host name (string), got number");
		local cfg, logs = read({ muc_mapper_domain_base = "v1.meet.jitsi" });
		assert.is_nil(cfg.tenant_base);
		assert.equal("warn", logs[1][1]);
	end);
end);
