-- Paced reads: each connection waits DELAY_MS (default 5) between requests,
-- so the load stays below saturation and latency shows the service, not
-- the CPU queue of a load generator sharing the cores with nginx.
function delay() return tonumber(os.getenv("DELAY_MS") or "5") end
