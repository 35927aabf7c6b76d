-- wrk script for signed webhook deliveries: each request posts the next line of the
-- payload file, so every request is a distinct event, and a thread stops when its share
-- of the lines is sent. A line is "<Stripe-Signature header>\t<JSON body>".
-- Arguments (after --): payload file, expected status, number of wrk threads.
-- It reports "deliveries", the events request() prepared, and "answered", those whose
-- response came back before the end of the run. The server may store a delivery that was
-- not answered, and may never get one prepared as the run ended, so
-- answered <= accepted <= deliveries.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("index", thread_count)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[2]) or 200
  unexpected = 0
  sent = 0
  answered = 0
  deliveries = {}
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    if signature then
      table.insert(deliveries, {signature, body})
    end
  end
  -- setup() ran before init(), so "index" is set: thread i sends lines i, i + n, ...
  stride = tonumber(args[3]) or 1
  position = index
end

function request()
  local delivery = deliveries[position]
  if delivery == nil then
    -- The connection still sends the request returned here, so it asks for the health
    -- check instead of delivering an event twice.
    wrk.thread:stop()
    return wrk.format("GET", "/healthz/")
  end
  position = position + stride
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = delivery[1],
    ["X-Forwarded-Proto"] = "https",
  }, delivery[2])
end

function response(status, headers, body)
  -- The health check that ends a thread returns JSON, and the webhook view returns text.
  local content_type = headers["Content-Type"] or ""
  if content_type:find("application/json", 1, true) then
    return
  end
  answered = answered + 1
  if status ~= expected then
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  local deliveries = 0
  local answered_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
    deliveries = deliveries + (thread:get("sent") or 0)
    answered_total = answered_total + (thread:get("answered") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "deliveries": %d, "answered": %d, "p50_us": %d, '
      .. '"p95_us": %d, "p99_us": %d, '
      .. '"unexpected_status": %d, "socket_errors": %d, "timeouts": %d}\n',
    summary.requests, deliveries, answered_total, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), unexpected_total,
    summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout))
end
