-- Presence keys: KEYS[1] clients (hash client -> info), KEYS[2] expiry (zset client -> ms),
-- KEYS[3] users (hash user -> count of clients), KEYS[4] client-users (hash client -> user).
-- Scores are in the caller's clock (ms), so every replica compares the same kind of time.
-- Included before the scripts that first drop expired entries.
local function clean(now)
  local expired = redis.call('zrangebyscore', KEYS[2], '-inf', now)
  for _, client in ipairs(expired) do
    redis.call('zrem', KEYS[2], client)
    redis.call('hdel', KEYS[1], client)
    local user = redis.call('hget', KEYS[4], client)
    if user then
      redis.call('hdel', KEYS[4], client)
      if redis.call('hincrby', KEYS[3], user, -1) <= 0 then
        redis.call('hdel', KEYS[3], user)
      end
    end
  end
end
