-- A pure-Lua stand-in for the native visitor-node set (contract: native.vnodes, built in C on the
-- `vnodes` branch), used ONLY by spec/visitors_spec.lua so that visitors.lib's rules can be
-- specified on their own. The module never uses it: without native.vnodes it refuses to load.
-- It follows the contract's rules plainly (not its costs): reuse (least loaded used node below
-- capacity), weighted rendezvous hashing among healthy nodes with spare capacity, least loaded
-- healthy node, none. Load = reported visitors (or the reported total when larger) + redirects
-- within pending_window.

local function fnv(s)
	local h = 2166136261;
	for i = 1, #s do
		h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff;
	end
	return h;
end

local function new(config)
	local set = { list = {}, by_id = {} };
	local window = config.pending_window or 60;
	for i, n in ipairs(config.nodes) do
		local node = { id = n.id, focus_jid = n.focus_jid, weight = n.weight or 1, capacity = n.capacity or 500,
			healthy = true, total = 0, rooms = {} };
		set.list[i], set.by_id[n.id] = node, node;
	end

	local function prune(state, now)
		local kept = {};
		for _, t in ipairs(state.pending) do
			if now - t < window then kept[#kept + 1] = t; end
		end
		state.pending = kept;
	end

	local function load(node, now)
		local visitors, pending = 0, 0;
		for _, state in pairs(node.rooms) do
			prune(state, now);
			visitors = visitors + state.visitors;
			pending = pending + #state.pending;
		end
		return math.max(visitors, node.total) + pending, math.max(visitors, node.total), pending;
	end

	local function used(node, room, now)
		local state = node.rooms[room];
		if not state then return false; end
		prune(state, now);
		return state.visitors > 0 or #state.pending > 0;
	end

	function set.choose(_, room, now)
		local best, best_load, how;
		for _, node in ipairs(set.list) do
			if node.healthy and used(node, room, now) then
				local l = load(node, now);
				if l < node.capacity and (not best or l < best_load) then best, best_load = node, l; end
			end
		end
		if best then
			how = "reuse";
		else
			local score;
			for _, node in ipairs(set.list) do
				if node.healthy and load(node, now) < node.capacity then
					local u = (fnv(room .. "\0" .. node.id) + 0.5) / 4294967296;
					local sc = -node.weight / math.log(u);
					if not score or sc > score then best, score = node, sc; end
				end
			end
			how = best and "hash" or nil;
		end
		if not best then
			for _, node in ipairs(set.list) do
				if node.healthy then
					local l = load(node, now);
					if not best or l < best_load then best, best_load = node, l; end
				end
			end
			how = best and "least-loaded" or nil;
		end
		if not best then return nil, "none"; end
		local state = best.rooms[room];
		if not state then state = { visitors = 0, pending = {} }; best.rooms[room] = state; end
		table.insert(state.pending, now);
		return best.id, best.focus_jid, how;
	end

	function set.uses(_, room, now)
		for _, node in ipairs(set.list) do
			local state = node.rooms[room];
			if state and now then prune(state, now); end
			if state and (state.visitors > 0 or #state.pending > 0) then return true; end
		end
		return false;
	end

	function set.report(_, id, room, visitors, _)
		local node = set.by_id[id];
		if not node then return nil, "item-not-found", "no such node"; end
		local state = node.rooms[room] or { visitors = 0, pending = {} };
		state.visitors = visitors;
		state.pending = {};
		node.rooms[room] = (visitors > 0) and state or nil;
		return true;
	end

	function set.report_total(_, id, visitors, _)
		local node = set.by_id[id];
		if not node then return nil, "item-not-found", "no such node"; end
		node.total = visitors;
		return true;
	end

	function set.set_healthy(_, id, healthy)
		local node = set.by_id[id];
		if not node then return nil, "item-not-found", "no such node"; end
		node.healthy = healthy;
		return true;
	end

	function set.forget_room(_, room)
		for _, node in ipairs(set.list) do node.rooms[room] = nil; end
	end

	function set.nodes(_, now)
		local out = {};
		for i, node in ipairs(set.list) do
			local l, visitors, pending = load(node, now);
			local rooms = 0;
			for _ in pairs(node.rooms) do rooms = rooms + 1; end
			out[i] = { id = node.id, focus_jid = node.focus_jid, weight = node.weight, capacity = node.capacity,
				healthy = node.healthy, load = l, visitors = visitors, pending = pending, rooms = rooms };
		end
		return out;
	end

	function set.room(_, room, now)
		local out;
		for _, node in ipairs(set.list) do
			local state = node.rooms[room];
			if state then
				prune(state, now);
				out = out or {};
				out[node.id] = { visitors = state.visitors, pending = #state.pending };
			end
		end
		return out;
	end

	return set;
end

return { new = new };
