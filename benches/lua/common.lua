-- Shared by every scenario script (loaded with dofile): thread numbering, a monotonic clock,
-- the "count-limited run" protocol, and a done() hook that prints one machine-readable line.
--
-- Configuration comes from environment variables set by run.py, because init(args) only runs
-- in the worker threads while setup()/done() run in wrk's main Lua state.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")

-- os.time() only has second resolution; count-limited runs need their own precise span
-- because wrk's reported duration is the whole -d (or the time until run.py interrupts it).
function bench_now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

bench_threads = tonumber(os.getenv("BENCH_THREADS") or "1")

-- Headers of a write request: the Admin key run.py issued (reads are public and send none).
function bench_write_headers(extra)
    local h = extra or {}
    local key = os.getenv("BENCH_API_KEY")
    if key and key ~= "" then h["X-Api-Key"] = key end
    return h
end
bench_marker_dir = os.getenv("BENCH_MARKER_DIR")

-- Per-thread counters, read back by done() through thread:get().
bench_counted = 0   -- responses to "real" requests (fillers excluded)
bench_non2xx = 0
bench_t0 = nil      -- first real request sent
bench_t1 = nil      -- last real response received
bench_finished = false

local threads = {}

-- wrk calls request() once on thread 0's state before the run starts, to check the script's
-- requests (script_verify_request); that call's request is never sent. Scripts that must send
-- each request exactly once answer it with bench_peek() instead of consuming a request.
bench_probe_pending = false
function bench_init()
    bench_probe_pending = (tid == 0)
end

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

-- A count-limited run ends when every thread has all its answers. wrk cannot stop itself
-- early (the main thread sleeps for -d), so each thread stops its own loop and leaves a marker
-- file; run.py sends SIGINT once all markers exist, and wrk then reports normally.
function bench_finish()
    if bench_finished then return end
    bench_finished = true
    bench_t1 = bench_t1 or bench_now()
    if bench_marker_dir then
        local f = io.open(bench_marker_dir .. "/done." .. tid, "w")
        if f then f:close() end
    end
    wrk.thread:stop()
end

-- Requests sent once all of a thread's real requests are out: cheap, and recognisable in
-- response() (200 "ok"), so they never count as real work.
bench_filler = nil
function bench_is_filler(status, body)
    return status == 200 and body == "ok"
end

function bench_count(status)
    bench_counted = bench_counted + 1
    if status < 200 or status > 299 then
        bench_non2xx = bench_non2xx + 1
    end
end

local function num(v)
    if v == nil then return "null" end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return string.format("%.6f", v)
end

function done(summary, latency, requests)
    local counted, non2xx, t0, t1, hooked, wraps = 0, 0, nil, nil, false, 0
    for _, t in ipairs(threads) do
        local c = t:get("bench_counted")
        if c then counted = counted + c end
        local n = t:get("bench_non2xx")
        if n then non2xx = non2xx + n end
        if t:get("bench_hooked") then hooked = true end
        local w = t:get("bench_wraps")
        if w then wraps = wraps + w end
        local a, b = t:get("bench_t0"), t:get("bench_t1")
        if a and (t0 == nil or a < t0) then t0 = a end
        if b and (t1 == nil or b > t1) then t1 = b end
    end
    local span = nil
    if t0 and t1 and t1 > t0 then span = t1 - t0 end
    local e = summary.errors
    local fields = {
        { "requests", summary.requests },
        { "duration_us", summary.duration },
        { "bytes", summary.bytes },
        { "err_connect", e.connect }, { "err_read", e.read }, { "err_write", e.write },
        { "err_status", e.status }, { "err_timeout", e.timeout },
        { "lat_mean_us", latency.mean }, { "lat_stdev_us", latency.stdev },
        { "lat_max_us", latency.max },
        { "p50_us", latency:percentile(50) }, { "p90_us", latency:percentile(90) },
        { "p99_us", latency:percentile(99) }, { "p999_us", latency:percentile(99.9) },
        { "hooked", hooked and 1 or 0 },
        { "counted", counted }, { "non2xx_counted", non2xx }, { "span_s", span },
        { "wraps", wraps },
    }
    local parts = {}
    for _, kv in ipairs(fields) do
        table.insert(parts, string.format('"%s":%s', kv[1], num(kv[2])))
    end
    io.write("BENCH_RESULT {" .. table.concat(parts, ",") .. "}\n")
end
