-- shell.lib.lua: operator commands for `prosodyctl shell` (Prosody 0.12: mod_admin_shell's shared
-- environment table). One table per server; each loaded instance registers under its host.
--
--   conference_request:rooms([host])   rooms with state, waiters and stored properties
--   conference_request:stats([host])   registry and request counters

local function new(focus, registry, metrics)
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

	instances[module.host] = { focus = focus, registry = registry, metrics = metrics };

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
