-- seen: find the token's active session or open one, enforcing the limits.
-- ARGV: 1 now, 2 idle, 3 retention, 4 refresh, 5 token hash, 6 new session id,
-- 7 new session record, 8 device id, 9 device record, 10 mode (sight|login),
-- 11 user, 12 realm, 13 revoke hold, 14 ip, 15 limits (JSON), 16 ip key,
-- 17 location text, 18 days (JSON, see days.go), 19 trail path, 20 trail length,
-- 21 device known (1: from a valid device cookie; 0: minted for this request;
--    either way the request's device is the one used, never the session's),
-- 22 open (1: open a session when the token has no active one; 0: answer 'none')
-- Returns {status, session id, started, last seen, reason, new device (0/1),
-- device id used, prior, risk, number of closed, closed..., violations...};
-- prior is the active session's record before this request when the request
-- moved it (another IP or another device), or, opening a session without a
-- login, the token's latest ended session, else ''; risk the signals raised
-- on the session (KEYS[13], the user's risk signals, risk.lua's).
local now, idle, ret, refresh = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokh, devid, ip, login = ARGV[5], ARGV[8], ARGV[14], ARGV[10] == 'login'
local ipkey, loc = ARGV[16], ARGV[17]
local days = cjson.decode(ARGV[18])
local path, trailn = ARGV[19], tonumber(ARGV[20])
local closed, viol = {}, {}
local prior = ''
local mayopen = ARGV[22] ~= '0'

local function reply(status, sid, started, last, reason, newdev)
  if #viol > 0 then
    expire_all(ret) -- a refusal may have written the first violation
  end
  local risk = ''
  if sid ~= '' and KEYS[13] then
    risk = redis.call('HGET', KEYS[13], 's:' .. sid) or ''
  end
  local out = {status, sid, started, last, reason, newdev, devid, prior, risk, #closed}
  for _, c in ipairs(closed) do
    table.insert(out, c)
  end
  for _, v in ipairs(viol) do
    table.insert(out, v)
  end
  return out
end

local draw = redis.call('HGET', K_DEVS, devid)
if draw and cjson.decode(draw)[D_BLOCKED] == 1 then
  return reply('refused', '', 0, 0, 'device_blocked', 0)
end

local lim = limits(ARGV[15])

-- ip_ok: may this request's IP (counted by its key) be used?
local function ip_ok(sid)
  local p = lim['max_ips']
  if ipkey == '' or not p or p.max == 0 then
    return true
  end
  redis.call('ZREMRANGEBYSCORE', K_IPS, '-inf', '(' .. (now - p.window))
  if redis.call('ZSCORE', K_IPS, ipkey) then
    return true
  end
  local n = redis.call('ZCARD', K_IPS)
  if n < p.max then
    return true
  end
  local action = p.action or 'block'
  table.insert(viol, violation(now, 'max_ips', p, n + 1, ip, loc, devid, sid, action))
  return action ~= 'block'
end

-- device_ok: may this request's device be used?
local function device_ok(sid)
  local p = lim['max_devices']
  if draw or not p or p.max == 0 then
    return true
  end
  local n = redis.call('ZCOUNT', K_DEVZ, '(' .. (now - p.window), '+inf')
  if n < p.max then
    return true
  end
  local action = p.action or 'block'
  table.insert(viol, violation(now, 'max_devices', p, n + 1, ip, loc, devid, sid, action))
  return action ~= 'block'
end

local newdev = 0
local ndev = cjson.decode(ARGV[9])
local function use_device()
  if not touch_device(devid, now, ip, ndev) then
    local d = ndev
    d[2], d[D_LAST] = now, now
    redis.call('HSET', K_DEVS, devid, cjson.encode(d))
    redis.call('ZADD', K_DEVZ, now, devid)
    newdev = 1
  end
end

local sid = redis.call('HGET', K_TOK, tokh)
if sid then
  local raw = redis.call('HGET', K_SESS, sid)
  if raw then
    local r = cjson.decode(raw)
    -- A known token without a valid device cookie is another browser
    -- until proven otherwise (a copied cookie): it gets a device of its
    -- own below, counted by max_devices, and never the session's device
    -- cookie.
    if r[S_END] == 0 then
      if now - r[S_LAST] > idle then
        table.insert(closed, close(sid, r, r[S_LAST], 'idle'))
      elseif login then
        table.insert(closed, close(sid, r, now, 'replaced'))
      else
        local changed = false
        if (ip ~= '' and r[S_IP] ~= ip) or devid ~= r[S_DEV] then
          prior = raw
        end
        if ip ~= '' and r[S_IP] ~= ip then
          if not ip_ok(sid) then
            return reply('refused', sid, r[S_START], r[S_LAST], 'max_ips', 0)
          end
          if not first_layout(r) then
            -- The session keeps where it started; its location
            -- follows its IP (this request's, in the new record).
            if (r[S_LOGIN_IP] or '') == '' then
              r[S_LOGIN_IP], r[S_LOGIN_LOC] = r[S_IP], r[S_LOC]
            end
            r[S_LOC] = cjson.decode(ARGV[7])[S_LOC]
          end
          r[S_IP] = ip
          set_ipkey(r, ip, ipkey)
          changed = true
        end
        if devid ~= r[S_DEV] then
          -- the session's token in another browser
          if not device_ok(sid) then
            return reply('refused', sid, r[S_START], r[S_LAST], 'max_devices', 0)
          end
          use_device()
        end
        if now - r[S_LAST] >= refresh then
          add_activity(r, r[S_LAST], now, days)
          add_trail(sid, now, path, trailn)
          r[S_LAST] = now
          changed = true
        end
        if changed then
          redis.call('HSET', K_SESS, sid, cjson.encode(r))
          redis.call('ZADD', K_ACT, r[S_LAST], sid)
          redis.call('HSET', K_META, 'last', r[S_LAST])
          local ipk = ipkey_of(r)
          if ipk and ipk ~= '' then
            redis.call('ZADD', K_IPS, now, ipk)
          end
          local nd = nil
          if devid == r[S_DEV] then
            nd = ndev -- this request describes the session's device
          end
          touch_device(r[S_DEV], r[S_LAST], ip, nd)
          renew_ttls(now, ret, {K_DAYS, K_IPS, K_TRAIL, K_DEVS, K_DEVZ})
        end
        return reply('active', sid, r[S_START], r[S_LAST], '', newdev)
      end
    elseif holds(r[S_REASON]) and not login and now - r[S_END] < tonumber(ARGV[13]) then
      return reply('refused', sid, r[S_START], r[S_LAST], r[S_REASON], 0)
    end
  end
end

if not mayopen then
  return reply('none', '', 0, 0, '', 0)
end
if not login and prior == '' then
  -- A token seen again after its session ended (idled out, swept):
  -- its latest session among the user's recent ones is the prior, so
  -- a cookie replayed hours later in another browser is still a move.
  for _, s in ipairs(redis.call('ZREVRANGE', K_HIST, 0, 19)) do
    local raw = redis.call('HGET', K_SESS, s)
    local r = raw and cjson.decode(raw)
    if r and r[S_TOK] == tokh then
      r[S_ID] = s -- the reply names the session (see close)
      prior = cjson.encode(r)
      break
    end
  end
end
local nsid = ARGV[6]
if not ip_ok('') then
  return reply('refused', '', 0, 0, 'max_ips', 0)
end
if not device_ok('') then
  return reply('refused', '', 0, 0, 'max_devices', 0)
end
-- Idle sessions do not count against max_sessions.
for _, s in ipairs(redis.call('ZRANGEBYSCORE', K_ACT, '-inf', '(' .. (now - idle), 'LIMIT', 0, 100)) do
  local raw = redis.call('HGET', K_SESS, s)
  if raw then
    local r = cjson.decode(raw)
    if r[S_END] == 0 then
      table.insert(closed, close(s, r, r[S_LAST], 'idle'))
    end
  else
    redis.call('ZREM', K_ACT, s)
  end
end
local p = lim['max_sessions']
if p and p.max > 0 then
  local n = redis.call('ZCARD', K_ACT)
  if n >= p.max then
    local action = p.action or 'block'
    table.insert(viol, violation(now, 'max_sessions', p, n + 1, ip, loc, devid, '', action))
    if action == 'block' then
      return reply('refused', '', 0, 0, 'max_sessions', 0)
    elseif action == 'evict_oldest' then
      for _, s in ipairs(redis.call('ZRANGE', K_ACT, 0, n - p.max)) do
        local r = cjson.decode(redis.call('HGET', K_SESS, s))
        table.insert(closed, close(s, r, now, 'evicted'))
      end
    end
  end
end

local rec = cjson.decode(ARGV[7])
-- The store's clock decides, whatever the caller filled in.
rec[S_START], rec[S_LAST], rec[S_END], rec[S_REASON] = now, now, 0, ''
add_activity(rec, now, now, days)
redis.call('HSET', K_SESS, nsid, cjson.encode(rec))
add_trail(nsid, now, path, trailn)
redis.call('HSET', K_TOK, tokh, nsid)
redis.call('ZADD', K_ACT, now, nsid)
redis.call('ZADD', K_HIST, now, nsid)
redis.call('HSET', K_META, 'user', ARGV[11], 'realm', ARGV[12], 'last', now, 'exp', now)
if ipkey ~= '' then
  redis.call('ZADD', K_IPS, now, ipkey)
end
use_device()
trim(now, ret, days.cut)
expire_all(ret)
return reply('opened', nsid, now, now, '', newdev)
