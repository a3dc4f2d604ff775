-- seen: find the token's active session or open one.
-- ARGV: 1 now, 2 idle, 3 retention, 4 refresh, 5 token hash, 6 new session id,
-- 7 new session record, 8 device id, 9 device record, 10 mode (sight|login),
-- 11 user, 12 realm, 13 revoke hold, 14 ip
-- Returns {status, session id, started, last seen, reason, new device (0/1), closed...}.
local now, idle, ret, refresh = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokh, devid, ip, login = ARGV[5], ARGV[8], ARGV[14], ARGV[10] == 'login'
local closed = {}

local draw = redis.call('HGET', K_DEVS, devid)
if draw and cjson.decode(draw)[D_BLOCKED] == 1 then
  return {'device_blocked', '', 0, 0, 'device_blocked', 0}
end

local sid = redis.call('HGET', K_TOK, tokh)
if sid then
  local raw = redis.call('HGET', K_SESS, sid)
  if raw then
    local r = cjson.decode(raw)
    if r[S_END] == 0 then
      if now - r[S_LAST] > idle then
        table.insert(closed, close(sid, r, r[S_LAST], 'idle'))
      elseif login then
        table.insert(closed, close(sid, r, now, 'replaced'))
      else
        local changed = false
        if now - r[S_LAST] >= refresh then
          r[S_LAST] = now
          changed = true
        end
        if ip ~= '' and r[S_IP] ~= ip then
          r[S_IP] = ip
          changed = true
        end
        if changed then
          redis.call('HSET', K_SESS, sid, cjson.encode(r))
          redis.call('ZADD', K_ACT, r[S_LAST], sid)
          redis.call('HSET', K_META, 'last', r[S_LAST])
          touch_device(r[S_DEV], r[S_LAST], ip)
          expire_all(ret)
        end
        return {'active', sid, r[S_START], r[S_LAST], '', 0}
      end
    elseif blocks_token(r[S_REASON]) and not login and now - r[S_END] < tonumber(ARGV[13]) then
      return {'revoked', sid, r[S_START], r[S_LAST], r[S_REASON], 0}
    end
  end
end

local nsid = ARGV[6]
redis.call('HSET', K_SESS, nsid, ARGV[7])
redis.call('HSET', K_TOK, tokh, nsid)
redis.call('ZADD', K_ACT, now, nsid)
redis.call('ZADD', K_HIST, now, nsid)
redis.call('HSET', K_META, 'user', ARGV[11], 'realm', ARGV[12], 'last', now)
local newdev = 0
if not touch_device(devid, now, ip) then
  redis.call('HSET', K_DEVS, devid, ARGV[9])
  redis.call('ZADD', K_DEVZ, now, devid)
  newdev = 1
end
trim(now, ret)
expire_all(ret)
local out = {'opened', nsid, now, now, '', newdev}
for _, c in ipairs(closed) do
  table.insert(out, c)
end
return out
