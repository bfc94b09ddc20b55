-- wrk script: returning visitors (a pool of cookies) asking random campaigns.
-- Prints one JSON line at the end for bench/throughput.py to parse.
local campaigns = tonumber(os.getenv("BENCH_CAMPAIGNS") or "50")
local pool = tonumber(os.getenv("BENCH_VISITORS") or "5000")
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local cookies = {}
function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed)
  for i = 1, 200 do
    local id = {}
    for j = 1, 22 do
      local k = math.random(1, #chars)
      id[j] = chars:sub(k, k)
    end
    cookies[i] = "visitor_id=" .. table.concat(id)
  end
end

function request()
  local c = math.random(1, campaigns)
  -- a browser's User-Agent: traffic quality classifies it (valid), as it would a visitor's
  local headers = {["Accept"] = "application/json", ["Cookie"] = cookies[math.random(1, #cookies)],
                   ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"}
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
