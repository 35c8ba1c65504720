-- Reserve one unit of one of ITEMS items; no response is parsed, so that
-- wrk's Lua is not what limits the figure (reserve_release.lua reads every
-- body for the id to release).  Reservations live 10 minutes: the items'
-- stock (10^9 each) lasts.

local items = tonumber(os.getenv("ITEMS") or "64")
local requests = {}
local counter = 0

-- built once per thread, when wrk knows the Host header
function init(args)
   for i = 0, items - 1 do
      requests[i] = wrk.format("POST",
                               "/v1/inventory/B-" .. i .. "/bench/reservations",
                               { ["Content-Type"] = "application/json" },
                               '{"quantity":1,"ttl_seconds":600}')
   end
end

function request()
   counter = counter + 1
   return requests[counter % items]
end
