-- wrk script: POST one CDS Hooks request again and again, each time with a fresh
-- hookInstance, as an EHR sends. Read by bench/floor.py, which passes:
--   BENCH_BODY     file holding the JSON body, with the placeholder below as hookInstance
--   BENCH_PATH     the path to POST to (/cds-services/<id>)
--   BENCH_RUN      8 hex digits naming this run, so instances never repeat between runs
--   BENCH_QUANTA   quantiles to report (the latency distribution, for pooling runs)
-- The placeholder has the length of a UUID, so the Content-Length never changes and the
-- whole request is built once; each call only puts a new id in the middle.

local PLACEHOLDER = "bench000-0000-4000-8000-hookinstance"

local threads = {}
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
  table.insert(threads, thread)
end

local head, tail
local calls = 0
local run = os.getenv("BENCH_RUN") or "00000000"

function init(args)
  local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  local body = file:read("*a")
  file:close()
  local raw = wrk.format("POST", os.getenv("BENCH_PATH"), {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }, body)
  local at = raw:find(PLACEHOLDER, 1, true)
  assert(at, "the body holds no hookInstance placeholder")
  head = raw:sub(1, at - 1)
  tail = raw:sub(at + #PLACEHOLDER)
end

function request()
  calls = calls + 1
  -- A version-4-shaped UUID: run, thread and a call counter, unique within a bench run.
  local id = string.format("%s-%04x-4000-8000-%012x", run, thread_no % 65536, calls)
  assert(#id == #PLACEHOLDER, "the hookInstance changed length")
  return head .. id .. tail
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = {
    string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
      '"write": %d, "status": %d, "timeout": %d, "min_us": %d, "max_us": %d, ' ..
      '"mean_us": %.1f, "quantiles": [',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read,
      e.write, e.status, e.timeout, latency.min, latency.max, latency.mean)
  }
  local steps = tonumber(os.getenv("BENCH_QUANTA") or "2000")
  local values = {}
  for i = 1, steps do
    -- midpoints of equal slices of the distribution, in microseconds
    values[i] = string.format("%d", latency:percentile((i - 0.5) * 100 / steps))
  end
  table.insert(out, table.concat(values, ", "))
  table.insert(out, "]}")
  io.write("BENCH-RESULT ", table.concat(out), "\n")
end
