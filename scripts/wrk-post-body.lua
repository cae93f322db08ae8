-- wrk script: every request POSTs the same line-protocol body, read once from the file
-- named by WRK_BODY, to WRK_PATH (default /write?db=bench). wrk builds the request once
-- per thread (there is no request() here), so the generator costs the least it can.
-- At the end it prints one line, "wrk-json {...}", for scripts/bench-wrk.sh:
-- requests, body bytes, errors by kind and latency percentiles in microseconds.
--
--   WRK_BODY=body.lp wrk -t2 -c32 -d5s --latency -s scripts/wrk-post-body.lua http://HOST:PORT

local file = assert(os.getenv("WRK_BODY"), "set WRK_BODY to the body's file")
local f = assert(io.open(file, "rb"))
local body = f:read("*a")
f:close()
assert(#body > 0, "empty body in " .. file)

wrk.method = "POST"
wrk.path = os.getenv("WRK_PATH") or "/write?db=bench"
wrk.body = body
wrk.headers["Content-Type"] = "text/plain; charset=utf-8"

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'wrk-json {"requests":%d,"duration_us":%d,"body_bytes":%d,'
            .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
            .. '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
        summary.requests, summary.duration, #body,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
