-- Specs of mod_conference_request_s2sout (outgoing s2s to fixed addresses, README "Visitor servers")
-- with Prosody's own net.resolvers.{service,basic,manual}; `module` is a small stand-in. DNS
-- (net.adns) is replaced by a stub that records lookups, so a spec fails if an overridden domain
-- would have been looked up. End to end (three Prosody processes federated on loopback):
-- tests/integration/test_federation.py.
local lookups = {}
local saved, replaced = {}, { "net.adns", "net.resolvers.service", "net.resolvers.basic", "net.resolvers.manual" }
for _, name in ipairs(replaced) do
	saved[name] = package.loaded[name]
	package.loaded[name] = nil
end
package.loaded["net.adns"] = { resolver = function()
	return { lookup = function(_, cb, name, qtype) table.insert(lookups, { name, qtype }); cb({}) end }
end }
local service = require "net.resolvers.service"

local PLUGIN = "mod_conference_request_s2sout/mod_conference_request_s2sout.lua"

local function load_plugin(option)
	local env = { hooks = {}, logs = {}, global = false }
	env.module = {
		host = "*",
		set_global = function() env.global = true end,
		get_option = function(_, name) if name == "conference_request_s2sout" then return env.option end end,
		log = function(_, level, fmt, ...) table.insert(env.logs, { level, fmt:format(...) }) end,
		hook_global = function(_, name, fn) env.hooks[name] = fn end,
	}
	env.option = option
	local chunk = assert(loadfile(PLUGIN, "t", setmetatable({ module = env.module }, { __index = _G })))
	local ok, err = pcall(chunk)
	return ok and env or nil, err
end

-- The first target a resolver yields: conn_type, address, port, extra (nil when none).
local function first_target(resolver)
	local got
	resolver:next(function(...) got = table.pack(...) end)
	return table.unpack(got, 1, 4)
end

describe("mod_conference_request_s2sout", function()
	local original = service.new
	teardown(function() -- other specs get Prosody's own modules back
		for _, name in ipairs(replaced) do package.loaded[name] = saved[name] end
	end)
	local fallthrough
	before_each(function()
		lookups = {}
		fallthrough = {}
		-- what Prosody would do for domains not listed: recorded, no DNS
		service.new = function(hostname, srv, conn_type, extra)
			table.insert(fallthrough, { hostname, srv })
			return { next = function(_, cb) cb(nil) end, original = true, extra = extra, conn_type = conn_type }
		end
		original = service.new
	end)

	it("is a global module", function()
		local env = assert(load_plugin({}))
		assert.is_true(env.global)
		env.module.unload()
	end)

	it("steers a listed domain and its subdomains to the address, without DNS", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "127.0.0.1:21269", ["meet.jitsi"] = "127.0.0.1:20269" }))
		local extra = {}
		for _, host in ipairs({ "v1.meet.jitsi", "focus.v1.meet.jitsi", "conference.V1.meet.jitsi" }) do
			local kind, address, port, x = first_target(service.new(host, "xmpp-server", "tcp", extra))
			assert.same({ "tcp4", "127.0.0.1", 21269 }, { kind, address, port }, host)
			assert.equal(extra, x)
		end
		-- the longest listed suffix wins
		local _, _, port = first_target(service.new("focus.meet.jitsi", "xmpp-server", "tcp", extra))
		assert.equal(20269, port)
		assert.same({}, lookups)
		assert.same({}, fallthrough)
		env.module.unload()
	end)

	it("lets unlisted domains fall through to Prosody's resolver", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "127.0.0.1:21269" }))
		for _, host in ipairs({ "example.com", "meet.jitsi", "xv1.meet.jitsi", "v1.meet.jitsi.example" }) do
			local r = service.new(host, "xmpp-server", "tcp", {})
			assert.is_true(r.original, host)
		end
		assert.equal(4, #fallthrough)
		env.module.unload()
	end)

	it("offers no direct TLS target at the fixed address (the chain goes on to xmpp-server)", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "127.0.0.1:21269" }))
		assert.is_nil(first_target(service.new("v1.meet.jitsi", "xmpps-server", "tcp", {})))
		assert.same({}, fallthrough)
		env.module.unload()
	end)

	it("accepts IPv6 literals and host names (A/AAAA, no SRV)", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "[::1]:5269", ["v2.meet.jitsi"] = "node2.internal:5270" }))
		local kind, address, port = first_target(service.new("v1.meet.jitsi", "xmpp-server", "tcp", {}))
		assert.same({ "tcp6", "::1", 5269 }, { kind, address, port })
		first_target(service.new("v2.meet.jitsi", "xmpp-server", "tcp", {}))
		for _, l in ipairs(lookups) do
			assert.equal("node2.internal", l[1])
			assert.truthy(l[2] == "A" or l[2] == "AAAA")
		end
		assert.equal(2, #lookups)
		env.module.unload()
	end)

	it("restores Prosody's resolver when unloaded", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "127.0.0.1:21269" }))
		assert.are_not.equal(original, service.new)
		env.module.unload()
		assert.equal(original, service.new)
		assert.is_true(service.new("v1.meet.jitsi", "xmpp-server", "tcp", {}).original)
	end)

	it("without the option steers nothing", function()
		local env = assert(load_plugin(nil))
		assert.is_true(service.new("v1.meet.jitsi", "xmpp-server", "tcp", {}).original)
		env.module.unload()
	end)

	it("refuses a bad option at load, naming it", function()
		local bad = {
			{ "not a table", "expected a table" },
			{ { "127.0.0.1:5269" }, "keys must be domains" },
			{ { ["v1.meet.jitsi"] = 5269 }, "must be a string" },
			{ { ["v1.meet.jitsi"] = "127.0.0.1" }, "ADDRESS:PORT" },
			{ { ["v1.meet.jitsi"] = "127.0.0.1:0" }, "port must be 1-65535" },
			{ { ["v1.meet.jitsi"] = "127.0.0.1:70000" }, "port must be 1-65535" },
			{ { ["v1.meet.jitsi"] = "[127.0.0.1]:5269" }, "not an IPv6 address" },
			{ { ["v1.meet.jitsi"] = "bad host!:5269" }, "neither an IP address nor a host name" },
			{ { ["user@v1.meet.jitsi"] = "127.0.0.1:5269" }, "not a domain" },
			{ { [".meet.jitsi"] = "127.0.0.1:5269" }, "not a domain" },
			{ { ["V1.meet.jitsi"] = "127.0.0.1:5269", ["v1.meet.jitsi"] = "127.0.0.1:5270" }, "listed twice" },
		}
		for _, case in ipairs(bad) do
			local env, err = load_plugin(case[1])
			assert.is_nil(env)
			assert.matches("invalid option conference_request_s2sout: ", err, 1, true)
			assert.matches(case[2], err, 1, true)
			assert.equal(original, service.new) -- nothing replaced
		end
	end)

	it("re-reads the option on config reload; a bad value keeps the previous map", function()
		local env = assert(load_plugin({ ["v1.meet.jitsi"] = "127.0.0.1:21269" }))
		env.option = { ["v1.meet.jitsi"] = "127.0.0.1:21270" }
		env.hooks["config-reloaded"]()
		local _, _, port = first_target(service.new("v1.meet.jitsi", "xmpp-server", "tcp", {}))
		assert.equal(21270, port)
		env.option = { ["v1.meet.jitsi"] = "nope" }
		env.hooks["config-reloaded"]()
		assert.equal("error", env.logs[#env.logs][1])
		assert.matches("keeping the previous map", env.logs[#env.logs][2], 1, true)
		_, _, port = first_target(service.new("v1.meet.jitsi", "xmpp-server", "tcp", {}))
		assert.equal(21270, port)
		env.module.unload()
	end)
end)
