-- POST the same JSON body on every request (benches/gateway.py): the body comes from WRK_BODY and
-- an API key, when there is one, from WRK_API_KEY.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_API_KEY")
if key and key ~= "" then wrk.headers["X-Api-Key"] = key end
