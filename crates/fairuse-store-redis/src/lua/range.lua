-- The minute buckets of one lane (or of the capped lanes together) in lo..=hi, raised to the
-- horizon and cut at the newest minute written, as minute, ms pairs in no particular order.
-- Admin and status paths only (charts, recovery time, usage shape, exports).
-- KEYS: 1 the meter hash. ARGV: lo, hi (minutes), field prefix ('' = capped, else a lane letter).
local lo = tonumber(ARGV[1])
local hi = tonumber(ARGV[2])
local prefix = ARGV[3]
local reply = redis.call('HMGET', KEYS[1], 's', 'hz')
local st = load_state(KEYS[1], reply[1], reply[2] and true, {})
local horizon, newest = st[1] or nil, st[prefix == '' and 3 or 4] or nil
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
if hi - lo < 2048 then
  -- A range of a few days at most (a window, a chart) costs its length, not the size of the hash.
  local names = {}
  for m = lo, hi do
    names[#names + 1] = prefix .. string.format('%d', m)
  end
  local values = hcall('HMGET', KEYS[1], names)
  for i = 1, #names do
    if values[i] then
      out[#out + 1] = string.format('%d', lo + i - 1)
      out[#out + 1] = values[i]
    end
  end
  return out
end
local pattern = '^' .. prefix .. '(%-?%d+)$'
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local m = tonumber(string.match(all[i], pattern))
  if m and m >= lo and m <= hi then
    out[#out + 1] = m
    out[#out + 1] = all[i + 1]
  end
end
return out
