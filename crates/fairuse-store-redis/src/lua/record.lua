-- record_and_read: records a batch of one user's reports and returns the outcomes and the capped
-- window totals after them, in one round trip and atomically (so a check never reads a total
-- that misses part of its own batch). It mirrors `UserMeter::record` of the domain step by step;
-- the layout and the running window sums are described in meter.lua.
--
-- KEYS: 1 the meter hash, then the idempotency and session keys of the reports.
-- ARGV: now_ms, retention_ms, gc_ttl_ms (idempotency and session keys), meter_ttl_ms,
--       expiry_refresh_ms, sweep_look_hours, sweep_active_hours, window count W, W window lengths
--       in minutes, W minutes that left the windows since the minute before now's (now's minute
--       - length), then 9 values per report: lane index (0..3), capped (1/0), speech ms (a delta
--       or a session's cumulative total), stt ms, its minute (of `at`, else of now), that
--       minute's hour and UTC day, idempotency key index (0 = none), session key index (0 = a
--       delta report). The caller spells the minute, hour and day numbers out: formatting
--       numbers is a good part of a script's cost in Redis's Lua, and nothing of the client's.
-- Reply: 3 integers per report (speech added, stt added, duplicate 1/0), W totals, fields read.
--
-- In the common case this runs two commands: one HMGET of the state, the fields the reports add to
-- and the minute that left each window since a report a minute ago, and one HSET. A second HMGET
-- reads what that guess missed (a pause, a new window length) and, once an hour, the sweep's
-- markers. Expiry is refreshed
-- once per `expiry_refresh_ms` of the caller's clock, and fields below the horizon are deleted
-- by whole hours once the horizon has passed them (per call the sweep looks at most at
-- `sweep_look_hours` hours and deletes at most `sweep_active_hours` hours holding speech), so
-- neither is paid per report.
-- The realtime lane keeps no minute field of its own: it is the capped minute minus sync_fresh's.
local LANES = { ['0'] = false, ['1'] = 'f', ['2'] = 'b', ['3'] = 'c' }
local key = KEYS[1]
local now = ARGV[1] + 0
local retention = ARGV[2] + 0
local gc_ttl = ARGV[3]
local meter_ttl = ARGV[4]
local refresh = ARGV[5] + 0
local nwin = ARGV[8] + 0
local windows = {}
local now_min = math.floor(now / 60000)
for i = 1, nwin do
  windows[i] = ARGV[8 + i] + 0
  spelled[ARGV[8 + nwin + i] + 0] = ARGV[8 + nwin + i]
end
local oldest_kept = now_min - math.floor(retention / 60000) + 1

-- Pass 1: idempotency keys and sessions decide what each report adds.
local out, writes = {}, {}
local wrote = false
for b = 9 + 2 * nwin, #ARGV - 8, 9 do
  local lane = ARGV[b]
  local capped = ARGV[b + 1] == '1'
  local amount = ARGV[b + 2] + 0
  local stt = ARGV[b + 3] + 0
  local idem = ARGV[b + 7] + 0
  local sess = ARGV[b + 8] + 0
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
    if speech ~= 0 then
      local name = ARGV[b + 4]
      local lane_field, hour, day = false, 'u' .. ARGV[b + 5], false
      if LANES[lane] then
        lane_field = LANES[lane] .. name
      end
      if capped then
        hour, day = 'h' .. ARGV[b + 5], 'd' .. ARGV[b + 6]
      end
      local minute = name + 0
      spelled[minute] = name
      writes[#writes + 1] = { lane, capped, minute, speech, lane_field, name, hour, day }
    end
    out[#out + 1] = speech
    out[#out + 1] = stt_added
    out[#out + 1] = 0
    wrote = true
  end
end

-- One HMGET: the state, the marker of the old state fields, the fields the reports add to and,
-- guessing that the previous call was a minute ago, the minute that left each window since.
local first, known = { 's', 'hz' }, {}
for i = 1, #writes do
  local wr = writes[i]
  for j = 5, 8 do
    local field = wr[j]
    if field and known[field] == nil then
      known[field] = false
      first[#first + 1] = field
    end
  end
end
for w = 1, nwin do
  local field = ARGV[8 + nwin + w]
  if known[field] == nil then
    known[field] = false
    first[#first + 1] = field
  end
end
local reply = hcall('HMGET', key, first)
for i = 3, #first do
  known[first[i]] = reply[i]
end
local old = reply[2] and true
local st = load_state(key, reply[1], old, windows)
local hz, pm, mx, ma, ex = st[1] or nil, st[2] or nil, st[3] or nil, st[4] or nil, st[5] or nil
local read = #first
if old then
  read = read + 6 + nwin
end

if not wrote then
  -- Nothing recorded, so nothing moves (not even the horizon): the totals at `now`, read-only.
  local names, signs = {}, {}
  local plans = plan_windows(windows, st, now_min, hz, mx, names, signs)
  local values, fetched = fetch(key, names, known)
  local totals = window_totals(plans, values, signs)
  for w = 1, nwin do
    out[#out + 1] = totals[w]
  end
  out[#out + 1] = read + fetched
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
  pm, mx, ma, ex, st, known, old = nil, nil, nil, nil, {}, {}, false
end
if not pm then
  pm = hz
end

-- Pass 2: the fields that entered or left the windows and the markers of the hours the sweep
-- looks at, read unless the first HMGET already did.
local names, signs = {}, {}
local plans = plan_windows(windows, st, now_min, hz, mx, names, signs)
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
  local wr = writes[i]
  local capped, minute, speech = wr[2], wr[3], wr[4]
  if minute >= hz then
    if wr[5] then
      add(wr[5], speech)
    end
    add(wr[7], speech)
    if capped then
      add(wr[6], speech)
      add(wr[8], speech)
      if not new_mx or minute > new_mx then
        new_mx = minute
      end
    end
    if not new_ma or minute > new_ma then
      new_ma = minute
    end
  else
    writes[i] = false
  end
end
local sweep_from, sweep_to = math.floor(pm / 60), math.floor(hz / 60) - 1
if sweep_to >= sweep_from then
  sweep_to = math.min(sweep_to, sweep_from + ARGV[6] - 1)
end
local first_marker = #names + 1
for h = sweep_from, sweep_to do
  names[#names + 1] = 'h' .. fmt(h)
  names[#names + 1] = 'u' .. fmt(h)
end
local values, fetched = fetch(key, names, known)
read = read + fetched

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

-- set[2] is the state, packed once the sweep and the expiry have had their say.
local set = { 's', false }
for i = 1, #order do
  local field = order[i]
  set[#set + 1] = field
  set[#set + 1] = fmt((known[field] or 0) + adds[field])
end

-- The sweep: whole hours below the horizon, oldest first; an hour without a marker holds no
-- minute, so only hours with speech cost their 60 x (capped + lanes) field names. A day field
-- goes once the whole day is below the new prune mark.
if sweep_to >= sweep_from then
  local doomed = {}
  local mark = (sweep_to + 1) * 60
  local sweep_active = ARGV[7] + 0
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
          doomed[#doomed + 1] = 'r' .. name -- written by earlier scripts
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
if old then
  -- The state now lives in `s` alone.
  hcall('HDEL', key, old_state_names(windows))
end

-- Expiry: a user idle for longer than the retention has nothing left in any window, so Redis may
-- drop the hash. The TTL covers the retention, a grace for clock skew and the refresh period, so
-- setting it once per period keeps it at least the retention past the last report.
local expire = not ex or now - ex >= refresh or now < ex
if expire then
  ex = now
end
set[2] = pack_state(st, hz, pm, new_mx, new_ma, ex, windows, plans, totals)
hcall('HSET', key, set)
if expire then
  redis.call('PEXPIRE', key, meter_ttl)
end

for w = 1, nwin do
  out[#out + 1] = totals[w]
end
out[#out + 1] = read
return out
