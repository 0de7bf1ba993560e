-- wrk script: POST a JSON body on every request and print one machine-readable summary line at the end.
--   BENCH_BODY  the request body (default: a minimal Responses request)
--   BENCH_AUTH  an Authorization header value, sent when set (e.g. "Bearer sk-..." for LiteLLM)
-- Latencies are in microseconds; "status" counts non-2xx/3xx responses (wrk's "Non-2xx or 3xx responses").

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"gpt-4.1","input":"hi"}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.mean, latency.max))
end
