-- The meter's layout and the window arithmetic shared by record.lua and totals.lua.
--
-- One hash per user (KEYS[1], `{<prefix>:<uid>}:fu2:meter`) holds everything of the meter:
--   hz          the horizon: the oldest minute kept (buckets below it never count)
--   pm          the prune mark: every field of a minute below it has been deleted
--   mx, ma      the newest minute holding capped speech / speech of any lane
--   ex          the caller's `now` (ms) when the key's expiry was last set
--   v           a version, bumped by every call that records something
--   w<M>        "lo hi total v": the capped total of minutes lo..hi, valid while v is the hash's
--   <m>         capped ms (realtime + sync_fresh) of minute m; h<h> of hour h; d<d> of UTC day d
--   r<m> f<m> b<m> c<m>   ms of minute m in the realtime, sync_fresh, sync_backfill, custom_stt lane
--   u<h>        uncapped ms of hour h (so pruning knows which hours hold uncapped minutes)
--
-- A window of M minutes at minute n is the minutes max(n - M + 1, hz)..n. Its total is kept as a
-- running sum (w<M>): a later call moves its two edges and adds or subtracts only the minutes
-- that entered or left, so a user reporting every minute reads one minute field per window,
-- whatever their history. A range that has to be summed afresh (a new window length, a long
-- pause, `now` going back) is cut greedily into days, hours and single minutes (at most
-- 59 + 23 + days + 23 + 59 fields) and clipped at the newest capped minute, so it costs nothing
-- past the user's last speech. An hour or day field is used only when its whole span lies inside
-- the range, so speech stamped in the future never leaks into a total.
local function fmt(n)
  return string.format('%d', n)
end

-- Appends the fields whose sum is the capped speech of minutes x..y, each with `sign`.
local function cut(x, y, sign, mx, names, signs)
  if not mx then
    return
  end
  if y > mx then
    y = mx
  end
  while x <= y do
    local name
    if x % 1440 == 0 and x + 1439 <= y then
      name = 'd' .. fmt(x / 1440)
      x = x + 1440
    elseif x % 60 == 0 and x + 59 <= y then
      name = 'h' .. fmt(x / 60)
      x = x + 60
    else
      name = fmt(x)
      x = x + 1
    end
    names[#names + 1] = name
    signs[#signs + 1] = sign
  end
end

-- Plans every window's total at minute `now_min`: from its running sum `state[w]` when that is
-- valid for version `v` and overlaps the new range, else afresh. Appends the fields to read to
-- `names` (with `signs`); returns per window { lo, hi, base, first, last }: the total is base
-- plus the signed values of names[first..last].
local function plan_windows(windows, states, v, now_min, hz, mx, names, signs)
  local plans = {}
  for w = 1, #windows do
    local lo, hi = now_min - windows[w] + 1, now_min
    if hz and lo < hz then
      lo = hz
    end
    local first, base = #names + 1, 0
    if hz and lo <= hi then
      local l, h, t, sv
      if states[w] then
        l, h, t, sv = string.match(states[w], '^(%-?%d+) (%-?%d+) (%-?%d+) (%d+)$')
      end
      l, h, t = tonumber(l), tonumber(h), tonumber(t)
      if l and sv == v and l <= h and l <= hi and lo <= h then
        base = t
        if lo < l then
          cut(lo, l - 1, 1, mx, names, signs)
        elseif l < lo then
          cut(l, lo - 1, -1, mx, names, signs)
        end
        if hi > h then
          cut(h + 1, hi, 1, mx, names, signs)
        elseif hi < h then
          cut(hi + 1, h, -1, mx, names, signs)
        end
      else
        cut(lo, hi, 1, mx, names, signs)
      end
    end
    plans[w] = { lo, hi, base, first, #names }
  end
  return plans
end

-- The totals of planned windows, from the HMGET reply `values` of `names`.
local function window_totals(plans, values, signs)
  local totals = {}
  for w = 1, #plans do
    local p = plans[w]
    local sum = p[3]
    for i = p[4], p[5] do
      local value = values[i]
      if value then
        sum = sum + signs[i] * tonumber(value)
      end
    end
    totals[w] = sum
  end
  return totals
end

-- HMGET, HSET or HDEL of a long argument list, in slices: Lua's `unpack` stops at about 8,000
-- values, and a large batch of reports (or a sweep) can name more fields than that.
local SLICE = 4000
local function hcall(command, key, args)
  if #args <= SLICE then
    return redis.call(command, key, unpack(args))
  end
  local out = {}
  for i = 1, #args, SLICE do
    -- SLICE is even, so an HSET slice holds whole field, value pairs.
    local last = math.min(i + SLICE - 1, #args)
    local reply = redis.call(command, key, unpack(args, i, last))
    if command == 'HMGET' then
      for j = 1, #reply do
        out[#out + 1] = reply[j]
      end
    end
  end
  return out
end
