-- touch: refresh last activity of an active session.
-- ARGV: 1 now, 2 session id, 3 idle, 4 retention, 5 days (JSON), 6 trail path, 7 trail length
-- Returns {'active'}, {'active', agent, location, device agent, device
-- location} when the session passed another day since its start (the
-- caller renews those descriptions), or {'ended', reason}.
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
local out = {'active'}
if now > r[S_LAST] then
  local renew = new_day(r[S_START], r[S_LAST], now)
  add_activity(r, r[S_LAST], now, cjson.decode(ARGV[5]))
  add_trail(sid, now, ARGV[6], tonumber(ARGV[7]))
  r[S_LAST] = now
  redis.call('HSET', K_SESS, sid, cjson.encode(r))
  redis.call('ZADD', K_ACT, now, sid)
  redis.call('HSET', K_META, 'last', now)
  local touched = {K_DAYS}
  local ipk = ipkey_of(r)
  if ipk and ipk ~= '' then
    redis.call('ZADD', K_IPS, now, ipk)
    table.insert(touched, K_IPS)
  end
  if ARGV[6] ~= '' then
    table.insert(touched, K_TRAIL)
  end
  local d = touch_device(r[S_DEV], now, '', nil)
  renew_ttls(now, ret, touched)
  if renew then
    local a, l = refs(r)
    local da, dl = '', ''
    if d and #d == D_FIELDS then
      da, dl = d[D_AGENT], d[D_LOC]
    end
    out = {'active', a, l, da, dl}
  end
end
return out
