-- TEST FIXTURE: src/lua/totals.lua of the old meter layout (fu1), as on main at 938fc0f, kept so the
-- migration tests write and read old-layout meters with the old code itself. Not shipped.
-- read_totals: the capped window totals at `now`, read-only, with the bounded cost described in
-- windows.lua.
-- KEYS: 1 meter state, 2 capped minutes, 3 capped hours, 4 capped days.
-- ARGV: now_ms, window count W, W window lengths in minutes, the window plan (see windows.lua).
-- Reply: W totals, then the number of hash fields read.
local now_min = math.floor(tonumber(ARGV[1]) / 60000)
local windows = {}
for i = 1, tonumber(ARGV[2]) do
  windows[i] = tonumber(ARGV[2 + i])
end
local horizon = tonumber(redis.call('HGET', KEYS[1], 'hz'))
local totals, read = planned_totals(KEYS[2], KEYS[3], KEYS[4], now_min, horizon, windows, 3 + #windows)
totals[#totals + 1] = read
return totals
