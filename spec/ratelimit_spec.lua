-- Specs of ratelimit.lib.lua (issue #9 item 3) and of its option in config.lib.lua, with a clock
-- the specs move, a stand-in for Prosody's usermanager and hosts, and Prosody's own util.cache,
-- util.jid and util.ip. End-to-end behaviour: tests/integration/test_ratelimit.py.

local clock = 1000
local admins = { ["admin@localhost"] = true }

local function load_lib(name, env_extra)
	local saved = { package.loaded["util.time"], package.loaded["core.usermanager"] }
	package.loaded["util.time"] = { monotonic = function() return clock end }
	package.loaded["core.usermanager"] = { is_admin = function(jid) return admins[jid] or false end }
	local env = setmetatable(env_extra, { __index = _G })
	local f = assert(loadfile("mod_conference_request/" .. name .. ".lib.lua", "t", env))
	local lib = f()
	package.loaded["util.time"], package.loaded["core.usermanager"] = saved[1], saved[2]
	return lib
end

local function fake_module(options)
	return {
		host = "focus.localhost",
		get_option = function(_, key, default)
			local v = options and options[key]
			if v == nil then return default end
			return v
		end,
		log = function() end,
	}
end

local prosody = { hosts = {
	["localhost"] = { users = { name = "internal_hashed" } },
	["guest.localhost"] = { users = { name = "anonymous" } },
	["meet.localhost"] = { users = { name = "jitsi-anonymous" } },
} }

local function read_limits(value)
	local options = { conference_request_muc = "conference.localhost", conference_request_rate_limits = value }
	return load_lib("config", { module = fake_module(options) }).read().rate_limits
end

local function limiter(value, focus)
	local cfg = { rate_limits = read_limits(value), focus = focus }
	local counted = { requests = 0, creations = 0 }
	local metrics = { rate_limited = function(kind) counted[kind] = counted[kind] + 1 end }
	local lib = load_lib("ratelimit", { module = fake_module(), prosody = prosody })
	return lib.new(cfg, metrics), counted
end

local function http(ip) return { door = "http", ip = ip } end
local function xmpp(jid, host, ip)
	return { door = "xmpp", jid = jid, origin = { type = "c2s", host = host or "localhost", ip = ip or "192.0.2.9" } }
end

describe("conference_request_rate_limits", function()
	it("has defaults a deployment can live with", function()
		assert.same({ requests = { rate = 20, burst = 200 }, creations = { rate = 0.2, burst = 30 },
			max_clients = 10000, xmpp_by_ip = "anonymous" }, read_limits(nil))
	end)

	it("false turns every limit off; false for one kind turns that one off", function()
		assert.is_false(read_limits(false))
		local l = read_limits({ creations = false, requests_burst = 5 })
		assert.is_false(l.creations)
		assert.same({ rate = 20, burst = 5 }, l.requests)
	end)

	for _, case in ipairs({
		{ "not a table", "fast" }, { "unknown key", { request = 1 } }, { "zero rate", { requests = 0 } },
		{ "rate a word", { creations = "many" } }, { "fractional burst", { requests_burst = 2.5 } },
		{ "zero burst", { creations_burst = 0 } }, { "bad max_clients", { max_clients = -1 } },
		{ "bad xmpp_by_ip", { xmpp_by_ip = "always" } }, { "infinite rate", { requests = math.huge } },
	}) do
		it("refuses to load with " .. case[1], function()
			local ok, err = pcall(read_limits, case[2])
			assert.is_false(ok)
			assert.matches("conference_request_rate_limits", err)
		end)
	end
end)

describe("ratelimit.lib", function()
	before_each(function() clock = 1000 end)

	it("allows a burst, then refuses with the seconds until the next token, then refills", function()
		local rl, counted = limiter({ requests = 0.5, requests_burst = 3 })
		for _ = 1, 3 do assert.is_nil(rl.request(http("192.0.2.1"))) end
		local refused = rl.request(http("192.0.2.1"))
		assert.same("resource-constraint", refused.condition)
		assert.equal(2, refused.retry_after)
		assert.matches("retry in 2 s", refused.text)
		assert.equal(1, counted.requests)
		clock = clock + 2
		assert.is_nil(rl.request(http("192.0.2.1")))
		assert.is_not_nil(rl.request(http("192.0.2.1")))
		clock = clock + 1000 -- refills up to the burst, not beyond
		for _ = 1, 3 do assert.is_nil(rl.request(http("192.0.2.1"))) end
		assert.is_not_nil(rl.request(http("192.0.2.1")))
	end)

	it("counts requests and creations in separate buckets", function()
		local rl, counted = limiter({ requests_burst = 5, creations_burst = 1, creations = 0.01 })
		assert.is_nil(rl.creation(http("192.0.2.1")))
		local refused = rl.creation(http("192.0.2.1"))
		assert.equal(100, refused.retry_after)
		assert.matches("new conferences", refused.text)
		assert.equal(1, counted.creations)
		assert.is_nil(rl.request(http("192.0.2.1")))
	end)

	it("keeps at most max_clients clients per kind; a forgotten one starts with a full bucket", function()
		local rl = limiter({ requests_burst = 1, requests = 0.001, max_clients = 3 })
		for i = 1, 50 do assert.is_nil(rl.request(http("198.51.100." .. i))) end
		local requests = rl.clients()
		assert.equal(3, requests)
		assert.is_not_nil(rl.request(http("198.51.100.50")))
		assert.is_nil(rl.request(http("198.51.100.1")))
	end)

	it("keys HTTP by IP, IPv6 by /64, IPv4-mapped IPv6 as IPv4", function()
		local rl = limiter({ requests_burst = 1, requests = 0.001 })
		assert.is_nil(rl.request(http("2001:db8:1:2::1")))
		assert.is_not_nil(rl.request(http("2001:db8:1:2:ffff::7")))
		assert.is_nil(rl.request(http("2001:db8:1:3::1")))
		assert.is_nil(rl.request(http("203.0.113.5")))
		assert.is_not_nil(rl.request(http("::ffff:203.0.113.5")))
	end)

	it("keys XMPP by bare JID, anonymous sessions by IP (shared with HTTP)", function()
		local rl = limiter({ requests_burst = 1, requests = 0.001 })
		assert.is_nil(rl.request(xmpp("alice@localhost/a", "localhost", "203.0.113.7")))
		assert.is_not_nil(rl.request(xmpp("alice@localhost/b", "localhost", "203.0.113.8")))
		assert.is_nil(rl.request(xmpp("bob@localhost/a", "localhost", "203.0.113.7")))
		assert.is_nil(rl.request(xmpp("x1@guest.localhost/r", "guest.localhost", "203.0.113.9")))
		assert.is_not_nil(rl.request(xmpp("x2@guest.localhost/r", "guest.localhost", "203.0.113.9")))
		assert.is_not_nil(rl.request(http("203.0.113.9")))
		assert.is_nil(rl.request(xmpp("y1@meet.localhost/r", "meet.localhost", "203.0.113.10")))
		assert.is_not_nil(rl.request(xmpp("y2@meet.localhost/r", "meet.localhost", "203.0.113.10")))
	end)

	it("xmpp_by_ip = true keys every c2s session by IP, false always by JID", function()
		local rl = limiter({ requests_burst = 1, requests = 0.001, xmpp_by_ip = true })
		assert.is_nil(rl.request(xmpp("alice@localhost/a", "localhost", "203.0.113.7")))
		assert.is_not_nil(rl.request(xmpp("bob@localhost/a", "localhost", "203.0.113.7")))
		rl = limiter({ requests_burst = 1, requests = 0.001, xmpp_by_ip = false })
		assert.is_nil(rl.request(xmpp("x1@guest.localhost/r", "guest.localhost", "203.0.113.9")))
		assert.is_nil(rl.request(xmpp("x2@guest.localhost/r", "guest.localhost", "203.0.113.9")))
	end)

	it("never refuses admins or the external focus; HTTP has no such exemption", function()
		local rl = limiter({ requests_burst = 1, requests = 0.001, creations_burst = 1, creations = 0.001 },
			"focus@auth.localhost")
		for _ = 1, 5 do
			assert.is_nil(rl.request(xmpp("admin@localhost/x")))
			assert.is_nil(rl.creation(xmpp("admin@localhost/x")))
			assert.is_nil(rl.request({ door = "xmpp", jid = "focus@auth.localhost/f", origin = { type = "s2sin" } }))
			assert.is_nil(rl.creation({ door = "xmpp", jid = "focus@auth.localhost/f", origin = { type = "s2sin" } }))
		end
		assert.is_nil(rl.request(http("127.0.0.1")))
		assert.is_not_nil(rl.request(http("127.0.0.1")))
	end)

	it("has no checks at all when the limits are off", function()
		local rl = limiter(false)
		assert.is_nil(rl.request)
		assert.is_nil(rl.creation)
		rl = limiter({ creations = false })
		assert.is_not_nil(rl.request)
		assert.is_nil(rl.creation)
	end)
end)

describe("service.lib and ratelimit.lib", function()
	local function service_with(ratelimit, logs)
		local module = fake_module()
		module.log = function(_, level, fmt, ...) table.insert(logs, { level, fmt:format(...) }) end
		local lib = load_lib("service", { module = module })
		return lib.new({ muc_hosts = {} }, {}, { request = function() end }, {}, ratelimit)
	end

	it("lets a request through, and logs, when the rate limit check raises", function()
		local logs = {}
		local service = service_with({ request = function() error("boom") end }, logs)
		assert.is_nil(service.limit_request({ door = "xmpp", jid = "a@b/c" }))
		assert.equal("error", logs[1][1])
		assert.matches("boom", logs[1][2])
	end)

	it("hands the creation check to the focus through the requester", function()
		local creation = function() end
		local seen
		local service = service_with({ creation = creation }, {})
		service.handle({ room = 5 }, { door = "xmpp" }, function() end)
		local requester = { door = "http" }
		service.handle({ room = "r@conference.localhost" }, requester, function() seen = true end)
		assert.equal(creation, requester.creation_limited)
		assert.is_true(seen)
	end)
end)
