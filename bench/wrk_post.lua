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
   io.write(string.format("p50_ms %.2f\np90_ms %.2f\np99_ms %.2f\n",
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
   io.write(string.format("requests %d\nrps %.1f\nnon_2xx %d\nsocket_errors %d\n", summary.requests,
      summary.requests / (summary.duration / 1e6), summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
