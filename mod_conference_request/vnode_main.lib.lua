-- vnode_main.lib.lua: the main server's side of the report protocol (docs/protocol.md §6.2, issue 12):
-- accepts the visitor nodes' reports (IQ set, namespace urn:x-conference-request:vnode:0) from the
-- configured reporter JIDs only, feeds them to the C core's node set (native.vnodes) and keeps each
-- node's health from its report age, its s2s link and the operator's mark.
--
--   local health = module:require "vnode_main".new(vcfg, visitors, env)
--   health.start() / health.stop()           hooks the IQ, s2s-destroyed and one timer for all nodes
--   health.handle(stanza) -> reply stanza    one report (the IQ hook sends the reply)
--   health.link_closed(session)              an s2s session of the module host ended
--   health.tick()                            the timer's work: report ages against node_timeout
--   health.operator(id, healthy)             node_down / node_up (shell): down wins until up
--   health.annotate(nodes)                   adds reported (seconds or nil) and down_reason
--   health.save() / health.restore(saved)    module reload
--
-- env: { main_muc = the main MUC host (room names in reports are its local parts), host = this
--        module's host, clock = monotonic seconds (specs), add_timer = fn(delay, fn) (specs),
--        measure = fn(name) -> fn (specs) }.
--
-- Health of a node with reports ~= false: unhealthy until its first accepted report ("no-report"),
-- when its last accepted report is older than node_timeout ("timeout"), when Prosody ends an s2s
-- session between this host and the node's reporter host ("link"); healthy again on its next
-- accepted report. Nodes with reports = false are healthy unless marked down. The operator's
-- node_down ("operator") wins over everything until node_up.

local st = require "util.stanza";
local jid = require "util.jid";
local st_time = require "util.time";

local NS = "urn:x-conference-request:vnode:0";
local MAX_ROOMS_PER_REPORT = 10000; -- room elements in one report (nodes send at most 500)
local MAX_PARTS = 100000;
local MAX_COUNT = 4294967295; -- visitors in one room (the C core's uint32)
local MAX_ROOM_NAME = 1023; -- bytes of a room's local part (a JID part)

local function whole(text, max)
	if type(text) ~= "string" or not text:match("^%d+$") or #text > 19 then return nil; end
	local n = math.tointeger(tonumber(text));
	if not n or n > max then return nil; end
	return n;
end

local function new(vcfg, visitors, env)
	local self = {};
	env = env or {};
	local now = env.clock or st_time.monotonic;
	local host = env.host or module.host;
	local main_muc = env.main_muc;
	local measure = env.measure or function(name) return module:measure(name, "rate"); end
	local m_reports, m_refused = measure("visitors_reports"), measure("visitors_reports_refused");
	local timeout = vcfg.node_timeout or 30;

	-- per node: { id, reports, jid, last (time of the last accepted report), link_down,
	--             operator_down, applied (last health given to the set), baseline (a whole
	--             snapshot accepted since the module started), snap (a snapshot in parts underway:
	--             { expect, parts }), truncated (rooms refused logged) }
	local nodes, by_id, by_jid = {}, {}, {};
	for _, n in ipairs(vcfg.nodes) do
		local s = { id = n.id, reports = n.reports ~= false, jid = n.jid or jid.host(n.focus_jid) };
		s.jid_host = jid.host(s.jid);
		nodes[#nodes + 1] = s;
		by_id[n.id] = s;
		if s.reports then by_jid[s.jid] = s; end
	end
	self.counts = { accepted = 0, refused = 0 };

	local function down_reason(s, t)
		if s.operator_down then return "operator"; end
		if not s.reports then return nil; end
		if not s.last then return "no-report"; end
		if s.link_down then return "link"; end
		if t - s.last > timeout then return "timeout"; end
		return nil;
	end

	-- Gives the node's health to the set when it changed (and logs the change).
	local function apply(s, t)
		local set = visitors.node_set();
		if not set then return; end
		local reason = down_reason(s, t or now());
		local healthy = reason == nil;
		if s.applied ~= healthy then
			set:set_healthy(s.id, healthy);
			if s.applied ~= nil or not healthy then
				module:log(healthy and "info" or "warn", "visitor node %s is %s%s", s.id, healthy and "up" or "down",
					reason and (" (" .. reason .. ")") or "");
			end
			s.applied = healthy;
		end
	end

	function self.tick()
		local t = now();
		for _, s in ipairs(nodes) do apply(s, t); end
	end

	function self.operator(id, healthy)
		local s = by_id[id];
		if not s then return nil, "item-not-found", "unknown visitor node"; end
		s.operator_down = not healthy;
		module:log("info", "visitor node %s marked %s by the operator", id, healthy and "up" or "down");
		apply(s);
		return true;
	end

	function self.annotate(list)
		local t = now();
		for _, n in ipairs(list) do
			local s = by_id[n.id];
			if s then
				n.reported = s.last and (t - s.last) or nil;
				n.down_reason = down_reason(s, t);
				n.reports = s.reports;
			end
		end
		return list;
	end

	function self.link_closed(session)
		if type(session) ~= "table" then return; end
		local remotes = {};
		if session.direction == "outgoing" then
			if session.from_host ~= host then return; end
			remotes[#remotes + 1] = session.to_host;
		else
			if session.to_host ~= host then return; end
			remotes[#remotes + 1] = session.from_host;
			if type(session.hosts) == "table" then
				for remote in pairs(session.hosts) do remotes[#remotes + 1] = remote; end
			end
		end
		for _, remote in ipairs(remotes) do
			for _, s in ipairs(nodes) do
				if s.reports and remote == s.jid_host and not s.link_down and s.last then
					s.link_down = true;
					module:log("info", "s2s link %s %s %s closed: visitor node %s", host,
						session.direction == "outgoing" and "->" or "<-", remote, s.id);
					apply(s);
				end
			end
		end
	end

	-- Anyone can send reports: refusals logged above debug are at most one line per LOG_QUIET
	-- seconds (the rest at debug, counted in the next such line), so a flood cannot fill the log.
	local LOG_QUIET = 10;
	local quiet_until, quieted = -math.huge, 0;
	local function refuse(stanza, etype, condition, text, level, fmt, ...)
		self.counts.refused = self.counts.refused + 1;
		m_refused();
		level, fmt = level or "debug", fmt or "visitor report from %s refused: %s";
		if level ~= "debug" then
			local t = now();
			if t < quiet_until then
				quieted, level = quieted + 1, "debug";
			else
				if quieted > 0 then
					fmt = fmt .. (" (and %d more refused reports in the last %d s, logged at debug)"):format(quieted,
						LOG_QUIET);
				end
				quiet_until, quieted = t + LOG_QUIET, 0;
			end
		end
		module:log(level, fmt, ...);
		return st.error_reply(stanza, etype, condition, text, host);
	end

	-- One report: validated whole before anything changes; returns the reply.
	function self.handle(stanza)
		local from = stanza.attr.from;
		local report = stanza:get_child("report", NS);
		if not report then
			return refuse(stanza, "modify", "bad-request", "no report element", "debug", nil, tostring(from), "no report");
		end
		local id = report.attr.node;
		local s = from and by_jid[jid.bare(from)];
		if not s or s.id ~= id then
			local text = not s and "not a configured visitor node's reporter JID"
				or ("this JID reports for node " .. s.id);
			return refuse(stanza, "auth", "forbidden", text, "warn", "visitor report from %s for node %s refused: %s",
				tostring(from), tostring(id), text);
		end
		local set = visitors.node_set();
		if not set then
			return refuse(stanza, "cancel", "service-unavailable", "no node set", "debug", nil, from, "no node set");
		end
		local function bad(text)
			return refuse(stanza, "modify", "bad-request", text, "info", "malformed visitor report from %s (node %s): %s",
				from, id, text);
		end
		local total = whole(report.attr.total, math.maxinteger);
		if not total then return bad("total must be a whole number"); end
		local full = report.attr.full;
		if full ~= nil and full ~= "true" and full ~= "false" and full ~= "1" and full ~= "0" then
			return bad("full must be true or false");
		end
		full = full == "true" or full == "1";
		local part, parts = 1, 1;
		if report.attr.part ~= nil or report.attr.parts ~= nil then
			part, parts = whole(report.attr.part, MAX_PARTS), whole(report.attr.parts, MAX_PARTS);
			if not part or not parts or part < 1 or part > parts then
				return bad("part and parts must be whole numbers, 1 <= part <= parts");
			end
			if not full then return bad("part/parts only go with full='true'"); end
		end
		local names, counts, n = {}, {}, 0;
		for _, room in ipairs(report.tags) do
			-- a stanza built in this process has no xmlns on the children (they inherit it)
			if room.name ~= "room" or (room.attr.xmlns ~= nil and room.attr.xmlns ~= NS) then
				return bad("unexpected child element " .. tostring(room.name));
			end
			n = n + 1;
			if n > MAX_ROOMS_PER_REPORT then
				return bad(("more than %d rooms in one report: split it in parts"):format(MAX_ROOMS_PER_REPORT));
			end
			local name, count = room.attr.name, whole(room.attr.visitors, MAX_COUNT);
			if type(name) ~= "string" or name == "" or #name > MAX_ROOM_NAME or name:find("[@/%z]") then
				return bad("room name must be the room's local part (1 to 1023 bytes, no '@' or '/')");
			end
			if not count then return bad("room visitors must be a whole number"); end
			names[n], counts[n] = name, count;
		end
		if not full and not s.baseline then
			-- the main server restarted (or never got a whole snapshot): deltas cannot be applied
			return refuse(stanza, "wait", "unexpected-request", "full report needed", "debug", nil, from,
				"a delta before any full report");
		end
		if full and part > 1 and not (s.snap and s.snap.expect == part and s.snap.parts == parts) then
			s.snap = nil;
			return refuse(stanza, "wait", "unexpected-request", "snapshot part out of order: start again with part 1",
				"info", nil, from, "snapshot part out of order");
		end
		-- accepted: apply
		local t = now();
		if full and part == 1 then
			set:snapshot_begin(id);
			s.snap = { expect = 1, parts = parts };
		end
		local refused_rooms = 0;
		for i = 1, n do
			local ok, cond = set:report(id, names[i] .. "@" .. main_muc, counts[i], t);
			if not ok then
				refused_rooms = refused_rooms + 1;
				if cond ~= "resource-constraint" then
					module:log("error", "report of node %s for %s: %s", id, names[i], tostring(cond));
				end
			end
		end
		if refused_rooms > 0 and not s.truncated then
			s.truncated = true;
			module:log("warn", "visitor node %s reports visitors in more rooms than the main server keeps "
				.. "(conference_request_max_rooms): %d room(s) of this report ignored (logged once)", id, refused_rooms);
		end
		set:report_total(id, total, t);
		if full then
			if part == parts then
				local cleared = set:snapshot_end(id, t);
				s.snap, s.baseline = nil, true;
				if cleared > 0 then module:log("debug", "snapshot of node %s: %d room(s) cleared", id, cleared); end
			else
				s.snap.expect = part + 1;
			end
		end
		s.last, s.link_down = t, false;
		apply(s, t);
		self.counts.accepted = self.counts.accepted + 1;
		m_reports();
		return st.reply(stanza);
	end

	local timer;
	function self.start()
		-- until its first report, a reporting node gets nobody
		for _, s in ipairs(nodes) do apply(s); end
		module:hook("iq-set/host/" .. NS .. ":report", function(event)
			local ok, reply = pcall(self.handle, event.stanza);
			if not ok then
				module:log("error", "visitor report handling failed: %s", tostring(reply));
				reply = st.error_reply(event.stanza, "wait", "internal-server-error", "report not handled", host);
			end
			event.origin.send(reply);
			return true;
		end);
		module:hook("iq-get/host/" .. NS .. ":report", function(event)
			event.origin.send(st.error_reply(event.stanza, "modify", "bad-request", "reports are IQ sets", host));
			return true;
		end);
		module:hook_global("s2s-destroyed", function(event) self.link_closed(event.session); end);
		local period = math.max(0.1, math.min(1, timeout / 5));
		local add_timer = env.add_timer or function(d, fn) return module:add_timer(d, fn); end
		timer = add_timer(period, function()
			if self.stopped then return nil; end
			self.tick();
			return period;
		end);
	end

	function self.stop()
		self.stopped = true;
		if timer and timer.stop then timer:stop(); end
	end

	-- Module reload: per-node report state carries over (the set does, visitors.lib).
	function self.save()
		local saved = {};
		for _, s in ipairs(nodes) do
			saved[s.id] = { jid = s.jid, last = s.last, link_down = s.link_down, operator_down = s.operator_down,
				baseline = s.baseline, applied = s.applied };
		end
		return saved;
	end

	function self.restore(saved)
		-- the node set may have been replaced (visitors.restore): give it every node's health again
		for _, s in ipairs(nodes) do
			local old = type(saved) == "table" and saved[s.id];
			if type(old) == "table" and old.jid == s.jid then
				s.last, s.link_down, s.operator_down, s.baseline = old.last, old.link_down, old.operator_down, old.baseline;
			end
			s.applied = nil;
		end
		self.tick();
	end

	return self;
end

return { new = new, NS = NS, MAX_ROOMS_PER_REPORT = MAX_ROOMS_PER_REPORT };
