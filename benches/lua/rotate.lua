-- Sends requests whose paths come from a file (one per line): discovery queries, heartbeats,
-- deletions.
--   rotate mode (default): every thread cycles through all paths, starting at a different
--     offset, until -d ends. No response() hook, so wrk stays as cheap as for the baseline;
--     non-2xx are then counted by wrk itself (status >= 400; run.py also samples each list).
--   once mode (BENCH_ONCE=1): the lines are split between threads and each is sent exactly
--     once (used to delete the agents a registration run created).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local method = os.getenv("BENCH_METHOD") or "GET"
local once = os.getenv("BENCH_ONCE") == "1"
-- POSTs without a body still carry Content-Length: 0 (wrk.format adds it for "").
local body = (method == "POST") and "" or nil
local reqs, n, i = {}, 0, 0

function init(args)
    local k = 0
    for line in io.lines(os.getenv("BENCH_INPUT")) do
        if line ~= "" then
            if not once or k % bench_threads == tid then
                n = n + 1
                reqs[n] = wrk.format(method, line, (method == "GET") and {} or bench_write_headers(), body)
            end
            k = k + 1
        end
    end
    -- Spread the threads over the list so they do not hit the same keys in lock-step.
    if not once and n > 0 then i = math.floor(n * tid / bench_threads) end
    bench_filler = wrk.format("GET", "/healthz", {})
    bench_init()
end

if once then
    bench_hooked = true
    local sent = 0
    function request()
        if bench_probe_pending then
            bench_probe_pending = false
            return reqs[1] or bench_filler
        end
        if sent < n then
            sent = sent + 1
            if sent == 1 then bench_t0 = bench_now() end
            return reqs[sent]
        end
        if bench_counted >= n then bench_finish() end
        return bench_filler
    end

    -- Throttle the fillers so a finished thread does not flood the server while the last
    -- real answers are in flight (delay() only exists in this mode, so rotate mode is unaffected).
    function delay()
        if sent >= n then return 20 end
        return 0
    end

    function response(status, headers, rbody)
        if bench_is_filler(status, rbody) then return end
        bench_count(status)
        if bench_counted >= n then bench_finish() end
    end
else
    function request()
        i = i % n + 1
        return reqs[i]
    end
end
