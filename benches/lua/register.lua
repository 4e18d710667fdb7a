-- POST /agents with pre-generated bodies (one JSON document per line, written by run.py so the
-- synthetic distribution is defined in one place). Lines are split between threads.
--   BENCH_QUOTA=1: each body is sent exactly once, then the thread stops (seeding).
--   otherwise: threads cycle through their bodies until -d ends (the registration scenario);
--     a wrap-around re-sends a body, i.e. registers another agent with the same name.
--   BENCH_OUT: if set, "agentId<TAB>firstEndpointId" of each 201 is appended to BENCH_OUT.<tid>
--     (the heartbeat scenario's ids); a body the pattern does not fit is kept whole as RAW.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local quota = os.getenv("BENCH_QUOTA") == "1"
local out_prefix = os.getenv("BENCH_OUT")
local reqs, n, sent = {}, 0, 0
local out = nil
bench_wraps = 0
bench_hooked = true

function init(args)
    local k = 0
    for line in io.lines(os.getenv("BENCH_INPUT")) do
        if line ~= "" then
            if k % bench_threads == tid then
                n = n + 1
                reqs[n] = wrk.format("POST", "/agents", bench_write_headers({ ["Content-Type"] = "application/json" }), line)
            end
            k = k + 1
        end
    end
    if out_prefix then out = io.open(out_prefix .. "." .. tid, "w") end
    bench_filler = wrk.format("GET", "/healthz", {})
    bench_init()
end

function request()
    if bench_probe_pending then
        bench_probe_pending = false
        return reqs[1] or bench_filler
    end
    if sent == 0 then bench_t0 = bench_now() end
    if quota then
        if sent < n then
            sent = sent + 1
            return reqs[sent]
        end
        if bench_counted >= n then bench_finish() end
        return bench_filler
    end
    sent = sent + 1
    if sent > n and (sent - 1) % n == 0 then bench_wraps = bench_wraps + 1 end
    return reqs[(sent - 1) % n + 1]
end

if quota then
    -- See rotate.lua: throttle the fillers once every body is out.
    function delay()
        if sent >= n then return 20 end
        return 0
    end
end

function response(status, headers, body)
    if bench_is_filler(status, body) then return end
    bench_count(status)
    bench_t1 = bench_now()
    if out and status == 201 then
        local aid = body:match('^{"id":"([%w%-]+)"')
        local eid = body:match('"endpoints":%[{"id":"([%w%-]+)"')
        if aid and eid then
            out:write(aid, "\t", eid, "\n")
        else
            out:write("RAW\t", (body:gsub("\n", " ")), "\n")
        end
        if bench_counted % 1000 == 0 then out:flush() end
    end
    if quota and bench_counted >= n then
        if out then out:flush() end
        bench_finish()
    end
end
