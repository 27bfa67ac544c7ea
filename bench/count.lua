-- wrk script for bench/nginx.sh and bench/soak.sh: a mix of SCF event invocations and
-- API Gateway pass-through requests, stopped after a fixed number of responses, counting every
-- status. wrk -t T -c C -d 3600s -s bench/count.lua URL -- <total> [close] [pause]
--   close: every request says "Connection: close" (a fresh connection per request)
--   pause: about one request in 200 waits 50–400 ms first, one in 5,000 waits 1.5–3 s
--          (keep-alive connections, upstream too, go idle)
-- Set COUNT_DONE_DIR: each thread marks it when done (see bench/lib.sh, run_count).
-- done() prints one line: "count: N ok: N non200: N s502: N errors: N" and the status table.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local scf = {
  ["Content-Type"] = "application/json",
  ["X-Scf-Request-Id"] = "",
  ["X-Scf-Memory"] = "128",
  ["X-Scf-Timeout"] = "3000",
  ["X-Scf-Version"] = "$LATEST",
  ["X-Scf-Name"] = "soak",
  ["X-Scf-Namespace"] = "default",
  ["X-Scf-Region"] = "ap-guangzhou",
  ["X-Scf-Appid"] = "1250000000",
  ["X-Scf-Uin"] = "100000000001",
  ["X-Scf-Trigger-Src"] = "timer",
}
local event = '{"Type":"Timer","TriggerName":"soak","Time":"2024-01-01T00:00:00Z","Message":"'
  .. string.rep("m", 200) .. '"}'
local form = "name=scf&value=" .. string.rep("v", 300)

function init(args)
  limit = tonumber(args[1] or "1000")
  close, pause = false, false
  for i = 2, #args do
    if args[i] == "close" then close = true end
    if args[i] == "pause" then pause = true end
  end
  math.randomseed(id * 7919 + os.time())
  count, non200, s502, seq = 0, 0, 0, 0
  statuses = {}
end

function request()
  seq = seq + 1
  local h = {}
  if close then h["Connection"] = "close" end
  local r = seq % 4
  if r == 0 or r == 1 then
    for k, v in pairs(scf) do h[k] = v end
    h["X-Scf-Request-Id"] = "soak-" .. id .. "-" .. seq
    return wrk.format("POST", "/event-invoke", h, event)
  elseif r == 2 then
    h["User-Agent"] = "apigw"
    h["X-Forwarded-For"] = "203.0.113.7"
    return wrk.format("GET", "/api/items/" .. seq .. "?id=" .. seq .. "&sort=asc", h, nil)
  else
    h["Content-Type"] = "application/x-www-form-urlencoded"
    return wrk.format("POST", "/api/form", h, form)
  end
end

function delay()
  if pause then
    local r = math.random(5000)
    if r == 1 then return math.random(1500, 3000) end -- the connection goes idle a while
    if r <= 25 then return math.random(50, 400) end
  end
  return 0
end

function response(status, headers, body)
  count = count + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 then non200 = non200 + 1 end
  if status == 502 then s502 = s502 + 1 end
  if count == limit then
    -- wrk's main thread sleeps for -d whatever its threads do: leave a mark for the script,
    -- which sends SIGINT (wrk then prints its summary) once every thread has one.
    local dir = os.getenv("COUNT_DONE_DIR")
    if dir then
      local f = io.open(dir .. "/done-" .. id, "w")
      if f then f:close() end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local c, bad, b502 = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("count")
    bad = bad + t:get("non200")
    b502 = b502 + t:get("s502")
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format("count: %d ok: %d non200: %d s502: %d errors: %d "
    .. "(connect %d read %d write %d timeout %d) p50: %.2fms p99: %.2fms max: %.2fms\n",
    c, c - bad, bad, b502, errors, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
