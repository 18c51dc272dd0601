-- wrk script for the HTTP pair of `make bench` (tests/bench/run.sh).
--
-- Environment:
--   BENCH_METHOD  POST (default) or GET
--   BENCH_ROOMS   number of distinct rooms the POST bodies cycle through (default 1)
--   BENCH_MUC     MUC host of the rooms (default conference.localhost)
--   BENCH_PREFIX  room name prefix (default "room": rooms are room0@MUC … room<N-1>@MUC)
-- The path comes from the URL given to wrk. Every POST body has the same shape and size as the
-- XMPP request of the bench (room, machineUid, two properties with native JSON types).
-- done() prints one line: BENCHJSON {"requests":…,"rps":…,"p50_us":…,"p99_us":…,"errors":…}

-- wrk's API: the wrk table, and the init/request/done hooks this script defines.
-- luacheck: read_globals wrk, globals init request done

local method = os.getenv("BENCH_METHOD") or "POST"
local rooms = tonumber(os.getenv("BENCH_ROOMS") or "1") or 1
local muc = os.getenv("BENCH_MUC") or "conference.localhost"
local prefix = os.getenv("BENCH_PREFIX") or "room"

local requests = {}
local next_index = 1

function init(_)
	local uid = {}
	for i = 1, 32 do
		local n = math.random(0, 15)
		uid[i] = string.sub("0123456789abcdef", n + 1, n + 1)
	end
	uid = table.concat(uid)
	if method == "GET" then
		requests[1] = wrk.format("GET", nil, { Host = "localhost" })
		return
	end
	for i = 0, rooms - 1 do
		local body = string.format('{"room":"%s%d@%s","machineUid":"%s","properties":{"rtcstatsEnabled":false,"visitors-version":1}}',
			prefix, i, muc, uid)
		requests[#requests + 1] = wrk.format("POST", nil,
			{ Host = "localhost", ["Content-Type"] = "application/json" }, body)
	end
	next_index = math.random(1, #requests)
end

function request()
	local r = requests[next_index]
	next_index = next_index % #requests + 1
	return r
end

function done(summary, latency, _)
	local errors = summary.errors
	local nerr = errors.connect + errors.read + errors.write + errors.status + errors.timeout
	local secs = summary.duration / 1e6
	io.write(string.format('BENCHJSON {"requests":%d,"secs":%.3f,"rps":%.1f,"p50_us":%d,"p99_us":%d,"errors":%d,"status_errors":%d}\n',
		summary.requests, secs, summary.requests / secs, latency:percentile(50), latency:percentile(99),
		nerr, errors.status))
end
