-- The minute buckets of one lane (or of the capped lanes together) in lo..=hi, raised to the
-- horizon and cut at the newest minute written, as minute, ms pairs in no particular order.
-- Admin and status paths only (charts, recovery time, usage shape, exports).
-- KEYS: 1 the meter hash. ARGV: lo, hi (minutes), field prefix ('' = capped, else a lane letter).
local lo = tonumber(ARGV[1])
local hi = tonumber(ARGV[2])
local prefix = ARGV[3]
local reply = redis.call('HMGET', KEYS[1], 's', 'hz')
local st = load_state(KEYS[1], reply[1], reply[2] and true, {})
local horizon, newest = st[1] or nil, st[(prefix == '' or prefix == 'r') and 3 or 4] or nil
local out = {}
if not horizon or not newest then
  return out
end
if horizon > lo then
  lo = horizon
end
if newest < hi then
  hi = newest
end
if hi < lo then
  return out
end
-- The realtime lane keeps no minute field (meter.lua): its minutes are the capped ones minus
-- sync_fresh's (speech is never negative, so a minute with realtime speech has a positive rest).
local derived = prefix == 'r'
if hi - lo < 2048 then
  -- A range of a few days at most (a window, a chart) costs its length, not the size of the hash.
  local names = {}
  for m = lo, hi do
    local name = string.format('%d', m)
    if derived then
      names[#names + 1] = name
      names[#names + 1] = 'f' .. name
    else
      names[#names + 1] = prefix .. name
    end
  end
  local values = hcall('HMGET', KEYS[1], names)
  local step = derived and 2 or 1
  for i = 1, #names, step do
    local ms = values[i]
    if derived and ms then
      ms = tonumber(ms) - (tonumber(values[i + 1]) or 0)
      if ms <= 0 then
        ms = false
      end
    end
    if ms then
      out[#out + 1] = string.format('%d', lo + (i - 1) / step)
      out[#out + 1] = ms
    end
  end
  return out
end
local pattern = '^' .. (derived and '' or prefix) .. '(%-?%d+)$'
local all = redis.call('HGETALL', KEYS[1])
local fresh = {}
if derived then
  for i = 1, #all, 2 do
    local m = tonumber(string.match(all[i], '^f(%-?%d+)$'))
    if m then
      fresh[m] = tonumber(all[i + 1])
    end
  end
end
for i = 1, #all, 2 do
  local m = tonumber(string.match(all[i], pattern))
  if m and m >= lo and m <= hi then
    local ms = all[i + 1]
    if derived then
      ms = tonumber(ms) - (fresh[m] or 0)
      if ms <= 0 then
        ms = false
      end
    end
    if ms then
      out[#out + 1] = m
      out[#out + 1] = ms
    end
  end
end
return out
