-- vnode_role.lib.lua: the visitor node's side of the report protocol (docs/protocol.md §6.2, issue 12).
-- With conference_request_role = "visitor_node" the module serves conference requests for its own
-- MUC as usual and, in addition, counts the visitors in each room of that MUC and reports them to
-- the main server (conference_request_main) over s2s, as node conference_request_node_id.
--
--   local reporter = module:require "vnode_role".new(cfg, env)
--   reporter.start() / reporter.stop()
--   reporter.status() -> { total, rooms, in_flight, need_full, sent, acked, failed, … }
--
-- env (specs): { add_timer = fn(delay, fn) -> timer, send = fn(stanza,
--   on_result, on_error) (default: module:send_iq), muc = mod_muc's API of the MUC host }.
--
-- Who counts as a visitor: every occupant of a room of conference_request_muc whose real JID is
-- on a host of this Prosody (a local user or an anonymous visitor, admins included), except this
-- module's own host (the focus). Occupants from other servers (s2s, e.g. the main server's
-- participants mirrored into the node) are not counted: they are not this node's load (as Jitsi's
-- mod_fmuc counts visitors: occupants of the local domain).
--
-- What is sent, and when (at most one report in flight; nothing queues while the main server
-- does not answer):
--  * changes: a join/leave/room end marks the room; after COALESCE seconds the marked rooms are
--    recounted and a delta (full absent) lists the rooms whose count differs from what the main
--    server acknowledged (visitors='0' removes);
--  * a heartbeat every report_interval seconds: a delta (often without rooms) carrying total;
--  * a full snapshot (full='true', rooms absent = no visitors) at start, after any error or
--    timeout, when the main server asks for one (unexpected-request), and every FULL_EVERY
--    heartbeats; split into parts (part='k' parts='n') of at most MAX_PART_ROOMS rooms and
--    MAX_PART_BYTES bytes of room elements, sent one after the other.
--  * while a report is in flight, changes wait and go into the next one; after an error the
--    next report (a full one) waits for the next heartbeat.

local st = require "util.stanza";
local jid = require "util.jid";
local id_gen = require "util.id";

local NS = "urn:x-conference-request:vnode:0";
local COALESCE = 0.5;        -- seconds between a change and its report (bursts merge)
local MAX_PART_ROOMS = 500;  -- rooms per report stanza
local MAX_PART_BYTES = 32000; -- bytes of <room/> elements per report stanza
local FULL_EVERY = 30;       -- a full snapshot every this many heartbeats (5 min at 10 s)

-- Bytes of <room name='…' visitors='…'/> as util.stanza serializes it.
local function room_bytes(name, count)
	local specials = select(2, name:gsub("[&<>'\"]", ""));
	return 27 + #name + specials * 5 + #tostring(count);
end

local function new(cfg, env)
	env = env or {};
	local self = {};
	local host = env.host or module.host;
	local muc_host = cfg.muc;
	local interval = cfg.report_interval;
	local coalesce = math.min(COALESCE, interval);
	local timeout = math.max(2, 2 * interval);
	local add_timer = env.add_timer or function(delay, fn) return module:add_timer(delay, fn); end
	local measure = env.measure or function(name) return module:measure(name, "rate"); end
	local m_sent, m_failed = measure("visitors_reports_sent"), measure("visitors_reports_failed");

	local counts, total = {}, 0;  -- room local part -> visitors (> 0 only); their sum
	local acked = {};             -- what the main server has, as far as this node knows
	local dirty, any_dirty = {}, false; -- rooms to recount
	local changed = {};           -- rooms recounted since their last report (may differ from acked)
	local need_full = true;
	local snapshot = nil;         -- { parts = { { name -> count }, … }, next = k, values = name -> count }
	local in_flight = nil;        -- { seq, rooms = name -> count, full, last_part }
	local seq = 0;
	local heartbeat_due, beats = false, 0;
	local backoff = false;        -- after an error: wait for the next heartbeat
	local flush_timer = nil;
	local stopped = false;
	self.counts = { sent = 0, acked = 0, failed = 0, full = 0, parts = 0, max_bytes = 0 };

	local function muc_api()
		if env.muc then return env.muc; end
		local h = prosody.hosts[muc_host];
		return h and h.modules.muc;
	end

	local function is_visitor(occupant)
		local bare = occupant.bare_jid;
		local h = bare and jid.host(bare);
		if not h or h == host then return false; end
		if env.is_local then return env.is_local(h); end
		return prosody.hosts[h] ~= nil;
	end

	local function recount(name)
		local muc = muc_api();
		local room = muc and muc.get_room_from_jid(name .. "@" .. muc_host);
		local n = 0;
		if room then
			for _, occupant in room:each_occupant() do
				if is_visitor(occupant) then n = n + 1; end
			end
		end
		local old = counts[name] or 0;
		if n ~= old then
			total = total - old + n;
			counts[name] = n > 0 and n or nil;
		end
		changed[name] = true;
	end

	local send_next; -- forward

	local function build(rooms_list, attrs)
		local stanza = st.iq({ type = "set", from = host, to = cfg.main, id = "cr-report-" .. id_gen.short() })
			:tag("report", attrs);
		local bytes = 0;
		for _, r in ipairs(rooms_list) do
			stanza:tag("room", { name = r[1], visitors = tostring(r[2]) }):up();
			bytes = bytes + room_bytes(r[1], r[2]);
		end
		stanza:up();
		return stanza, bytes;
	end

	-- Splits name -> count into parts within MAX_PART_ROOMS / MAX_PART_BYTES.
	local function split(values)
		local names = {};
		for name in pairs(values) do names[#names + 1] = name; end
		table.sort(names);
		local parts, cur, bytes = {}, {}, 0;
		for _, name in ipairs(names) do
			local b = room_bytes(name, values[name]);
			if #cur > 0 and (#cur >= MAX_PART_ROOMS or bytes + b > MAX_PART_BYTES) then
				parts[#parts + 1] = cur;
				cur, bytes = {}, 0;
			end
			cur[#cur + 1] = { name, values[name] };
			bytes = bytes + b;
		end
		parts[#parts + 1] = cur; -- an empty snapshot is one part without rooms
		return parts;
	end

	local function failed(why)
		self.counts.failed = self.counts.failed + 1;
		m_failed();
		in_flight, snapshot, need_full = nil, nil, true;
		return why;
	end

	local function on_result(token)
		if token ~= in_flight then return; end
		self.counts.acked = self.counts.acked + 1;
		if token.full then
			if token.last_part then
				acked = token.values;
				snapshot = nil;
			end
		else
			for name, count in pairs(token.rooms) do acked[name] = count > 0 and count or nil; end
		end
		in_flight = nil;
		return send_next();
	end

	local function on_error(token, condition, text)
		if token ~= in_flight then return; end
		failed(condition);
		if condition == "unexpected-request" and not token.asked_full then
			-- the main server wants a full snapshot (it restarted): send it now, once
			module:log("debug", "main server %s asks for a full report", cfg.main);
			backoff = false;
			return send_next(true);
		end
		backoff = true;
		module:log("warn", "visitor report to %s failed (%s%s): a full report follows at the next heartbeat",
			cfg.main, tostring(condition), text and (", " .. text) or "");
	end

	local function transmit(stanza, token, bytes)
		in_flight = token;
		seq = seq + 1;
		token.seq = seq;
		self.counts.sent = self.counts.sent + 1;
		m_sent();
		if bytes > self.counts.max_bytes then self.counts.max_bytes = bytes; end
		local rep = stanza.tags[1];
		module:log("debug", "report to %s: %s%s, %d room(s), %d bytes of rooms, total %s", cfg.main,
			token.full and "full" or "delta", rep.attr.part and (" part " .. rep.attr.part .. "/" .. rep.attr.parts) or "",
			#rep.tags, bytes, rep.attr.total);
		local send = env.send;
		if send then
			return send(stanza, function() on_result(token); end,
				function(condition, text) on_error(token, condition, text); end);
		end
		module:send_iq(stanza, nil, timeout):next(function() on_result(token); end, function(err)
			local condition = type(err) == "table" and err.condition or tostring(err);
			local text = type(err) == "table" and err.text or nil;
			on_error(token, condition, text);
		end);
	end

	local function send_part(asked_full)
		local k, parts = snapshot.next, snapshot.parts;
		local attrs = { xmlns = NS, node = cfg.node_id, total = tostring(total), full = "true" };
		if #parts > 1 then attrs.part, attrs.parts = tostring(k), tostring(#parts); end
		local stanza, bytes = build(parts[k], attrs);
		snapshot.next = k + 1;
		self.counts.parts = self.counts.parts + 1;
		return transmit(stanza, { full = true, last_part = k == #parts, values = snapshot.values,
			asked_full = asked_full }, bytes);
	end

	-- Sends the next report if none is in flight: a snapshot part, a delta, or a heartbeat.
	function send_next(asked_full)
		if in_flight or stopped or backoff then return; end
		if snapshot then return send_part(asked_full); end
		if need_full then
			local values = {};
			for name, count in pairs(counts) do values[name] = count; end
			snapshot = { parts = split(values), next = 1, values = values };
			need_full, changed, heartbeat_due = false, {}, false;
			self.counts.full = self.counts.full + 1;
			return send_part(asked_full);
		end
		local list, rooms, bytes = {}, {}, 0;
		for name in pairs(changed) do
			local count = counts[name] or 0;
			if count ~= (acked[name] or 0) then
				local b = room_bytes(name, count);
				if #list >= MAX_PART_ROOMS or (#list > 0 and bytes + b > MAX_PART_BYTES) then break; end
				list[#list + 1] = { name, count };
				rooms[name] = count;
				bytes = bytes + b;
			end
			changed[name] = nil;
		end
		if #list == 0 and not heartbeat_due then return; end
		heartbeat_due = false;
		table.sort(list, function(a, b) return a[1] < b[1]; end);
		local stanza;
		stanza, bytes = build(list, { xmlns = NS, node = cfg.node_id, total = tostring(total) });
		return transmit(stanza, { full = false, rooms = rooms }, bytes);
	end

	local function flush()
		flush_timer = nil;
		if stopped then return; end
		if any_dirty then
			local list = dirty;
			dirty, any_dirty = {}, false;
			for name in pairs(list) do recount(name); end
		end
		return send_next();
	end

	local function mark(room)
		if stopped or not room or not room.jid then return; end
		local name, h = jid.split(room.jid);
		if h ~= muc_host or not name then return; end
		dirty[name], any_dirty = true, true;
		if not flush_timer then
			flush_timer = add_timer(coalesce, function() flush(); return nil; end) or true;
		end
	end
	self.mark = mark;

	local function heartbeat()
		if stopped then return nil; end
		beats = beats + 1;
		if beats % FULL_EVERY == 0 then need_full = true; end
		heartbeat_due, backoff = true, false;
		flush();
		return interval;
	end
	self.heartbeat = heartbeat;
	self.flush = flush;

	function self.status()
		local rooms = 0;
		for _ in pairs(counts) do rooms = rooms + 1; end
		return { total = total, rooms = rooms, in_flight = in_flight ~= nil, need_full = need_full,
			snapshot = snapshot ~= nil, backoff = backoff, counts = self.counts, main = cfg.main, node = cfg.node_id };
	end
	function self.counts_of() return counts, acked; end

	local attached = false;
	local function attach()
		if attached or (not env.muc and not prosody.hosts[muc_host]) then return; end
		attached = true;
		if not env.muc then
			local ctx = module:context(muc_host);
			local function on_event(event) mark(event.room); end
			ctx:hook("muc-occupant-joined", on_event, -10);
			ctx:hook("muc-occupant-left", on_event, -10);
			ctx:hook("muc-room-destroyed", on_event, -10);
		end
		-- count what is there already (module reload, or rooms made before the module)
		local muc = muc_api();
		if muc and muc.live_rooms then
			for room in muc.live_rooms() do mark(room); end
		end
	end

	function self.start()
		attach();
		if not attached then
			module:hook_global("host-activated", function(h) if h == muc_host then attach(); end end);
		end
		add_timer(interval, heartbeat);
		-- the first report (a full one) soon after start
		if not flush_timer then flush_timer = add_timer(coalesce, function() flush(); return nil; end) or true; end
		module:log("info", "visitor node %s: reports to %s every %ss (changes after %ss)", cfg.node_id, cfg.main,
			tostring(interval), tostring(coalesce));
	end

	function self.stop() stopped = true; end

	return self;
end

return { new = new, NS = NS, MAX_PART_ROOMS = MAX_PART_ROOMS, MAX_PART_BYTES = MAX_PART_BYTES,
	FULL_EVERY = FULL_EVERY, COALESCE = COALESCE, room_bytes = room_bytes };
