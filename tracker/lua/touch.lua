-- touch: refresh last activity of an active session.
-- ARGV: 1 now, 2 session id, 3 idle, 4 retention, 5 days (JSON), 6 trail path, 7 trail length
-- Returns {'active'} or {'ended', reason}.
local now, sid, idle, ret = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('HGET', K_SESS, sid)
if not raw then
  return {'ended', 'gone'}
end
local r = cjson.decode(raw)
if r[S_END] ~= 0 then
  return {'ended', r[S_REASON]}
end
if now - r[S_LAST] > idle then
  close(sid, r, r[S_LAST], 'idle')
  return {'ended', 'idle'}
end
if now > r[S_LAST] then
  add_activity(r, r[S_LAST], now, cjson.decode(ARGV[5]))
  add_trail(sid, now, ARGV[6], tonumber(ARGV[7]))
  r[S_LAST] = now
  redis.call('HSET', K_SESS, sid, cjson.encode(r))
  redis.call('ZADD', K_ACT, now, sid)
  redis.call('HSET', K_META, 'last', now)
  local touched = {K_DAYS}
  if r[S_IPKEY] and r[S_IPKEY] ~= '' then
    redis.call('ZADD', K_IPS, now, r[S_IPKEY])
    table.insert(touched, K_IPS)
  end
  if ARGV[6] ~= '' then
    table.insert(touched, K_TRAIL)
  end
  touch_device(r[S_DEV], now, '')
  renew_ttls(now, ret, touched)
end
return {'active'}
