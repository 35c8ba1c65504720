-- Reads of POOL items (SKUs C-0 .. C-<POOL-1> at "bench", made by
-- bench/run before), ITEMS items per request:
--   MODE=query: POST /v1/inventory/query of ITEMS items (consecutive in
--               the pool, distinct);
--   MODE=get:   GET /v1/inventory/C-n/bench of the same items, one each,
--               in the same order.
-- Every request is built once per thread (init), so that wrk's Lua is not
-- what limits either side; the second thread starts half the pool after
-- the first.

local mode = os.getenv("MODE") or "query"
local items = tonumber(os.getenv("ITEMS") or "100")
local pool = tonumber(os.getenv("POOL") or "10000")
local requests = {}
local counter = 0
local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

function init(args)
   if mode == "query" then
      local headers = { ["Content-Type"] = "application/json" }
      for q = 0, pool / items - 1 do
         local list = {}
         for i = 0, items - 1 do
            list[#list + 1] = '{"sku":"C-' .. (q * items + i)
               .. '","location":"bench"}'
         end
         requests[#requests + 1] = wrk.format("POST", "/v1/inventory/query",
            headers, '{"items":[' .. table.concat(list, ",") .. ']}')
      end
   else
      for i = 0, pool - 1 do
         requests[#requests + 1] = wrk.format("GET",
            "/v1/inventory/C-" .. i .. "/bench")
      end
   end
   counter = (id or 0) * math.floor(#requests / 2)
end

function request()
   counter = counter + 1
   return requests[counter % #requests + 1]
end
