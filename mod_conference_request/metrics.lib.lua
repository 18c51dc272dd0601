-- metrics.lib.lua: counters through module:measure (docs/protocol.md §8) and the plain counters the health
-- route shows. Metric objects are created once per name and cached (statsmanager keeps one
-- family per name).

local function new(registry)
	local self = {
		-- cheap counters for GET /conference-request/v1/health and the shell
		counts = { requests = 0, ready = 0, not_ready = 0, errors = 0, rooms_created = 0, rooms_destroyed = 0,
			rate_limited_requests = 0, rate_limited_creations = 0 },
	};
	local rates = {};
	local function rate(name)
		local f = rates[name];
		if not f then
			f = module:measure(name, "rate");
			rates[name] = f;
		end
		return f;
	end

	local measure_rooms = module:measure("rooms_tracked", "amount");
	local measure_waiters = module:measure("waiters", "amount");
	local measure_created = module:measure("rooms_created", "rate");
	local measure_destroyed = module:measure("rooms_expired", "rate");

	-- request_<door>_<outcome> rates, looked up without building strings per request
	local by_door = setmetatable({}, { __index = function(t, door)
		local outcomes = setmetatable({}, { __index = function(o, outcome)
			local f = rate("request_" .. door .. "_" .. outcome);
			o[outcome] = f;
			return f;
		end });
		t[door] = outcomes;
		return outcomes;
	end });
	local by_condition = setmetatable({}, { __index = function(t, condition)
		local f = rate("error_" .. condition:gsub("%-", "_"));
		t[condition] = f;
		return f;
	end });

	-- door: "xmpp" | "http"; outcome: "ready" | "not_ready" | "error"
	function self.request(door, outcome, condition)
		local counts = self.counts;
		counts.requests = counts.requests + 1;
		if outcome == "ready" then
			counts.ready = counts.ready + 1;
		elseif outcome == "not_ready" then
			counts.not_ready = counts.not_ready + 1;
		else
			counts.errors = counts.errors + 1;
			by_condition[condition or "unknown"]();
		end
		by_door[door][outcome]();
	end

	function self.room_created()
		self.counts.rooms_created = self.counts.rooms_created + 1;
		measure_created();
	end

	function self.room_expired()
		self.counts.rooms_destroyed = self.counts.rooms_destroyed + 1;
		measure_destroyed();
	end

	-- kind: "requests" | "creations" (ratelimit.lib)
	local measure_limited = {
		requests = module:measure("rate_limited_requests", "rate"),
		creations = module:measure("rate_limited_creations", "rate"),
	};
	function self.rate_limited(kind)
		local name = "rate_limited_" .. kind;
		self.counts[name] = self.counts[name] + 1;
		measure_limited[kind]();
	end

	function self.update()
		local stats = registry:stats();
		measure_rooms(stats.rooms);
		measure_waiters(stats.waiters);
	end

	module:hook_global("stats-update", self.update);

	return self;
end

return { new = new };
