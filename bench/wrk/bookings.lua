-- wrk script for bench/bench_bookings_http.py: POST /api/bookings/ with varied users, departures
-- and tiers, then one JSON line of results on stdout (latencies in microseconds).
-- Inputs (environment): BENCH_TOKENS and BENCH_DEPARTURES, comma-separated.

local function split(text)
  local items = {}
  for item in string.gmatch(text, "[^,]+") do
    items[#items + 1] = item
  end
  return items
end

local tokens = split(os.getenv("BENCH_TOKENS"))
local departures = split(os.getenv("BENCH_DEPARTURES"))
local tiers = { "standard", "premium" }

function init(args)
  math.randomseed(os.time() + #tokens)
end

function request()
  local body = string.format('{"departure_id": %s, "seats": 1, "tier": "%s"}',
    departures[math.random(#departures)], tiers[math.random(#tiers)])
  return wrk.format("POST", "/api/bookings/", {
    ["Authorization"] = "Token " .. tokens[math.random(#tokens)],
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
