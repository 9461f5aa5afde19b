-- read_totals: the capped window totals at `now`, read-only: the running sums of meter.lua moved
-- to `now` without storing them (usually no field at all beyond the state).
-- KEYS: 1 the meter hash. ARGV: now_ms, window count W, W window lengths in minutes.
-- Reply: W totals, then the number of hash fields read.
local now_min = math.floor(tonumber(ARGV[1]) / 60000)
local nwin = tonumber(ARGV[2])
local windows, state_names = {}, { 'hz', 'mx', 'v' }
for i = 1, nwin do
  windows[i] = tonumber(ARGV[2 + i])
  state_names[3 + i] = 'w' .. ARGV[2 + i]
end
local state = redis.call('HMGET', KEYS[1], unpack(state_names))
local states = {}
for i = 1, nwin do
  states[i] = state[3 + i]
end
local names, signs = {}, {}
local plans = plan_windows(windows, states, state[3], now_min, tonumber(state[1]), tonumber(state[2]), names, signs)
local values = {}
if #names > 0 then
  values = hcall('HMGET', KEYS[1], names)
end
local totals = window_totals(plans, values, signs)
totals[#totals + 1] = #state_names + #names
return totals
