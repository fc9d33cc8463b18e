-- Presence keys: KEYS[1] clients (hash client -> info), KEYS[2] expiry (zset client -> ms),
-- KEYS[3] users (hash user -> count of clients), KEYS[4] client-users (hash client -> user).
-- Scores are in the caller's clock (ms), so every replica compares the same kind of time.
-- ARGV: client
redis.call('zrem', KEYS[2], ARGV[1])
redis.call('hdel', KEYS[1], ARGV[1])
local user = redis.call('hget', KEYS[4], ARGV[1])
if user then
  redis.call('hdel', KEYS[4], ARGV[1])
  if redis.call('hincrby', KEYS[3], user, -1) <= 0 then
    redis.call('hdel', KEYS[3], user)
  end
end
return 1
