-- Counts (a PUT's on_hand) of POOL items, SKUs C-0 .. C-<POOL-1> at the
-- location "bench", BATCH items per request:
--   MODE=batch: POST /v1/batch of BATCH counts of distinct SKUs (BATCH
--               consecutive items of the pool);
--   MODE=put:   the same counts, one PUT /v1/inventory/C-n/bench each, in
--               the same order.
-- Every request is built once per thread (init), so that wrk's Lua is not
-- what limits either side. The counted quantity is 1000 on one pass over
-- the pool and 1001 on the next; the second thread starts half a pass
-- after the first.

local mode = os.getenv("MODE") or "batch"
local batch = tonumber(os.getenv("BATCH") or "250")
local pool = tonumber(os.getenv("POOL") or "50000")
local requests = {}
local counter = 0
local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

function init(args)
   local headers = { ["Content-Type"] = "application/json" }
   for pass = 0, 1 do
      local n = 1000 + pass
      if mode == "batch" then
         for b = 0, pool / batch - 1 do
            local changes = {}
            for i = 0, batch - 1 do
               changes[#changes + 1] = '{"op":"count","sku":"C-' .. (b * batch + i)
                  .. '","location":"bench","on_hand":' .. n .. '}'
            end
            requests[#requests + 1] = wrk.format("POST", "/v1/batch", headers,
               '{"changes":[' .. table.concat(changes, ",") .. ']}')
         end
      else
         for i = 0, pool - 1 do
            requests[#requests + 1] = wrk.format("PUT",
               "/v1/inventory/C-" .. i .. "/bench", headers,
               '{"on_hand":' .. n .. '}')
         end
      end
   end
   counter = (id or 0) * math.floor(#requests / 4)
end

function request()
   counter = counter + 1
   return requests[counter % #requests + 1]
end
