-- wrk script for bench/concurrency.sh: no per-request hook (wrk's own request loop), only a
-- done() that prints one line, "JSON {...}", with the run's totals and its latency percentiles
-- in µs (wrk's latency histogram, the same one --latency prints).
--   wrk -t2 -c32 -d10s --latency -s bench/concurrency.lua 'http://127.0.0.1:PORT/wait?ms=50'

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,'
    .. '"p50_us":%.0f,"p75_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.0f,'
    .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,"err_status":%d}\n',
    summary.requests, secs, summary.requests / secs, summary.bytes,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status))
end
