-- The minute buckets of one hash in lo..=hi (raised to the horizon), as minute, ms pairs in no
-- particular order. Admin and status paths only (charts, recovery time, usage shape): it may
-- read the whole hash, which the retention bounds (8 days = 11,520 minutes at most).
-- KEYS: 1 meter state, 2 a minute hash. ARGV: lo, hi (minutes).
local lo = tonumber(ARGV[1])
local hi = tonumber(ARGV[2])
local horizon = tonumber(redis.call('HGET', KEYS[1], 'hz'))
if horizon and horizon > lo then
  lo = horizon
end
local out = {}
if hi < lo then
  return out
end
if hi - lo < 256 then
  -- A short range (a chart of the last hours) costs its length, not the size of the hash.
  local names = {}
  for m = lo, hi do
    names[#names + 1] = string.format('%d', m)
  end
  local values = redis.call('HMGET', KEYS[2], unpack(names))
  for i = 1, #names do
    if values[i] then
      out[#out + 1] = names[i]
      out[#out + 1] = values[i]
    end
  end
  return out
end
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local m = tonumber(all[i])
  if m >= lo and m <= hi then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
