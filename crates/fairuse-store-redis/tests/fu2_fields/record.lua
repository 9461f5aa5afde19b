-- record_and_read: records a batch of one user's reports and returns the outcomes and the capped
-- window totals after them, in one round trip and atomically (so a check never reads a total
-- that misses part of its own batch). It mirrors `UserMeter::record` of the domain step by step;
-- the layout and the running window sums are described in meter.lua.
--
-- KEYS: 1 the meter hash, then the idempotency and session keys of the reports.
-- ARGV: now_ms, retention_ms, gc_ttl_ms (idempotency and session keys), meter_ttl_ms,
--       expiry_refresh_ms, sweep_look_hours, sweep_active_hours, window count W, W window lengths in minutes, then 7 values
--       per report: lane index (0..3), capped (1/0), speech ms (a delta or a session's
--       cumulative total), stt ms, minute of `at` ('' = now), idempotency key index (0 = none),
--       session key index (0 = a delta report).
-- Reply: 3 integers per report (speech added, stt added, duplicate 1/0), W totals, fields read.
--
-- In the common case this runs three commands: HMGET of the state, HMGET of the fields that
-- entered or left the windows and of the fields it adds to, and one HSET. Expiry is refreshed
-- once per `expiry_refresh_ms` of the caller's clock, and fields below the horizon are deleted
-- by whole hours once the horizon has passed them (per call the sweep looks at most at
-- `sweep_look_hours` hours and deletes at most `sweep_active_hours` hours holding speech), so
-- neither is paid per report.
local LANES = { 'r', 'f', 'b', 'c' }
local key = KEYS[1]
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local gc_ttl = ARGV[3]
local meter_ttl = ARGV[4]
local refresh = tonumber(ARGV[5])
local sweep_look = tonumber(ARGV[6])
local sweep_active = tonumber(ARGV[7])
local nwin = tonumber(ARGV[8])
local windows, state_names = {}, { 'hz', 'pm', 'mx', 'ma', 'ex', 'v' }
for i = 1, nwin do
  windows[i] = tonumber(ARGV[8 + i])
  state_names[6 + i] = 'w' .. ARGV[8 + i]
end
local now_min = math.floor(now / 60000)
local oldest_kept = now_min - math.floor(retention / 60000) + 1
local state = redis.call('HMGET', key, unpack(state_names))
local hz, pm, mx, ma, ex, v =
  tonumber(state[1]), tonumber(state[2]), tonumber(state[3]), tonumber(state[4]), tonumber(state[5]), state[6]
local states = {}
for i = 1, nwin do
  states[i] = state[6 + i]
end
local read = #state_names

-- Pass 1: idempotency keys and sessions decide what each report adds.
local out, writes = {}, {}
local wrote = false
for b = 9 + nwin, #ARGV - 6, 7 do
  local lane = tonumber(ARGV[b]) + 1
  local capped = ARGV[b + 1] == '1'
  local amount = tonumber(ARGV[b + 2])
  local stt = tonumber(ARGV[b + 3])
  local at = ARGV[b + 4]
  local idem = tonumber(ARGV[b + 5])
  local sess = tonumber(ARGV[b + 6])
  local duplicate = false
  if idem > 0 then
    -- The value is when the key was first seen, by the caller's clock: the domain forgets a key
    -- after the retention measured in `now`, and Redis's own TTL (longer) only collects garbage.
    local seen = tonumber(redis.call('GET', KEYS[idem]))
    if seen and now - seen < retention then
      duplicate = true
    else
      redis.call('SET', KEYS[idem], ARGV[1], 'PX', gc_ttl)
    end
  end
  if duplicate then
    -- Like the domain, a duplicate changes nothing: not the session maximum, not the horizon.
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 1
  else
    local speech, stt_added = amount, stt
    if sess > 0 then
      -- "max speech, max stt, last seen"; a session silent for the retention is forgotten.
      local max_speech, max_stt = 0, 0
      local slot = redis.call('GET', KEYS[sess])
      if slot then
        local s, t, last = string.match(slot, '^(%-?%d+) (%-?%d+) (%-?%d+)$')
        if s and now - tonumber(last) < retention then
          max_speech, max_stt = tonumber(s), tonumber(t)
        end
      end
      speech = math.max(amount - max_speech, 0)
      stt_added = math.max(stt - max_stt, 0)
      redis.call('SET', KEYS[sess],
        string.format('%d %d %d', math.max(max_speech, amount), math.max(max_stt, stt), now), 'PX', gc_ttl)
    end
    local minute = now_min
    if at ~= '' then
      minute = tonumber(at)
    end
    if speech ~= 0 then
      writes[#writes + 1] = { lane, capped, minute, speech }
    end
    out[#out + 1] = speech
    out[#out + 1] = stt_added
    out[#out + 1] = 0
    wrote = true
  end
end

if not wrote then
  -- Nothing recorded, so nothing moves (not even the horizon): the totals at `now`, read-only.
  local names, signs = {}, {}
  local plans = plan_windows(windows, states, v, now_min, hz, mx, names, signs)
  local values = {}
  if #names > 0 then
    values = hcall('HMGET', key, names)
  end
  local totals = window_totals(plans, values, signs)
  for w = 1, nwin do
    out[#out + 1] = totals[w]
  end
  out[#out + 1] = read + #names
  return out
end

-- The domain prunes below the oldest kept minute right after adding, so a bucket below it never
-- counts. (The horizon only moves forward. If replicas' clocks disagree so that `now` steps back,
-- a bucket between this call's oldest kept minute and the horizon is dropped here, where the
-- domain would keep it until its next prune: it is older than the retention by the newest clock
-- seen, so outside every window anyway.)
if not hz or oldest_kept > hz then
  hz = oldest_kept
end
if ma and ma < hz then
  -- Everything the user had is below the horizon (back after more than the retention): start
  -- afresh instead of sweeping it hour by hour.
  redis.call('DEL', key)
  pm, mx, ma, ex, v, states = nil, nil, nil, nil, nil, {}
end
if not pm then
  pm = hz
end

-- Pass 2: one HMGET for the fields that entered or left the windows, the fields written, and
-- the markers of the hours the sweep looks at.
local names, signs = {}, {}
local plans = plan_windows(windows, states, v, now_min, hz, mx, names, signs)
local adds, order = {}, {}
local function add(field, ms)
  if adds[field] then
    adds[field] = adds[field] + ms
  else
    adds[field] = ms
    order[#order + 1] = field
  end
end
local new_mx, new_ma = mx, ma
for i = 1, #writes do
  local lane, capped, minute, speech = writes[i][1], writes[i][2], writes[i][3], writes[i][4]
  if minute >= hz then
    add(LANES[lane] .. fmt(minute), speech)
    local hour = math.floor(minute / 60)
    if capped then
      add(fmt(minute), speech)
      add('h' .. fmt(hour), speech)
      add('d' .. fmt(math.floor(minute / 1440)), speech)
      if not new_mx or minute > new_mx then
        new_mx = minute
      end
    else
      add('u' .. fmt(hour), speech)
    end
    if not new_ma or minute > new_ma then
      new_ma = minute
    end
  else
    writes[i] = false
  end
end
local first_add = #names + 1
for i = 1, #order do
  names[#names + 1] = order[i]
end
local sweep_from, sweep_to = math.floor(pm / 60), math.floor(hz / 60) - 1
if sweep_to > sweep_from + sweep_look - 1 then
  sweep_to = sweep_from + sweep_look - 1
end
local first_marker = #names + 1
for h = sweep_from, sweep_to do
  names[#names + 1] = 'h' .. fmt(h)
  names[#names + 1] = 'u' .. fmt(h)
end
local values = {}
if #names > 0 then
  values = hcall('HMGET', key, names)
end
read = read + #names

local totals = window_totals(plans, values, signs)
for i = 1, #writes do
  local wr = writes[i]
  if wr and wr[2] then
    for w = 1, nwin do
      if wr[3] >= plans[w][1] and wr[3] <= plans[w][2] then
        totals[w] = totals[w] + wr[4]
      end
    end
  end
end

local version = fmt((tonumber(v) or 0) + 1)
local set = { 'hz', fmt(hz), 'v', version }
if new_mx then
  set[#set + 1] = 'mx'
  set[#set + 1] = fmt(new_mx)
end
if new_ma then
  set[#set + 1] = 'ma'
  set[#set + 1] = fmt(new_ma)
end
for w = 1, nwin do
  local p = plans[w]
  set[#set + 1] = state_names[6 + w]
  set[#set + 1] = string.format('%d %d %d %s', p[1], p[2], totals[w], version)
end
for i = 1, #order do
  local field = order[i]
  set[#set + 1] = field
  set[#set + 1] = fmt(tonumber(values[first_add + i - 1] or 0) + adds[field])
end

-- The sweep: whole hours below the horizon, oldest first; an hour without a marker holds no
-- minute, so only hours with speech cost their 60 x (capped + lanes) field names. A day field
-- goes once the whole day is below the new prune mark.
if sweep_to >= sweep_from then
  local doomed = {}
  local mark = (sweep_to + 1) * 60
  local swept = 0
  for h = sweep_from, sweep_to do
    local i = first_marker + 2 * (h - sweep_from)
    local capped_hour, uncapped_hour = values[i], values[i + 1]
    if capped_hour or uncapped_hour then
      if swept == sweep_active then
        mark = h * 60
        break
      end
      swept = swept + 1
      for m = h * 60, h * 60 + 59 do
        local name = fmt(m)
        if capped_hour then
          doomed[#doomed + 1] = name
          doomed[#doomed + 1] = 'r' .. name
          doomed[#doomed + 1] = 'f' .. name
        end
        if uncapped_hour then
          doomed[#doomed + 1] = 'b' .. name
          doomed[#doomed + 1] = 'c' .. name
        end
      end
      doomed[#doomed + 1] = 'h' .. fmt(h)
      doomed[#doomed + 1] = 'u' .. fmt(h)
    end
  end
  if mark > pm then
    for d = math.floor(pm / 1440), math.floor(mark / 1440) - 1 do
      doomed[#doomed + 1] = 'd' .. fmt(d)
    end
    pm = mark
  end
  if #doomed > 0 then
    hcall('HDEL', key, doomed)
  end
end
set[#set + 1] = 'pm'
set[#set + 1] = fmt(pm)

-- Expiry: a user idle for longer than the retention has nothing left in any window, so Redis may
-- drop the hash. The TTL covers the retention, a grace for clock skew and the refresh period, so
-- setting it once per period keeps it at least the retention past the last report.
local expire = not ex or now - ex >= refresh or now < ex
if expire then
  set[#set + 1] = 'ex'
  set[#set + 1] = ARGV[1]
end
hcall('HSET', key, set)
if expire then
  redis.call('PEXPIRE', key, meter_ttl)
end

for w = 1, nwin do
  out[#out + 1] = totals[w]
end
out[#out + 1] = read
return out
