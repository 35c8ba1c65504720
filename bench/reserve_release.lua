-- Reserve one unit, then release it: the selling path, durable writes only.
-- ITEMS items (1 = one hot item); ids of reservations to release are kept
-- per thread, so every reservation is released by a later request.

local items = tonumber(os.getenv("ITEMS") or "64")
local counter = 0
local pending = {}

function request()
   local id = table.remove(pending)
   local headers = { ["Content-Type"] = "application/json" }

   if id then
      return wrk.format("POST", "/v1/reservations/" .. id .. "/release",
                        headers, "{}")
   end

   counter = counter + 1
   local item = counter % items
   return wrk.format("POST", "/v1/inventory/B-" .. item .. "/bench/reservations",
                     headers, '{"quantity":1,"ttl_seconds":600}')
end

function response(status, headers, body)
   if status == 201 then
      local id = body:match('"id":"(r_%w+)"')
      if id then
         table.insert(pending, id)
      end
   end
end
