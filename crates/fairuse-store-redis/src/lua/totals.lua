-- read_totals: the capped window totals at `now`, read-only: the running sums of meter.lua moved
-- to `now` without storing them (usually nothing beyond one HMGET of the state and of the minute
-- that left each window since a call a minute ago).
-- KEYS: 1 the meter hash. ARGV: now_ms, window count W, W window lengths in minutes, W minutes
-- that left the windows since the minute before now's (now's minute - length; see record.lua).
-- Reply: W totals, then the number of hash fields read.
local key = KEYS[1]
local now_min = math.floor(ARGV[1] / 60000)
local nwin = ARGV[2] + 0
local windows, first, known = {}, { 's', 'hz' }, {}
for i = 1, nwin do
  windows[i] = ARGV[2 + i] + 0
  local field = ARGV[2 + nwin + i]
  spelled[field + 0] = field
  if known[field] == nil then
    known[field] = false
    first[#first + 1] = field
  end
end
local reply = redis.call('HMGET', key, unpack(first))
for i = 3, #first do
  known[first[i]] = reply[i]
end
local old = reply[2] and true
local st = load_state(key, reply[1], old, windows)
local read = #first
if old then
  read = read + 6 + nwin
end
local names, signs = {}, {}
local plans = plan_windows(windows, st, now_min, st[1] or nil, st[3] or nil, names, signs)
local values, fetched = fetch(key, names, known)
local totals = window_totals(plans, values, signs)
totals[#totals + 1] = read + fetched
return totals
