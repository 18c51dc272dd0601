-- Lua-level specs of mod_conference_request's pure libraries (config.lib, service.lib), loaded
-- with a minimal stand-in for Prosody's `module` object. The end-to-end behaviour is covered by
-- tests/integration against a real Prosody; these pin the option validation and the exactly-once
-- answer of the request flow.

local function load_lib(name, options, logs)
	local module = {
		host = "focus.localhost",
		get_option = function(_, key, default)
			local v = options[key];
			if v == nil then return default; end
			return v;
		end,
		log = function(_, level, fmt, ...)
			table.insert(logs or {}, { level = level, text = fmt:format(...) });
		end,
	};
	local env = setmetatable({ module = module }, { __index = _G });
	local f = assert(loadfile("mod_conference_request/" .. name .. ".lib.lua", "t", env));
	return f();
end

local function read_config(options)
	return load_lib("config", options).read();
end

describe("config.lib", function()
	it("applies the documented defaults", function()
		local cfg = read_config({ conference_request_muc = "Conference.LocalHost" });
		assert.equal("conference.localhost", cfg.muc);
		assert.same({ ["conference.localhost"] = true }, cfg.muc_hosts);
		assert.is_nil(cfg.focus);
		assert.equal("focus.localhost", cfg.focus_jid);
		assert.equal(10, cfg.ready_wait);
		assert.equal(60, cfg.empty_room_timeout);
		assert.is_true(cfg.http);
		assert.same({ "*" }, cfg.http_cors);
		assert.is_true(cfg.http_cors_any);
		assert.equal(7200, cfg.http_cors_max_age);
		assert.equal(16384, cfg.max_body);
		assert.is_false(cfg.sip_gateway);
		assert.is_true(cfg.legacy);
		assert.same({}, cfg.extra_properties);
		assert.same({}, cfg.limits);
		assert.equal(100000, cfg.max_rooms);
		assert.equal(10000, cfg.max_waiters_per_room);
		assert.equal(100000, cfg.max_waiters);
	end);

	it("reads non-default values", function()
		local cfg = read_config({
			conference_request_muc = "conference.localhost",
			conference_request_extra_mucs = { "Breakout.localhost" },
			conference_request_focus = "Focus@Auth.localhost",
			conference_request_http_cors = { "https://a.example" },
			conference_request_extra_properties = { region = "eu", n = 1, b = true },
			conference_request_limits = { max_properties = 8 },
			conference_request_max_body = 1000,
			conference_request_http = false,
		});
		assert.is_true(cfg.muc_hosts["breakout.localhost"]);
		assert.equal("focus@auth.localhost", cfg.focus);
		assert.is_false(cfg.http_cors_any);
		assert.is_true(cfg.http_cors_set["https://a.example"]);
		assert.same({ region = "eu", n = "1", b = "true" }, cfg.extra_properties);
		assert.same({ max_properties = 8 }, cfg.limits);
		assert.equal(1000, cfg.max_body);
		assert.is_false(cfg.http);
	end);

	local bad = {
		{ "missing muc", {}, "conference_request_muc" },
		{ "muc with a node", { conference_request_muc = "a@conference.localhost" }, "conference_request_muc" },
		{ "muc not a string", { conference_request_muc = 5 }, "conference_request_muc" },
		{ "extra muc with resource", { conference_request_extra_mucs = { "b.localhost/x" } }, "conference_request_extra_mucs" },
		{ "focus with resource", { conference_request_focus = "focus@auth.localhost/r" }, "conference_request_focus" },
		{ "focus_jid invalid", { conference_request_focus_jid = "a@b@c" }, "conference_request_focus_jid" },
		{ "negative max_body", { conference_request_max_body = -1 }, "conference_request_max_body" },
		{ "fractional max_body", { conference_request_max_body = 1.5 }, "conference_request_max_body" },
		{ "max_body a word", { conference_request_max_body = "big" }, "conference_request_max_body" },
		{ "zero timeout", { conference_request_empty_room_timeout = 0 }, "conference_request_empty_room_timeout" },
		{ "cors a number", { conference_request_http_cors = 5 }, "conference_request_http_cors" },
		{ "cors with a table item", { conference_request_http_cors = { {} } }, "conference_request_http_cors" },
		{ "http not a boolean", { conference_request_http = "maybe" }, "conference_request_http" },
		{ "extra property table value", { conference_request_extra_properties = { x = {} } },
			"conference_request_extra_properties" },
		{ "unknown limit", { conference_request_limits = { max_rooms = 1 } }, "conference_request_limits" },
		{ "zero limit", { conference_request_limits = { max_token = 0 } }, "conference_request_limits" },
		{ "zero max_rooms", { conference_request_max_rooms = 0 }, "conference_request_max_rooms" },
	};
	for _, case in ipairs(bad) do
		it("refuses " .. case[1] .. " with an error naming the option", function()
			local options = { conference_request_muc = "conference.localhost" };
			for k, v in pairs(case[2]) do options[k] = v; end
			if case[1] == "missing muc" then options.conference_request_muc = nil; end
			local ok, err = pcall(read_config, options);
			assert.is_false(ok);
			assert.matches("invalid option " .. case[3]:gsub("%-", "%%-"), err);
		end);
	end
end);

describe("service.lib", function()
	local cfg = { muc = "conference.localhost", muc_hosts = { ["conference.localhost"] = true, ["breakout.localhost"] = true } };
	local counted;
	local metrics = { request = function(door, outcome, condition) table.insert(counted, { door, outcome, condition }); end };

	local ready = {};
	local registry = { state = function(_, room)
		assert(type(room) == "string", "the native registry raises on a room that is not a string");
		return ready[room] and "ready" or "absent";
	end };

	local function service_with(focus)
		counted = {};
		return load_lib("service", {}, {}).new(cfg, focus, metrics, registry);
	end

	local function collect(service, request)
		local answers = {};
		service.handle(request, { door = "xmpp", jid = "alice@localhost/x" }, function(result)
			table.insert(answers, result);
		end);
		return answers;
	end

	it("normalizes the room before the focus sees it", function()
		local seen;
		local service = service_with({ request = function(room, host, _, _, respond)
			seen = { room, host };
			respond({ room = room, ready = true, focus_jid = "focus.localhost" });
		end });
		local answers = collect(service, { room = "Room1@Conference.LocalHost" });
		assert.same({ "room1@conference.localhost", "conference.localhost" }, seen);
		assert.equal(1, #answers);
		assert.same({ { "xmpp", "ready" } }, counted);
	end);

	it("hands a room that is ready under exactly this key to the focus as it stands", function()
		ready["room2@conference.localhost"] = true;
		local seen = {};
		local service = service_with({ request = function(room, host, _, _, respond)
			table.insert(seen, { room, host or "no host" });
			respond({ room = room, ready = true, focus_jid = "focus.localhost" });
		end });
		collect(service, { room = "room2@conference.localhost" });
		-- any other spelling of the same room is normalized first
		collect(service, { room = "Room2@conference.localhost" });
		ready["room2@conference.localhost"] = nil;
		assert.same({ { "room2@conference.localhost", "no host" },
			{ "room2@conference.localhost", "conference.localhost" } }, seen);
		assert.same({ { "xmpp", "ready" }, { "xmpp", "ready" } }, counted);
	end);

	local rooms = {
		{ "r x@conference.localhost", "jid-malformed" },
		{ "conference.localhost", "jid-malformed" },
		{ "r@conference.localhost/res", "jid-malformed" },
		{ "r@elsewhere.localhost", "item-not-found" },
		{ "", "bad-request" },
		{ nil, "bad-request" },
	};
	for _, case in ipairs(rooms) do
		it(("answers %s for room %q without asking the focus"):format(case[2], case[1]), function()
			local service = service_with({ request = function() error("focus must not be asked"); end });
			local answers = collect(service, { room = case[1] });
			assert.equal(1, #answers);
			assert.equal(case[2], answers[1].condition);
			assert.truthy(answers[1].text and #answers[1].text > 0);
		end);
	end

	it("turns a Lua error in the flow into exactly one internal-server-error", function()
		local service = service_with({ request = function() error("boom"); end });
		local answers = collect(service, { room = "r@conference.localhost" });
		assert.equal(1, #answers);
		assert.equal("internal-server-error", answers[1].condition);
		assert.same({ { "xmpp", "error", "internal-server-error" } }, counted);
	end);

	it("answers once even when the focus responds twice or errors after responding", function()
		local service = service_with({ request = function(room, _, _, _, respond)
			respond({ room = room, ready = true, focus_jid = "f" });
			respond({ room = room, ready = false, focus_jid = "f" });
			error("late failure");
		end });
		local answers = collect(service, { room = "r@conference.localhost" });
		assert.equal(1, #answers);
		assert.is_true(answers[1].ready);
	end);

	it("lets the focus answer later (async-ready)", function()
		local later;
		local service = service_with({ request = function(room, _, _, _, respond)
			later = function() respond({ room = room, ready = true, focus_jid = "f" }); end
		end });
		local answers = collect(service, { room = "r@conference.localhost" });
		assert.equal(0, #answers);
		later();
		assert.equal(1, #answers);
	end);
end);
