-- config.lib.lua: reads and validates every option of mod_conference_request (README "Configuration").
-- A bad value raises an error naming the option: the module then refuses to load and Prosody
-- logs why. Prosody 0.12 has no get_option_integer/enum, so ranges and types are checked here.

local jid = require "util.jid";

local function fail(name, fmt, ...)
	error(("invalid option %s: " .. fmt):format(name, ...), 0);
end

local function host_name(name, value)
	if type(value) ~= "string" or value == "" then
		fail(name, "expected a host name (string), got %s", type(value));
	end
	local node, host, resource = jid.prepped_split(value);
	if node or resource or not host then
		fail(name, "%q is not a bare host name", value);
	end
	return host;
end

local function number_option(name, default, min, integer)
	local value = module:get_option(name, default);
	if type(value) == "string" then value = tonumber(value) or value; end
	if type(value) ~= "number" or value ~= value or value < min or value == math.huge
	or (integer and math.type(value) ~= "integer" and value ~= math.floor(value)) then
		fail(name, "expected a %s ≥ %s, got %s", integer and "whole number" or "number", tostring(min), tostring(value));
	end
	if integer then value = math.tointeger(value); end
	return value;
end

local function boolean_option(name, default)
	local value = module:get_option(name, default);
	if value == "true" or value == 1 then return true; end
	if value == "false" or value == 0 then return false; end
	if type(value) ~= "boolean" then
		fail(name, "expected true or false, got %s", tostring(value));
	end
	return value;
end

local function string_list(name, default)
	local value = module:get_option(name, default);
	if type(value) == "string" then value = { value }; end
	if type(value) ~= "table" then fail(name, "expected a list of strings, got %s", type(value)); end
	local list = {};
	for i, item in ipairs(value) do
		if type(item) ~= "string" or item == "" then
			fail(name, "item %d is not a non-empty string", i);
		end
		list[i] = item;
	end
	for k in pairs(value) do
		if math.type(k) ~= "integer" or k < 1 or k > #list then
			fail(name, "expected a list, found key %s", tostring(k));
		end
	end
	return list;
end

local function read_file(name, path)
	if type(path) ~= "string" or path == "" then
		fail(name, "expected a file path, got %s", tostring(path));
	end
	local f, why = io.open(path, "rb");
	local text = f and f:read("a");
	if f then f:close(); end
	if not text or text == "" then
		fail(name, "cannot read %s: %s", path, why or "empty file");
	end
	return text;
end

-- conference_request_auth and its options (docs/protocol.md §5); auth.lib does the rest.
local function read_auth(cfg)
	local a = {};
	local mode = module:get_option("conference_request_auth", "none");
	if mode ~= "none" and mode ~= "xmpp" and mode ~= "jwt" then
		fail("conference_request_auth", "expected \"none\", \"xmpp\" or \"jwt\", got %s", tostring(mode));
	end
	a.mode = mode;
	a.lifetime = number_option("conference_request_auth_lifetime", 86400, 0);
	if a.lifetime <= 0 then fail("conference_request_auth_lifetime", "must be > 0 seconds"); end
	a.max_sessions = number_option("conference_request_auth_max_sessions", 100000, 1, true);
	a.max_jids = number_option("conference_request_auth_max_jids", 100000, 1, true);
	if mode == "xmpp" then
		local domain = module:get_option("conference_request_auth_domain");
		if domain == nil then
			fail("conference_request_auth_domain", "required with conference_request_auth = \"xmpp\" (the host of authenticated users)");
		end
		a.domain = host_name("conference_request_auth_domain", domain);
	elseif mode == "jwt" then
		local secret = module:get_option("conference_request_jwt_secret");
		local secret_file = module:get_option("conference_request_jwt_secret_file");
		if secret ~= nil and secret_file ~= nil then
			fail("conference_request_jwt_secret", "set either it or conference_request_jwt_secret_file, not both");
		end
		if secret ~= nil and (type(secret) ~= "string" or secret == "") then
			fail("conference_request_jwt_secret", "expected a non-empty string");
		end
		if secret_file ~= nil then
			secret = read_file("conference_request_jwt_secret_file", secret_file):gsub("\r?\n$", "");
		end
		local keys = module:get_option("conference_request_jwt_public_keys", {});
		if type(keys) ~= "table" then
			fail("conference_request_jwt_public_keys", "expected a table key id -> PEM file path, got %s", type(keys));
		end
		local public_keys, n = {}, 0;
		for kid, path in pairs(keys) do
			if type(kid) ~= "string" or kid == "" then
				fail("conference_request_jwt_public_keys", "key ids must be non-empty strings, got %s", tostring(kid));
			end
			public_keys[kid] = read_file("conference_request_jwt_public_keys", path);
			n = n + 1;
		end
		if not secret and n == 0 then
			fail("conference_request_auth", "\"jwt\" needs conference_request_jwt_secret(_file) or conference_request_jwt_public_keys");
		end
		local domain = module:get_option("conference_request_jwt_domain", cfg.muc:match("^[^.]+%.(.+)$") or cfg.muc);
		a.jwt = {
			hs256_secret = secret,
			public_keys = n > 0 and public_keys or nil,
			issuers = string_list("conference_request_jwt_issuers", {}),
			audiences = string_list("conference_request_jwt_audiences", {}),
			domain = host_name("conference_request_jwt_domain", domain),
			leeway = number_option("conference_request_jwt_leeway", 0, 0),
		};
		if cfg.limits.max_token then a.jwt.max_token = cfg.limits.max_token; end
	end
	return a;
end

-- conference_request_visitors (docs/protocol.md §6, visitors.lib). nil when the option is absent.
local visitors_keys = { enabled = true, nodes = true, max_participants = true, pending_window = true,
	enable_live_room = true, require_room_flag = true, ignore_domains = true, node_timeout = true };
local node_keys = { id = true, focus_jid = true, weight = true, capacity = true, jid = true, muc = true, reports = true };
local function read_visitors(cfg)
	local name = "conference_request_visitors";
	local value = module:get_option(name);
	if value == nil then return nil; end
	if type(value) ~= "table" then fail(name, "expected a table, got %s", type(value)); end
	for k in pairs(value) do
		if not visitors_keys[k] then
			fail(name, "unknown key %s (known: enabled, nodes, max_participants, pending_window, enable_live_room, "
				.. "require_room_flag, ignore_domains, node_timeout)", tostring(k));
		end
	end
	local v = {};
	local function flag(k, default)
		local x = value[k];
		if x == nil then return default; end
		if type(x) ~= "boolean" then fail(name, "%s must be true or false, got %s", k, tostring(x)); end
		return x;
	end
	local function num(k, default, min, whole)
		local x = value[k];
		if x == nil then return default; end
		if type(x) ~= "number" or x ~= x or x < min or x == math.huge or (whole and x ~= math.floor(x)) then
			fail(name, "%s must be a %s ≥ %s, got %s", k, whole and "whole number" or "number", tostring(min), tostring(x));
		end
		return whole and math.tointeger(x) or x;
	end
	v.enabled = flag("enabled", false);
	v.enable_live_room = flag("enable_live_room", false);
	v.require_room_flag = flag("require_room_flag", false);
	v.max_participants = num("max_participants", 50, 1, true);
	v.pending_window = num("pending_window", 60, 0);
	-- reports from the nodes (docs/protocol.md §6.2, vnode_main.lib): older than this = unhealthy
	v.node_timeout = num("node_timeout", 30, 0);
	if v.node_timeout <= 0 then fail(name, "node_timeout must be > 0 seconds, got %s", tostring(v.node_timeout)); end
	local domains = value.ignore_domains or {};
	if type(domains) ~= "table" then fail(name, "ignore_domains must be a list of domains, got %s", type(domains)); end
	v.ignore_domains = {};
	for i, d in ipairs(domains) do
		v.ignore_domains[i] = host_name(name .. ".ignore_domains", d);
	end
	local nodes = value.nodes or {};
	if type(nodes) ~= "table" then fail(name, "nodes must be a list of { id, focus_jid, weight, capacity }, got %s", type(nodes)); end
	v.nodes = {};
	local seen, seen_jid = {}, {};
	for i, node in ipairs(nodes) do
		if type(node) ~= "table" then fail(name, "nodes[%d] must be a table, got %s", i, type(node)); end
		for k in pairs(node) do
			if not node_keys[k] then
				fail(name, "nodes[%d]: unknown key %s (known: id, focus_jid, weight, capacity, jid, muc, reports)", i, tostring(k));
			end
		end
		local id = node.id;
		if type(id) ~= "string" or not id:match("^[%w._-]+$") or #id > 64 then
			fail(name, "nodes[%d].id must be a name of letters, digits, '.', '_' or '-' (at most 64), got %s", i, tostring(id));
		end
		if seen[id] then fail(name, "nodes[%d].id %q is used twice", i, id); end
		seen[id] = true;
		local fj = node.focus_jid;
		if type(fj) ~= "string" or not jid.prep(fj) or jid.resource(fj) or not jid.node(fj) then
			fail(name, "nodes[%d].focus_jid must be a bare JID such as focus@%s.meet.jitsi, got %s", i, id, tostring(fj));
		end
		local weight = node.weight == nil and 1 or node.weight;
		if type(weight) ~= "number" or weight ~= weight or weight <= 0 or weight == math.huge then
			fail(name, "nodes[%d].weight must be a number > 0, got %s", i, tostring(weight));
		end
		local capacity = node.capacity == nil and 500 or node.capacity;
		if type(capacity) ~= "number" or capacity ~= capacity or capacity == math.huge or capacity < 1
		or capacity ~= math.floor(capacity) then
			fail(name, "nodes[%d].capacity must be a whole number ≥ 1, got %s", i, tostring(capacity));
		end
		v.nodes[i] = { id = id, focus_jid = jid.prep(fj), weight = weight, capacity = math.tointeger(capacity) };
		-- the report protocol (docs/protocol.md §6.2): who reports for the node, its MUC, whether it reports
		local reports = node.reports;
		if reports == nil then reports = true; end
		if type(reports) ~= "boolean" then fail(name, "nodes[%d].reports must be true or false, got %s", i, tostring(reports)); end
		local reporter = node.jid;
		if reporter == nil then reporter = jid.host(v.nodes[i].focus_jid); end
		if type(reporter) ~= "string" or not jid.prep(reporter) or jid.resource(reporter) then
			fail(name, "nodes[%d].jid must be a bare JID or a host (the node's conference_request host), got %s", i, tostring(reporter));
		end
		reporter = jid.prep(reporter);
		if reports then
			if seen_jid[reporter] then
				fail(name, "nodes[%d].jid %s reports for node %s already", i, reporter, seen_jid[reporter]);
			end
			seen_jid[reporter] = id;
		end
		local node_muc = node.muc;
		if node_muc ~= nil then node_muc = host_name(("%s.nodes[%d].muc"):format(name, i), node_muc); end
		v.nodes[i].jid, v.nodes[i].muc, v.nodes[i].reports = reporter, node_muc, reports;
	end
	for k in pairs(nodes) do
		if math.type(k) ~= "integer" or k < 1 or k > #v.nodes then fail(name, "nodes must be a list, found key %s", tostring(k)); end
	end
	if v.enabled and not cfg.focus and #v.nodes == 0 then
		fail(name, "enabled with the built-in focus needs at least one node in nodes");
	end
	return v;
end

-- Codec limits an operator may lower or raise (native README, native.codec).
local limit_names = {
	"max_room", "max_jid_part", "max_properties", "max_property_name", "max_property_value",
	"max_token", "max_id", "max_xml_depth", "max_json_depth",
};

local function read()
	local cfg = {};

	local muc = module:get_option("conference_request_muc");
	if muc == nil then
		fail("conference_request_muc", "required (the MUC component whose rooms this module serves)");
	end
	cfg.muc = host_name("conference_request_muc", muc);
	cfg.extra_mucs = {};
	cfg.muc_hosts = { [cfg.muc] = true };
	for _, h in ipairs(string_list("conference_request_extra_mucs", {})) do
		h = host_name("conference_request_extra_mucs", h);
		cfg.muc_hosts[h] = true;
		table.insert(cfg.extra_mucs, h);
	end

	local focus = module:get_option("conference_request_focus");
	if focus ~= nil then
		if type(focus) ~= "string" or not jid.prep(focus) or jid.resource(focus) then
			fail("conference_request_focus", "expected a bare JID such as focus@auth.example.com, got %s", tostring(focus));
		end
		focus = jid.prep(focus);
	end
	cfg.focus = focus;

	local focus_jid = module:get_option("conference_request_focus_jid", module.host);
	if type(focus_jid) ~= "string" or not jid.prep(focus_jid) or jid.resource(focus_jid) then
		fail("conference_request_focus_jid", "expected a bare JID, got %s", tostring(focus_jid));
	end
	cfg.focus_jid = jid.prep(focus_jid);

	cfg.ready_wait = number_option("conference_request_ready_wait", 10, 0);
	cfg.empty_room_timeout = number_option("conference_request_empty_room_timeout", 60, 0);
	if cfg.empty_room_timeout <= 0 then
		fail("conference_request_empty_room_timeout", "must be > 0 seconds, got %s", tostring(cfg.empty_room_timeout));
	end

	cfg.http = boolean_option("conference_request_http", true);
	cfg.http_cors = string_list("conference_request_http_cors", { "*" });
	cfg.http_cors_any = false;
	cfg.http_cors_set = {};
	for _, origin in ipairs(cfg.http_cors) do
		if origin == "*" then cfg.http_cors_any = true; end
		cfg.http_cors_set[origin] = true;
	end
	cfg.http_cors_max_age = number_option("conference_request_http_cors_max_age", 7200, 0, true);
	cfg.max_body = number_option("conference_request_max_body", 16384, 1, true);

	cfg.sip_gateway = boolean_option("conference_request_sip_gateway", false);
	cfg.legacy = boolean_option("conference_request_legacy", true);

	local extra = module:get_option("conference_request_extra_properties", {});
	if type(extra) ~= "table" then
		fail("conference_request_extra_properties", "expected a table name → string, got %s", type(extra));
	end
	cfg.extra_properties = {};
	for k, v in pairs(extra) do
		if type(k) ~= "string" or k == "" then
			fail("conference_request_extra_properties", "property names must be non-empty strings, got %s", tostring(k));
		end
		if type(v) == "boolean" or type(v) == "number" then v = tostring(v); end
		if type(v) ~= "string" then
			fail("conference_request_extra_properties", "value of %q must be a string, got %s", k, type(v));
		end
		cfg.extra_properties[k] = v;
	end

	local limits = module:get_option("conference_request_limits", {});
	if type(limits) ~= "table" then
		fail("conference_request_limits", "expected a table, got %s", type(limits));
	end
	local known = {};
	for _, n in ipairs(limit_names) do known[n] = true; end
	cfg.limits = {};
	for k, v in pairs(limits) do
		if not known[k] then
			fail("conference_request_limits", "unknown limit %s (known: %s)", tostring(k), table.concat(limit_names, ", "));
		end
		if math.type(v) ~= "integer" or v < 1 then
			fail("conference_request_limits", "%s must be a positive whole number, got %s", k, tostring(v));
		end
		cfg.limits[k] = v;
	end

	cfg.max_rooms = number_option("conference_request_max_rooms", 100000, 1, true);
	cfg.max_waiters_per_room = number_option("conference_request_max_waiters_per_room", 10000, 1, true);
	cfg.max_waiters = number_option("conference_request_max_waiters", 100000, 1, true);

	-- Jitsi tenants (docs/protocol.md §2.1, tenant.lib): ours wins over Jitsi's global muc_mapper_domain_base;
	-- conference_request_tenant_base = false turns them off even when Jitsi's is set.
	do
		local ours = module:get_option("conference_request_tenant_base");
		local name, base = "conference_request_tenant_base", ours;
		if ours == nil then name, base = "muc_mapper_domain_base", module:get_option("muc_mapper_domain_base"); end
		if base ~= nil and base ~= false then
			base = host_name(name, base);
			local under = false;
			for h in pairs(cfg.muc_hosts) do
				if #h > #base + 1 and h:sub(-#base - 1) == "." .. base then under = true; end
			end
			if not under and name == "conference_request_tenant_base" then
				fail(name, "no served MUC (conference_request_muc, _extra_mucs) is a <prefix>.%s", base);
			elseif not under then
				module:log("warn", "muc_mapper_domain_base %s: no served MUC is a <prefix>.%s, tenants not served", base, base);
				base = nil;
			end
			cfg.tenant_base = base or nil;
		end
	end

	-- Rate limits (docs/protocol.md §2.3, ratelimit.lib).
	-- cfg.rate_limits = false (all off) or { requests = { rate, burst } | false,
	-- creations = { rate, burst } | false, max_clients = n, xmpp_by_ip = "anonymous" | true | false }.
	do
		local name = "conference_request_rate_limits";
		local defaults = { requests = 20, requests_burst = 200, creations = 0.2, creations_burst = 30,
			max_clients = 10000, xmpp_by_ip = "anonymous" };
		local value = module:get_option(name, {});
		if value == false or value == "false" then
			cfg.rate_limits = false;
		elseif type(value) ~= "table" then
			fail(name, "expected a table (or false: no rate limits), got %s", type(value));
		else
			for k in pairs(value) do
				if defaults[k] == nil then
					fail(name, "unknown key %s (known: requests, requests_burst, creations, creations_burst, "
						.. "max_clients, xmpp_by_ip)", tostring(k));
				end
			end
			local function get(k) local v = value[k]; if v == nil then return defaults[k]; end return v; end
			local function whole(v)
				return type(v) == "number" and v >= 1 and v ~= math.huge and v == math.floor(v);
			end
			local function bucket(kind)
				local rate, burst = get(kind), get(kind .. "_burst");
				if rate == false then return false; end
				if type(rate) ~= "number" or rate ~= rate or rate <= 0 or rate == math.huge then
					fail(name, "%s must be a number of %s per second > 0 (or false), got %s", kind, kind, tostring(rate));
				end
				if not whole(burst) then
					fail(name, "%s_burst must be a whole number ≥ 1, got %s", kind, tostring(burst));
				end
				return { rate = rate, burst = math.tointeger(burst) };
			end
			local max_clients = get("max_clients");
			if not whole(max_clients) then
				fail(name, "max_clients must be a whole number ≥ 1, got %s", tostring(max_clients));
			end
			local by_ip = get("xmpp_by_ip");
			if by_ip ~= true and by_ip ~= false and by_ip ~= "anonymous" then
				fail(name, "xmpp_by_ip must be \"anonymous\", true or false, got %s", tostring(by_ip));
			end
			cfg.rate_limits = { requests = bucket("requests"), creations = bucket("creations"),
				max_clients = math.tointeger(max_clients), xmpp_by_ip = by_ip };
		end
	end
	-- (end of rate limits)

	-- Authentication (docs/protocol.md §5, auth.lib).
	cfg.auth = read_auth(cfg);
	-- (end of authentication)

	-- Visitors (docs/protocol.md §6, visitors.lib).
	cfg.visitors = read_visitors(cfg);

	-- Role (docs/protocol.md §6.2, vnode_role.lib): a visitor node reports its visitors to the main server.
	do
		local role = module:get_option("conference_request_role", "main");
		if role ~= "main" and role ~= "visitor_node" then
			fail("conference_request_role", "expected \"main\" or \"visitor_node\", got %s", tostring(role));
		end
		cfg.role = role;
		local main = module:get_option("conference_request_main");
		local node_id = module:get_option("conference_request_node_id");
		cfg.report_interval = number_option("conference_request_report_interval", 10, 0);
		if cfg.report_interval <= 0 then
			fail("conference_request_report_interval", "must be > 0 seconds, got %s", tostring(cfg.report_interval));
		end
		if role == "visitor_node" then
			if main == nil then
				fail("conference_request_main", "required with conference_request_role = \"visitor_node\" "
					.. "(the main server's conference_request host, where reports go)");
			end
			if type(main) ~= "string" or not jid.prep(main) or jid.resource(main) then
				fail("conference_request_main", "expected a host or bare JID such as focus.meet.example.com, got %s", tostring(main));
			end
			cfg.main = jid.prep(main);
			if node_id == nil then
				fail("conference_request_node_id", "required with conference_request_role = \"visitor_node\" "
					.. "(the id the main server's conference_request_visitors.nodes knows this node by)");
			end
			if type(node_id) ~= "string" or not node_id:match("^[%w._-]+$") or #node_id > 64 then
				fail("conference_request_node_id", "expected a name of letters, digits, '.', '_' or '-' (at most 64), got %s",
					tostring(node_id));
			end
			cfg.node_id = node_id;
		elseif main ~= nil or node_id ~= nil then
			module:log("warn", "conference_request_main / conference_request_node_id are only read with "
				.. "conference_request_role = \"visitor_node\"");
		end
	end

	return cfg;
end

return { read = read, limit_names = limit_names };
