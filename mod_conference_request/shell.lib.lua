-- shell.lib.lua: operator commands for `prosodyctl shell` (Prosody 0.12: mod_admin_shell's shared
-- environment table). One table per server; each loaded instance registers under its host.
--
--   conference_request:rooms([host])   rooms with state, waiters and stored properties
--   conference_request:stats([host])   registry and request counters
--   conference_request:nodes([host])   visitor nodes: health, load (visitors + pending), capacity, rooms
--   conference_request:visitor_room(room [, host])   the nodes a room sends visitors to (visitors, pending)
--   conference_request:node_down(id [, host]) / :node_up(id [, host])   mark a visitor node down / up
--   conference_request:node_load(id, visitors [, room] [, host])   set a node's reported visitors, in
--                                      total or in one room (an override until the node's next report)

local function new(focus, registry, metrics, visitors)
	local shell_env = module:shared("/*/admin_shell/env");
	local commands = shell_env.conference_request;
	if type(commands) ~= "table" or not commands.instances then
		commands = { instances = {} };
		shell_env.conference_request = commands;
	end
	local instances = commands.instances;

	local function each_instance(self, host)
		local list = {};
		for h, inst in pairs(instances) do
			if not host or host == h then table.insert(list, { host = h, inst = inst }); end
		end
		table.sort(list, function(a, b) return a.host < b.host; end);
		if #list == 0 then
			return nil, host and ("no conference_request on " .. host) or "conference_request is not loaded";
		end
		return list, self.session.print;
	end

	local function props_text(props)
		if not props then return "-"; end
		local names = {};
		for k in pairs(props) do table.insert(names, k); end
		table.sort(names);
		local out = {};
		for _, k in ipairs(names) do table.insert(out, ("%s=%q"):format(k, props[k])); end
		return #out > 0 and table.concat(out, " ") or "{}";
	end

	function commands:rooms(host) -- luacheck: ignore 212/self
		local list, print = each_instance(self, host);
		if not list then return false, print; end
		local n = 0;
		for _, entry in ipairs(list) do
			for _, r in ipairs(entry.inst.focus.rooms()) do
				n = n + 1;
				print(("%s state=%s waiters=%d%s properties: %s"):format(r.room, r.state, r.waiters,
					r.unjoined and " unjoined" or "", props_text(r.properties)));
			end
		end
		return true, ("%d room(s) tracked"):format(n);
	end

	function commands:stats(host)
		local list, print = each_instance(self, host);
		if not list then return false, print; end
		for _, entry in ipairs(list) do
			local s = entry.inst.registry:stats();
			local c = entry.inst.metrics.counts;
			local f = entry.inst.focus.status();
			print(("%s: rooms=%d ready=%d pending=%d waiters=%d requests=%d ready_answers=%d errors=%d created=%d expired=%d focus=%s%s")
				:format(entry.host, s.rooms, s.ready, s.pending, s.waiters, c.requests, c.ready, c.errors,
					c.rooms_created, c.rooms_destroyed, f.jid or f.mode, f.online and (" online=" .. f.online) or ""));
		end
		return true, ("%d instance(s)"):format(#list);
	end

	local function with_visitors(self, host)
		local list, print = each_instance(self, host);
		if not list then return nil, print; end
		local out = {};
		for _, entry in ipairs(list) do
			if entry.inst.visitors then table.insert(out, entry); end
		end
		if #out == 0 then return nil, "visitors are not enabled (conference_request_visitors)"; end
		return out, print;
	end

	function commands:nodes(host)
		local list, print = with_visitors(self, host);
		if not list then return false, print; end
		local n = 0;
		for _, entry in ipairs(list) do
			local s = entry.inst.visitors.status();
			print(("%s (%s focus): redirects=%d queued=%d forwarded=%d choice reuse=%d hash=%d least-loaded=%d none=%d")
				:format(entry.host, s.mode, s.counts.redirects, s.counts.queued, s.counts.forwarded, s.counts.reuse,
					s.counts.hash, s.counts.least_loaded, s.counts.none));
			for _, node in ipairs(s.nodes) do
				n = n + 1;
				local rooms = node.rooms;
				local room_text = type(rooms) == "table" and (#rooms .. (#rooms > 0 and (" " .. table.concat(rooms, " ")) or ""))
					or tostring(rooms);
				print(("  %s %s focus=%s weight=%s capacity=%d load=%d visitors=%d pending=%d rooms=%s reported=%s down_reason=%s")
					:format(node.id, node.healthy and "up" or "DOWN", node.focus_jid, tostring(node.weight), node.capacity,
					node.load, node.visitors, node.pending, room_text,
					node.reported and ("%.1fs"):format(node.reported) or "never", node.down_reason or "-"));
			end
		end
		return true, ("%d node(s)"):format(n);
	end

	function commands:visitor_room(room, host)
		local list, print = with_visitors(self, host);
		if not list then return false, print; end
		if type(room) ~= "string" then return false, "usage: visitor_room(room [, host])"; end
		local n = 0;
		for _, entry in ipairs(list) do
			local per_node = entry.inst.visitors.room(room) or {};
			local ids = {};
			for id in pairs(per_node) do ids[#ids + 1] = id; end
			table.sort(ids);
			for _, id in ipairs(ids) do
				n = n + 1;
				print(("%s %s visitors=%d pending=%d"):format(room, id, per_node[id].visitors, per_node[id].pending));
			end
		end
		return true, ("%d node(s) serve %s"):format(n, room);
	end

	local function mark(self, id, healthy, host)
		local list, print = with_visitors(self, host);
		if not list then return false, print; end
		if type(id) ~= "string" then return false, "usage: node_down(id [, host]) / node_up(id [, host])"; end
		for _, entry in ipairs(list) do
			local ok, _, text = entry.inst.visitors.set_healthy(id, healthy);
			if not ok then return false, ("%s: %s"):format(entry.host, text or "failed"); end
		end
		return true, ("node %s marked %s"):format(id, healthy and "up" or "down");
	end
	function commands:node_down(id, host) return mark(self, id, false, host); end
	function commands:node_up(id, host) return mark(self, id, true, host); end

	function commands:node_load(id, count, room, host)
		local list, print = with_visitors(self, host);
		if not list then return false, print; end
		count = tonumber(count);
		if type(id) ~= "string" or not count or count < 0 or count ~= math.floor(count) then
			return false, "usage: node_load(id, visitors [, room] [, host])";
		end
		for _, entry in ipairs(list) do
			local ok, _, text = entry.inst.visitors.set_load(id, math.tointeger(count), room);
			if not ok then return false, ("%s: %s"):format(entry.host, text or "failed"); end
		end
		return true, ("node %s: %d visitor(s)%s"):format(id, count, room and (" in " .. room) or " in total");
	end

	instances[module.host] = { focus = focus, registry = registry, metrics = metrics, visitors = visitors };

	return {
		stop = function()
			instances[module.host] = nil;
			if next(instances) == nil and shell_env.conference_request == commands then
				shell_env.conference_request = nil;
			end
		end,
	};
end

return { new = new };
