-- wrk script for bench/soak.py: half the requests from returning visitors (a pool of
-- cookies), half from visitors never seen before (a fresh random cookie each), so
-- every per-visitor structure a worker keeps meets an endless stream of new ids.
local campaigns = tonumber(os.getenv("BENCH_CAMPAIGNS") or "50")
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local cookies = {}
function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

local function new_id()
  local id = {}
  for j = 1, 22 do
    local k = math.random(1, #chars)
    id[j] = chars:sub(k, k)
  end
  return "visitor_id=" .. table.concat(id)
end

function init(args)
  math.randomseed(seed)
  for i = 1, 200 do
    cookies[i] = new_id()
  end
end

function request()
  local c = math.random(1, campaigns)
  local cookie = (math.random() < 0.5) and cookies[math.random(1, #cookies)] or new_id()
  local headers = {["Accept"] = "application/json", ["Cookie"] = cookie}
  return wrk.format("GET", "/campaigns/" .. c, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
