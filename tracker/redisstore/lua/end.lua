-- end: close sessions. ARGV: 1 now, 2 mode (tok|tokfree|sid|all|idle), 3 value
-- (token hash, session id, or the session id to spare for all), 4 reason, 5 idle.
-- tokfree is tok that also forgets the token's mapping, whatever the reason.
-- Returns the records it closed.
local now, mode, value, reason, idle = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}

local function end_one(sid)
  local raw = redis.call('HGET', K_SESS, sid)
  if not raw then
    return
  end
  local r = cjson.decode(raw)
  if r[S_END] ~= 0 then
    return
  end
  if now - r[S_LAST] > idle and reason == 'logout' then
    -- it had timed out, but the logout is final: its tokens stay refused
    table.insert(out, close(sid, r, r[S_LAST], reason))
  elseif now - r[S_LAST] > idle and not blocks_token(reason) then
    -- it had already timed out: record what really happened
    table.insert(out, close(sid, r, r[S_LAST], 'idle'))
  else
    table.insert(out, close(sid, r, now, reason))
  end
end

if mode == 'tok' or mode == 'tokfree' then
  local sid = redis.call('HGET', K_TOK, value)
  if sid then
    end_one(sid)
    if mode == 'tokfree' then
      redis.call('HDEL', K_TOK, value)
    end
  end
elseif mode == 'sid' then
  end_one(value)
elseif mode == 'all' then
  for _, sid in ipairs(redis.call('ZRANGE', K_ACT, 0, -1)) do
    if sid ~= value then
      end_one(sid)
    end
  end
elseif mode == 'idle' then
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', K_ACT, '-inf', '(' .. (now - idle), 'LIMIT', 0, 1000)) do
    end_one(sid)
  end
end
return out
