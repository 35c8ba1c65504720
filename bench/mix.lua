-- 90 % reads of one item, 10 % adjustments (+1, -1 in turn) over ITEMS items.

local items = tonumber(os.getenv("ITEMS") or "64")
local counter = 0

function request()
   counter = counter + 1
   local item = counter % items

   if counter % 10 == 0 then
      local delta = (counter % 20 == 0) and 1 or -1
      return wrk.format("POST", "/v1/inventory/B-" .. item .. "/bench/adjustments",
                        { ["Content-Type"] = "application/json" },
                        '{"delta":' .. delta .. '}')
   end

   return wrk.format("GET", "/v1/inventory/B-" .. item .. "/bench")
end
