-- The meter's layout and the window arithmetic shared by the meter scripts.
--
-- One hash per user (KEYS[1], `{<prefix>:<uid>}:fu2:meter`) holds everything of the meter:
--   s           the state, one cmsgpack value: hz, pm, mx, ma, ex, then M, lo, hi, total for each
--               window whose running sum is kept (absent values are `false`):
--     hz          the horizon: the oldest minute kept (buckets below it never count)
--     pm          the prune mark: every field of a minute below it has been deleted
--     mx, ma      the newest minute holding capped speech / speech of any lane
--     ex          the caller's `now` (ms) when the key's expiry was last set
--     M lo hi t   the capped total t of minutes lo..hi, the running sum of the window of M minutes
--   <m>         capped ms (realtime + sync_fresh) of minute m; h<h> of hour h; d<d> of UTC day d
--   f<m> b<m> c<m>   ms of minute m in the sync_fresh, sync_backfill, custom_stt lane; the
--               realtime lane's is <m> minus f<m> (speech is never negative). Earlier scripts
--               also wrote it as r<m>; those fields are ignored and go with their hour's sweep.
--   u<h>        uncapped ms of hour h (so pruning knows which hours hold uncapped minutes)
--
-- The state is one field, read and written once per call and decoded by C (cmsgpack), because
-- decoding it in Lua was most of a report's cost: nine fields (and string.match on three of them)
-- cost several times the one. The running sums are only ever written together with the state, by
-- the call that moved them, so they need no version. Earlier scripts kept the state in fields of
-- its own (hz pm mx ma ex, v = a version bumped by every recording call, w<M> = "lo hi total v",
-- valid while v was the hash's); `load_state` still reads those, and record.lua replaces them with
-- `s` on the user's next report (also when an old replica wrote them after that, during a rolling
-- upgrade: the buckets are the same fields in both, so only the state is merged).
--
-- A window of M minutes at minute n is the minutes max(n - M + 1, hz)..n. Its total is kept as a
-- running sum: a later call moves its two edges and adds or subtracts only the minutes
-- that entered or left, so a user reporting every minute reads one minute field per window,
-- whatever their history. A range that has to be summed afresh (a new window length, a long
-- pause, `now` going back) is cut greedily into days, hours and single minutes (at most
-- 59 + 23 + days + 23 + 59 fields) and clipped at the newest capped minute, so it costs nothing
-- past the user's last speech. An hour or day field is used only when its whole span lies inside
-- the range, so speech stamped in the future never leaks into a total.
--
-- Numbers are costly in Redis's Lua (5.1): formatting one takes a string.format, and `tonumber`
-- parses a string twice (lua_isnumber, then lua_tonumber) where arithmetic parses it once. So the
-- scripts read numbers from ARGV and from the hash with `+ 0` (or straight into a sum), and a minute
-- the caller already spelled out in ARGV is taken from `spelled` instead of formatted again.
local function fmt(n)
  return string.format('%d', n)
end

-- Minute -> its field name, for the minutes a script found spelled out in its ARGV.
local spelled = {}

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
      name = spelled[x] or fmt(x)
      x = x + 1
    end
    names[#names + 1] = name
    signs[#signs + 1] = sign
  end
end

-- Plans every window's total at minute `now_min`: from its running sum in the state `st` when
-- that overlaps the new range, else afresh. Appends the fields to read to `names` (with `signs`);
-- returns per window { lo, hi, base, first, last }: the total is base plus the signed values of
-- names[first..last].
local function plan_windows(windows, st, now_min, hz, mx, names, signs)
  local plans = {}
  for w = 1, #windows do
    local lo, hi = now_min - windows[w] + 1, now_min
    if hz and lo < hz then
      lo = hz
    end
    local first, base = #names + 1, 0
    if hz and lo <= hi then
      local l, h, t
      for j = 6, #st - 3, 4 do
        if st[j] == windows[w] then
          l, h, t = st[j + 1], st[j + 2], st[j + 3]
          break
        end
      end
      if l and l <= h and l <= hi and lo <= h then
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
        sum = sum + signs[i] * value
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

-- The fields of the state as earlier scripts kept it (see the top), for the given windows.
local function old_state_names(windows)
  local names = { 'hz', 'pm', 'mx', 'ma', 'ex', 'v' }
  for w = 1, #windows do
    names[6 + w] = 'w' .. fmt(windows[w])
  end
  return names
end

-- The meter's state as a flat list (hz, pm, mx, ma, ex, then M, lo, hi, total per window; absent
-- values false), from `packed` (the field `s`, or nil) and, when `old` is true (the field `hz`
-- exists), from the state fields of earlier scripts, read here. With both, an old script wrote
-- after `s`: its buckets are in the hash, so the newest minutes and the horizon are the later of
-- the two, the prune mark the earlier, and every running sum is cut afresh.
local function load_state(key, packed, old, windows)
  local st
  if packed then
    st = { cmsgpack.unpack(packed) }
  else
    st = { false, false, false, false, false }
  end
  if not old then
    return st
  end
  local names = old_state_names(windows)
  local fields = redis.call('HMGET', key, unpack(names))
  for i = 1, 5 do
    local value = tonumber(fields[i])
    if value then
      local have = st[i]
      if not have then
        st[i] = value
      elseif i == 2 then
        st[i] = math.min(have, value)
      elseif i ~= 5 then
        st[i] = math.max(have, value)
      end
    end
  end
  local sums = { st[1], st[2], st[3], st[4], st[5] }
  if not packed then
    for w = 1, #windows do
      local l, h, t, sv
      if fields[6 + w] then
        l, h, t, sv = string.match(fields[6 + w], '^(%-?%d+) (%-?%d+) (%-?%d+) (%d+)$')
      end
      if l and sv == fields[6] then
        sums[#sums + 1] = windows[w]
        sums[#sums + 1] = tonumber(l)
        sums[#sums + 1] = tonumber(h)
        sums[#sums + 1] = tonumber(t)
      end
    end
  end
  return sums
end

-- The state field `s` (see the top): hz, pm, mx, ma, ex (false when unset), then each window's
-- length, first and last minute and total. Written over `state` (the loaded state, no longer
-- needed), which usually has the size already: growing a table is a good part of its cost.
local function pack_state(state, hz, pm, mx, ma, ex, windows, plans, totals)
  state[1], state[2], state[3], state[4], state[5] = hz, pm, mx or false, ma or false, ex or false
  local j = 5
  for w = 1, #windows do
    local p = plans[w]
    state[j + 1], state[j + 2], state[j + 3], state[j + 4] = windows[w], p[1], p[2], totals[w]
    j = j + 4
  end
  return cmsgpack.pack(unpack(state, 1, j))
end

-- The values of `names` (a reply of HMGET), taking those already read from `known` (name -> value,
-- false = absent) and reading the rest with one HMGET. Also returns how many fields it read.
local function fetch(key, names, known)
  local values, missing, where = {}, nil, nil
  for i = 1, #names do
    local value = known[names[i]]
    if value == nil then
      if not missing then
        missing, where = {}, {}
      end
      missing[#missing + 1] = names[i]
      where[#where + 1] = i
    elseif value then
      values[i] = value
    end
  end
  if not missing then
    return values, 0
  end
  local got = hcall('HMGET', key, missing)
  for j = 1, #missing do
    values[where[j]] = got[j]
  end
  return values, #missing
end
