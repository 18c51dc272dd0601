-- mod_conference_request_s2sout: outgoing s2s connections to configured domains go to fixed
-- addresses instead of DNS (README "Visitor servers"; the idea of Jitsi's mod_s2sout_override).
-- A main server and its visitor nodes federate on one machine or a private network without
-- DNS records, /etc/hosts or any other system file.
--
--   modules_enabled = { …; "s2s"; "dialback"; "conference_request_s2sout" }
--   conference_request_s2sout = {
--       ["v1.meet.jitsi"] = "127.0.0.1:21269";   -- v1.meet.jitsi and every subdomain of it
--       ["v2.meet.jitsi"] = "[::1]:22269";
--   }
--
-- A key is a domain; it also covers that domain's subdomains (focus.v1.meet.jitsi,
-- conference.v1.meet.jitsi …): the longest listed suffix of a destination wins. A value is
-- "ADDRESS:PORT" where ADDRESS is an IPv4 literal, a bracketed IPv6 literal or a host name
-- (resolved by A/AAAA lookups, no SRV). Domains not listed are resolved by Prosody as before.
-- Global module (loaded once): mod_s2s looks up `new` on the shared net.resolvers.service table
-- each time it opens a connection (mod_s2s.lua route_to_new_session), so replacing that field
-- steers every host's outgoing s2s; unloading the module puts the original back.
-- The option is read at load (a bad value refuses the load, naming the option) and again on
-- `prosodyctl reload` (a bad value then keeps the previous map and is logged as an error).
module:set_global();

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";
local manual = require "net.resolvers.manual";
local inet_pton = require "util.net".pton;
local jid = require "util.jid";

local OPTION = "conference_request_s2sout";

local function fail(fmt, ...)
	error(("invalid option %s: " .. fmt):format(OPTION, ...), 0);
end

-- "ADDRESS:PORT" → address, port (numbers 1-65535); errors name the key.
local function parse_target(key, value)
	if type(value) ~= "string" then
		fail("[%q] must be a string \"ADDRESS:PORT\", got %s", key, type(value));
	end
	local address, port = value:match("^%[([^%]]+)%]:(%d+)$");
	if address then
		if not inet_pton(address) or #inet_pton(address) ~= 16 then
			fail("[%q] = %q: %s is not an IPv6 address", key, value, address);
		end
		address = "[" .. address .. "]";
	else
		address, port = value:match("^([^:%[%]]+):(%d+)$");
		if not address then
			fail("[%q] = %q: expected \"ADDRESS:PORT\" (e.g. \"127.0.0.1:5269\", \"[::1]:5269\")", key, value);
		end
		if not address:find("^[%w][%w.-]*$") then
			fail("[%q] = %q: %s is neither an IP address nor a host name", key, value, address);
		end
	end
	port = tonumber(port);
	if not port or port < 1 or port > 65535 or math.floor(port) ~= port then
		fail("[%q] = %q: the port must be 1-65535", key, value);
	end
	return { address = address, port = math.tointeger(port), text = value };
end

-- The option's table → { [domain] = target }.
local function read_map(value)
	if value == nil then return {}; end
	if type(value) ~= "table" then
		fail("expected a table { [\"domain\"] = \"ADDRESS:PORT\" }, got %s", type(value));
	end
	local map = {};
	for key, target in pairs(value) do
		if type(key) ~= "string" then
			fail("keys must be domains (strings), got %s %s", type(key), tostring(key));
		end
		local domain = jid.prep(key);
		if not domain or jid.node(domain) or jid.resource(domain) or domain:find("^%.") or domain:find("%.$") then
			fail("key %q is not a domain", key);
		end
		if map[domain] then fail("domain %s is listed twice", domain); end
		map[domain] = parse_target(key, target);
	end
	return map;
end

local map = read_map(module:get_option(OPTION));

-- The target for a destination domain: itself, then each parent domain (longest suffix first).
local function target_for(hostname)
	local domain = type(hostname) == "string" and hostname:lower() or nil;
	while domain do
		local target = map[domain];
		if target then return target, domain; end
		domain = domain:match("^[^.]*%.(.+)$");
	end
	return nil;
end

local original_new = service.new;

local function new(hostname, service_name, conn_type, extra)
	local target, key = target_for(hostname);
	if not target then
		return original_new(hostname, service_name, conn_type, extra);
	end
	if service_name ~= "xmpp-server" then
		-- direct TLS (xmpps-server, tried first when s2s_direct_tls_ports is set) is not offered at
		-- the fixed address: no target, so the chain goes on to the plain one
		return manual.new({}, conn_type, extra);
	end
	module:log("debug", "s2s to %s: %s (%s = %s)", hostname, target.text, key, target.text);
	return basic.new(target.address, target.port, conn_type, extra);
end

service.new = new;

local function describe()
	local keys = {};
	for domain in pairs(map) do keys[#keys + 1] = domain; end
	table.sort(keys);
	for i, domain in ipairs(keys) do keys[i] = domain .. " → " .. map[domain].text; end
	return #keys > 0 and table.concat(keys, ", ") or "(none)";
end
module:log("info", "outgoing s2s steered for: %s", describe());

module:hook_global("config-reloaded", function()
	local ok, fresh = pcall(read_map, module:get_option(OPTION));
	if not ok then
		module:log("error", "%s; keeping the previous map", fresh);
		return;
	end
	map = fresh;
	module:log("info", "outgoing s2s steered for: %s", describe());
end);

function module.unload()
	if service.new == new then
		service.new = original_new;
	else
		module:log("warn", "net.resolvers.service.new was replaced after this module loaded: left as it is");
	end
end
