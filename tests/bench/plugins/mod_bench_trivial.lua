-- mod_bench_trivial: bench-only ceilings for `make bench` (never loaded in production).
--
-- Loaded as its own component next to the real module:
--   Component "bench.localhost" "bench_trivial"
--       http_host = "localhost"
--       bench_trivial_muc = "conference.localhost"
--
-- * XMPP ceiling: answers every conference IQ (http://jitsi.org/protocol/focus) with a fixed
--   result shaped like the real module's (fixed attributes and properties), doing no other work.
-- * HTTP ceiling: POST /bench/trivial reads the body and answers a fixed JSON document.
-- * Observer: counts muc-room-created / muc-room-destroyed on the MUC host, per room, so the
--   join storm counts creations from the server. GET /bench/stats[?room=JID] returns them.

-- luacheck: read_globals module prosody

local st = require "util.stanza";
local json = require "util.json";
local http_util = require "util.http";

local NS = "http://jitsi.org/protocol/focus";
local muc_host = module:get_option_string("bench_trivial_muc", "conference.localhost");
local focus_jid = module:get_option_string("bench_trivial_focus_jid", "focus.localhost");

-- XMPP: the same-shaped result the real module returns, built per request from fixed values.
module:hook("iq-set/host/" .. NS .. ":conference", function(event)
	local reply = st.reply(event.stanza)
		:tag("conference", { xmlns = NS, room = "room0@" .. muc_host, ready = "true", focusjid = focus_jid })
			:tag("property", { name = "authentication", value = "false" }):up()
			:tag("property", { name = "visitors-supported", value = "false" }):up()
		:up();
	event.origin.send(reply);
	return true;
end);

-- HTTP: read the same body the real door reads, answer a fixed JSON document.
local fixed_json = json.encode({ room = "room0@" .. muc_host, ready = true, focusJid = focus_jid,
	properties = { authentication = "false", ["visitors-supported"] = "false" } });

local function handle_trivial(event)
	local body = event.request.body;
	if type(body) ~= "string" or #body == 0 then
		return 400;
	end
	local response = event.response;
	response.headers.content_type = "application/json";
	return fixed_json;
end

-- Observer of the MUC host: creations and destructions per room.
local created, destroyed = {}, {};
local total_created, total_destroyed = 0, 0;

local function on_created(event)
	local jid = event.room.jid;
	created[jid] = (created[jid] or 0) + 1;
	total_created = total_created + 1;
end

local function on_destroyed(event)
	local jid = event.room.jid;
	destroyed[jid] = (destroyed[jid] or 0) + 1;
	total_destroyed = total_destroyed + 1;
end

local function on_host(host)
	if host == muc_host then
		local ctx = module:context(host);
		ctx:hook("muc-room-created", on_created);
		ctx:hook("muc-room-destroyed", on_destroyed);
	end
end

if prosody.hosts[muc_host] then
	on_host(muc_host);
else
	module:hook_global("host-activated", on_host);
end

local function handle_stats(event)
	local query = event.request.url and event.request.url.query;
	local args = query and http_util.formdecode(query) or {};
	local room = type(args) == "table" and args.room or nil;
	local out = { total_created = total_created, total_destroyed = total_destroyed };
	if room then
		out.room = room;
		out.created = created[room] or 0;
		out.destroyed = destroyed[room] or 0;
	end
	event.response.headers.content_type = "application/json";
	return json.encode(out);
end

module:depends("http");
module:provides("http", {
	default_path = "/bench";
	route = {
		["POST /trivial"] = handle_trivial;
		["GET /stats"] = handle_stats;
	};
});
