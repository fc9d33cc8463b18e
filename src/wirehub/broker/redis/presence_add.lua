-- ARGV: now, expire_at, client, info, user (after presence_clean.lua)
clean(ARGV[1])
redis.call('hset', KEYS[1], ARGV[3], ARGV[4])
redis.call('zadd', KEYS[2], ARGV[2], ARGV[3])
local old = redis.call('hget', KEYS[4], ARGV[3])
if old ~= ARGV[5] then
  if old then
    if redis.call('hincrby', KEYS[3], old, -1) <= 0 then
      redis.call('hdel', KEYS[3], old)
    end
  end
  redis.call('hset', KEYS[4], ARGV[3], ARGV[5])
  redis.call('hincrby', KEYS[3], ARGV[5], 1)
end
-- The keys live as long as their longest-lived entry: a crashed node leaves nothing behind.
local last = redis.call('zrange', KEYS[2], -1, -1, 'WITHSCORES')
local ttl = math.max(1, math.ceil(tonumber(last[2]) - tonumber(ARGV[1])))
for i = 1, 4 do
  redis.call('pexpire', KEYS[i], ttl)
end
return 1
