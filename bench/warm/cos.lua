-- wrk script for bench/run.sh: every request is an SCF event invocation carrying the ~1 KB COS
-- event of bench/cold/cos-event.json (BENCH_EVENT overrides the path) and every X-Scf-* header,
-- as bench/cold/coldprobe.rs sends them. Modelled on bench/event.lua (API Gateway event).
--   wrk -t1 -c32 -d10s --latency -s bench/warm/cos.lua http://127.0.0.1:PORT/event-invoke
local path = os.getenv("BENCH_EVENT") or "bench/cold/cos-event.json"
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Scf-Request-Id"] = "warm-0001"
wrk.headers["X-Scf-Memory"] = "128"
wrk.headers["X-Scf-Timeout"] = "3000"
wrk.headers["X-Scf-Version"] = "$LATEST"
wrk.headers["X-Scf-Name"] = "cos-handler"
wrk.headers["X-Scf-Namespace"] = "default"
wrk.headers["X-Scf-Region"] = "ap-chengdu"
wrk.headers["X-Scf-Appid"] = "1253970026"
wrk.headers["X-Scf-Uin"] = "100000000001"
wrk.headers["X-Scf-Secret-Id"] = "AKIDbenchbenchbenchbenchbenchbench"
wrk.headers["X-Scf-Secret-Key"] = "benchbenchbenchbenchbenchbenchbe"
wrk.headers["X-Scf-Session-Token"] = "benchtokenbenchtokenbenchtokenbenchtokenbenchtoken"
-- No response() callback (it would parse every answer in Lua); wrk counts non-2xx itself.
