-- legacy_outsiders.lib: the bounded summary the legacy door keeps of presence sent to a bare room
-- by outsiders (one show, one truncated status, entry cap, byte budget, dropped at session end).

local st = require "util.stanza";

local function load(opts)
	local hooks = {};
	local module = {
		context = function(_, host)
			return { hook = function(_, name, fn) hooks[host .. " " .. name] = fn; end };
		end,
	};
	_G.prosody = { hosts = { localhost = {} } };
	local env = setmetatable({ module = module, prosody = _G.prosody }, { __index = _G });
	local lib = assert(loadfile("mod_conference_request/legacy_outsiders.lib.lua", "t", env))();
	local o = lib.new(opts or { max_outsiders = 10000, outsiders_budget = 1048576, max_status = 1023 });
	return o, hooks, lib;
end

local function presence(children)
	local p = st.presence({ from = "a@localhost/r", to = "room@conference.localhost" });
	for _, c in ipairs(children) do
		p:tag(c[1], c[3]):text(c[2]):up();
	end
	return p;
end

local session = { type = "c2s", host = "localhost" };

describe("legacy_outsiders.lib", function()
	it("keeps the first show if valid and the first status, cut at a character boundary", function()
		local o = load({ max_outsiders = 10, outsiders_budget = 100000, max_status = 5 });
		o.remember(session, "a@localhost/r", "room@c", presence({ { "show", "away" }, { "show", "dnd" },
			{ "status", "h\195\169llo" }, { "status", "second" } }));
		assert.same({ show = "away", status = "h\195\169ll" }, { show = o.get("a@localhost/r", "room@c").show,
			status = o.get("a@localhost/r", "room@c").status });
		o.remember(session, "a@localhost/r", "room@c", presence({ { "show", "bogus" }, { "show", "away" },
			{ "status", "abcd\195\169" } }));
		local e = o.get("a@localhost/r", "room@c");
		assert.is_nil(e.show);
		assert.equal("abcd", e.status); -- 5 bytes would split the é
	end);

	it("ignores other namespaces, keeps nothing for a presence without show or status", function()
		local o = load();
		o.remember(session, "a@localhost/r", "room@c", presence({ { "status", "x", { xmlns = "urn:other" } },
			{ "priority", "5" } }));
		assert.is_nil(o.get("a@localhost/r", "room@c"));
		assert.equal(0, select(2, o.stats()));
	end);

	it("never keeps more than one show and one status, whatever the presence holds", function()
		local o = load();
		local children = {};
		for i = 1, 30000 do children[i] = { "show", "chat" }; end
		children[#children + 1] = { "status", string.rep("x", 100000) };
		o.remember(session, "a@localhost/r", "room@c", presence(children));
		local count, bytes = o.stats();
		assert.equal(1, count);
		assert.is_true(bytes < 1023 + 200 + 64);
	end);

	it("caps the entries and the bytes, least recently set first", function()
		local o = load({ max_outsiders = 3, outsiders_budget = 100000, max_status = 1023 });
		for i = 1, 5 do o.remember(nil, "a@localhost/" .. i, "room@c", presence({ { "status", "s" .. i } })); end
		assert.equal(3, (o.stats()));
		assert.is_nil(o.get("a@localhost/2", "room@c"));
		assert.equal("s5", o.get("a@localhost/5", "room@c").status);

		o = load({ max_outsiders = 100, outsiders_budget = 2048, max_status = 1023 });
		for i = 1, 4 do
			o.remember(nil, "a@localhost/" .. i, "room@c", presence({ { "status", string.rep("y", 600) } }));
		end
		local count, bytes = o.stats();
		assert.is_true(bytes <= 2048);
		assert.equal(2, count);
		assert.is_nil(o.get("a@localhost/2", "room@c"));
		assert.is_not_nil(o.get("a@localhost/4", "room@c"));
		-- an unavailable presence (forget) gives its bytes back
		o.forget("a@localhost/4", "room@c");
		assert.equal(1, (o.stats()));
	end);

	it("drops a session's entries when the session ends, not another session's", function()
		local o, hooks = load();
		local other = { type = "c2s", host = "localhost" };
		o.remember(session, "a@localhost/r", "room1@c", presence({ { "show", "xa" } }));
		o.remember(session, "a@localhost/r", "room2@c", presence({ { "show", "xa" } }));
		o.remember(other, "a@localhost/s", "room1@c", presence({ { "show", "dnd" } }));
		local unbind = hooks["localhost resource-unbind"];
		assert.is_function(unbind);
		unbind({ session = session });
		assert.is_nil(o.get("a@localhost/r", "room1@c"));
		assert.is_nil(o.get("a@localhost/r", "room2@c"));
		assert.equal("dnd", o.get("a@localhost/s", "room1@c").show);
		local count, bytes = o.stats();
		assert.equal(1, count);
		assert.is_true(bytes > 0);
		unbind({ session = other });
		assert.same({ 0, 0 }, { o.stats() });
	end);
end);

describe("legacy.lib options of the outsider cache", function()
	local function read(options)
		local module = {
			get_option = function(_, key, default)
				local v = options[key];
				if v == nil then return default; end
				return v;
			end,
		};
		local env = setmetatable({ module = module }, { __index = _G });
		local lib = assert(loadfile("mod_conference_request/legacy.lib.lua", "t", env))();
		return lib.read_options();
	end

	it("has the documented defaults", function()
		local o = read({});
		assert.equal(10000, o.max_outsiders);
		assert.equal(1023, o.max_status);
		assert.equal(1048576, o.outsiders_budget);
	end);

	it("refuses bad values, naming the option", function()
		for name, bad in pairs({
			conference_request_legacy_max_status = -1,
			conference_request_legacy_outsiders_budget = 100,
			conference_request_legacy_max_outsiders = 0,
		}) do
			local ok, err = pcall(read, { [name] = bad });
			assert.is_false(ok);
			assert.truthy(tostring(err):find("invalid option " .. name, 1, true), err);
		end
		assert.equal(0, read({ conference_request_legacy_max_status = 0 }).max_status);
	end);
end);
