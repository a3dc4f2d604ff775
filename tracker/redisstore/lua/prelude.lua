-- Shared by every user script. Prepended by redis.go; not a script alone.
-- KEYS (all of one user, one hash tag): 1 meta, 2 tok, 3 sess, 4 act, 5 hist,
-- 6 devs, 7 devz, 8 ips, 9 violations, 10 violations by time, 11 days, 12 trail.
-- Records are the positional arrays of record.go (1-based here): the
-- stored layout (12 or 14 fields for a session, 7 for a device), or the first
-- layout (21 or 23, 16) of records written before; 1-8 (sessions) and 1-5
-- (devices) mean the same in both.
local K_META, K_TOK, K_SESS, K_ACT, K_HIST, K_DEVS, K_DEVZ = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_IPS, K_V, K_VZ, K_DAYS, K_TRAIL = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local S_ID, S_START, S_LAST, S_END, S_REASON, S_IP, S_DEV, S_TOK = 1, 2, 3, 4, 5, 6, 7, 8
local S_AGENT, S_LOC = 11, 12
-- where the session started, once it has moved (stored layout only)
local S_LOGIN_IP, S_LOGIN_LOC = 13, 14
local D_LAST, D_BLOCKED, D_IP, D_AGENT, D_LOC, D_FIELDS = 3, 4, 5, 6, 7, 7
local V_VIEWED = 11
local DAY_MS = 86400000

-- first_layout: a session record written before the stored layout.
local function first_layout(r)
  return #r > 14
end

local function s_ipkey_i(r)
  return first_layout(r) and 22 or 9
end

local function s_day_i(r)
  return first_layout(r) and 23 or 10
end

-- ipkey_of: the IP as max_ips counts it ('=' stands for the IP itself).
local function ipkey_of(r)
  local k = r[s_ipkey_i(r)]
  if k == '=' then
    return r[S_IP]
  end
  return k
end

local function set_ipkey(r, ip, key)
  if key ~= '' and key == ip then
    key = '='
  end
  r[s_ipkey_i(r)] = key
end

-- refs: a session's description references, '' for the first layout.
local function refs(r)
  if first_layout(r) then
    return '', ''
  end
  return r[S_AGENT], r[S_LOC]
end

-- new_day: did [from, to] pass a multiple of a day since start?
local function new_day(start, from, to)
  return math.floor((to - start) / DAY_MS) > math.floor((from - start) / DAY_MS)
end

-- blocks_token: a session ended so keeps its token mapping, so that the
-- token is found and refused (or, for device_blocked, checked again).
local function blocks_token(reason)
  return reason == 'revoked' or reason == 'device_blocked' or reason == 'evicted' or reason == 'logout'
end

-- holds: the token stays refused for the revoke hold.
local function holds(reason)
  return reason == 'revoked' or reason == 'evicted' or reason == 'logout'
end

-- close ends session sid (record r) at time at and returns its encoding.
-- The reply names the session in the record, which the stored one leaves out.
local function close(sid, r, at, reason)
  r[S_END] = at
  r[S_REASON] = reason
  redis.call('HSET', K_SESS, sid, cjson.encode(r))
  redis.call('ZREM', K_ACT, sid)
  if not blocks_token(reason) and redis.call('HGET', K_TOK, r[S_TOK]) == sid then
    redis.call('HDEL', K_TOK, r[S_TOK])
  end
  local id = r[S_ID]
  r[S_ID] = sid
  local enc = cjson.encode(r)
  r[S_ID] = id
  return enc
end

-- trim drops sessions that ended before the retention window, a bounded
-- number per call so one write never stalls Redis, and days before cut.
local function trim(now, ret, cutday)
  redis.call('ZREMRANGEBYSCORE', K_IPS, '-inf', '(' .. (now - ret))
  if cutday and cutday ~= '' then
    for _, f in ipairs(redis.call('HKEYS', K_DAYS)) do
      if string.sub(f, 1, 10) < cutday then
        redis.call('HDEL', K_DAYS, f)
      end
    end
  end
  local cut = now - ret
  local old = redis.call('ZRANGEBYSCORE', K_HIST, '-inf', '(' .. cut, 'LIMIT', 0, 50)
  local dropped = {}
  for _, sid in ipairs(old) do
    local raw = redis.call('HGET', K_SESS, sid)
    local drop = true
    if raw then
      local r = cjson.decode(raw)
      if r[S_END] == 0 or r[S_END] >= cut then
        drop = false
      elseif redis.call('HGET', K_TOK, r[S_TOK]) == sid then
        redis.call('HDEL', K_TOK, r[S_TOK])
      end
    end
    if drop then
      dropped[sid] = true
      redis.call('HDEL', K_TRAIL, sid)
      redis.call('HDEL', K_SESS, sid)
      redis.call('ZREM', K_HIST, sid)
      redis.call('ZREM', K_ACT, sid)
    end
  end
  if next(dropped) then
    -- other tokens of the dropped sessions (rotated cookies, aliases)
    local tok = redis.call('HGETALL', K_TOK)
    for i = 1, #tok, 2 do
      if dropped[tok[i + 1]] then
        redis.call('HDEL', K_TOK, tok[i])
      end
    end
  end
  local oldv = redis.call('ZRANGEBYSCORE', K_VZ, '-inf', '(' .. cut, 'LIMIT', 0, 50)
  for _, id in ipairs(oldv) do
    local raw = redis.call('HGET', K_V, id)
    if raw and cjson.decode(raw)[V_VIEWED] == 0 then
      redis.call('HINCRBY', K_META, 'unviewed', -1)
    end
    redis.call('HDEL', K_V, id)
    redis.call('ZREM', K_VZ, id)
  end
  local olddev = redis.call('ZRANGEBYSCORE', K_DEVZ, '-inf', '(' .. cut, 'LIMIT', 0, 50)
  for _, id in ipairs(olddev) do
    local raw = redis.call('HGET', K_DEVS, id)
    -- a blocked device stays blocked whatever its age
    if not raw or cjson.decode(raw)[D_BLOCKED] == 0 then
      redis.call('HDEL', K_DEVS, id)
      redis.call('ZREM', K_DEVZ, id)
    end
  end
end

local function expire_all(ret)
  for i = 1, 12 do
    redis.call('PEXPIRE', KEYS[i], ret)
  end
end

-- renew_ttls is the refresh's cheaper expire_all: all TTLs are renewed at
-- most once a day per user (so keys expire retention after the last
-- activity, to within a day); keys the refresh may have just created get
-- theirs at once.
local function renew_ttls(now, ret, touched)
  local exp = tonumber(redis.call('HGET', K_META, 'exp') or '0')
  if now - exp >= 86400000 or ret < 172800000 then
    redis.call('HSET', K_META, 'exp', now)
    expire_all(ret)
    return
  end
  for _, k in ipairs(touched) do
    redis.call('PEXPIRE', k, ret)
  end
end

-- touch_device refreshes last seen and IP of a known device and, given nd
-- (the device as this request describes it), its descriptions: a device is
-- described as its newest session.
local function touch_device(id, now, ip, nd)
  local raw = redis.call('HGET', K_DEVS, id)
  if not raw then
    return nil
  end
  local d = cjson.decode(raw)
  if nd and #d ~= D_FIELDS then
    -- first layout: rewritten in the stored one, described anew
    d = {'', d[2], d[D_LAST], d[D_BLOCKED], d[D_IP], '', ''}
  end
  d[D_LAST] = now
  if ip ~= '' then
    d[D_IP] = ip
  end
  if nd then
    if nd[D_AGENT] ~= '' then
      d[D_AGENT] = nd[D_AGENT]
    end
    if nd[D_LOC] ~= '' then
      d[D_LOC] = nd[D_LOC]
    end
  end
  redis.call('HSET', K_DEVS, id, cjson.encode(d))
  redis.call('ZADD', K_DEVZ, now, id)
  return d
end

-- limits returns the user's effective limits: the realm's (arg), with the
-- user's overrides; none for an exempt user.
local function limits(arg)
  if redis.call('HGET', K_META, 'exempt') == '1' then
    return {}
  end
  local l = cjson.decode(arg)
  local ov = redis.call('HGET', K_META, 'limits')
  if ov then
    for k, v in pairs(cjson.decode(ov)) do
      l[k] = v
    end
  end
  return l
end

-- violation records one violation and returns its encoding.
local function violation(now, policy, p, observed, ip, loc, dev, sid, action)
  local seq = redis.call('HINCRBY', K_META, 'vseq', 1)
  local id = string.format('%.0f-%d', now, seq)
  local rec = cjson.encode({id, now, policy, p.max, observed, ip, loc, dev, sid, action, 0})
  redis.call('HSET', K_V, id, rec)
  redis.call('ZADD', K_VZ, now, id)
  redis.call('HINCRBY', K_META, 'unviewed', 1)
  return rec
end

-- add_day adds dur ms of activity of session r to date, counting the
-- session once per date.
local function add_day(r, date, dur)
  if dur > 0 then
    redis.call('HINCRBY', K_DAYS, date, dur)
  end
  local di = s_day_i(r)
  if r[di] ~= date then
    redis.call('HINCRBY', K_DAYS, date .. '#n', 1)
    r[di] = date
  end
end

-- add_activity splits [from, to) between local dates. days (from Go)
-- holds the date at a time before from and each midnight after it.
local function add_activity(r, from, to, days)
  if not days or days.base == '' then
    return
  end
  local date, cur = days.base, from
  for _, b in ipairs(days.b) do
    local at, d = b[1], b[2]
    if at <= cur then
      date = d
    elseif at < to then
      add_day(r, date, at - cur)
      cur, date = at, d
    end
  end
  add_day(r, date, to - cur)
end

-- add_trail keeps the last n visited paths of session sid.
local function add_trail(sid, now, path, n)
  if path == '' or n <= 0 then
    return
  end
  local raw = redis.call('HGET', K_TRAIL, sid)
  local t = {}
  if raw then
    t = cjson.decode(raw)
  end
  table.insert(t, {now, path})
  while #t > n do
    table.remove(t, 1)
  end
  redis.call('HSET', K_TRAIL, sid, cjson.encode(t))
end
