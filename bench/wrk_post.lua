-- Replays pre-signed deliveries from $BENCH_REQUESTS, each thread its own share, each request once.
local requests = {}
local counter = 1
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
   local i = 0
   for line in io.lines(os.getenv("BENCH_REQUESTS")) do
      if i % nthreads == id then
         local delivery, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
         table.insert(requests, wrk.format("POST", os.getenv("BENCH_PATH"), {
            ["Content-Type"] = "application/json",
            ["X-GitHub-Event"] = "issues",
            ["X-GitHub-Delivery"] = delivery,
            ["X-Hub-Signature-256"] = sig,
         }, body))
      end
      i = i + 1
   end
end

accepted = 0
duplicates = 0

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
   elseif status == 200 then
      duplicates = duplicates + 1
   end
end

function request()
   local r = requests[counter]
   counter = counter + 1
   if counter > #requests then
      -- Out of distinct deliveries: wrap around (these become duplicates; size the run to avoid it).
      counter = 1
   end
   return r
end

function done(summary, latency, requests)
   local a, d = 0, 0
   for _, t in ipairs(threads) do
      a = a + (t:get("accepted") or 0)
      d = d + (t:get("duplicates") or 0)
   end
   -- 200s are deliveries replayed after a thread ran out of fresh ones: they are duplicates, answered
   -- without a write, so the durable rate counts 202s only.
   io.write(string.format("answered_202 %d\nanswered_200 %d\naccepted_rps %.1f\n", a, d, a / (summary.duration / 1e6)))
   io.write(string.format("p50_ms %.2f\np90_ms %.2f\np99_ms %.2f\n",
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
   io.write(string.format("requests %d\nrps %.1f\nnon_2xx %d\nsocket_errors %d\n", summary.requests,
      summary.requests / (summary.duration / 1e6), summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
