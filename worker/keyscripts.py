"""The key pool's Redis scripts, and the layout of the state they keep (:mod:`worker.keys`).

Every decision that reads and writes a key's shared state is one of these scripts, so two
processes can never both take the last slot of a pacing window.

Redis layout (``{ns}`` is ``REDIS_NAMESPACE``; key names match ``[A-Za-z0-9_.-]``, so ``:`` is an
unambiguous separator)::

    {ns}:keys:{provider}:{name}                  HASH, one per key, kept until deleted by hand
        last_used          epoch seconds of the last hand-out (for people)
        lru                value of {ns}:keys:seq at the last hand-out (LRU order: exact even
                           when two hand-outs share a microsecond or the clock steps back)
        uses               hand-outs, ever
        last_success       epoch seconds of the last report_success
        errors             failures reported, ever (any class)
        last_error         "<CLASS>: <message>", at most 200 characters of message
        last_error_at      epoch seconds
        cooling_until      epoch seconds; only ever raised (a past value means "not cooling")
        quarantine_reason  "<CLASS>: <message>" or an operator's text; present = quarantined
        quarantined_at     epoch seconds of the first quarantine since the last enable
        disabled_reason    operator's text; present = disabled
        disabled_at        epoch seconds
    {ns}:keys:{provider}:{unit}:pace:{purpose}   ZSET, one per paced purpose and unit: the
        unit is the key's *account* for a purpose paced per account, the key's *name* for one
        paced per key (a key without ``@account`` is its own account, named after it, so its
        zsets are the same either way). Member "<µs>-<seq>", score = integer epoch
        *microseconds* of each hand-out (integers, so window arithmetic is exact); trimmed to
        the last max(window, 60 s) and expiring after that, which leaves a minute of history
        for inspection. Within one purpose every unit has one scope, so an account and a key of
        the same name never share a zset.
    {ns}:keys:seq                                STRING, counter of hand-outs (all providers); it
        has one segment fewer than any key's hash, so no key name can collide with it.
"""

from __future__ import annotations

# Shared prelude. ARGV[1] is always the time override in seconds ('' = Redis server TIME).
PRELUDE = """
local function clock_us()
  if ARGV[1] ~= '' then
    return math.floor(tonumber(ARGV[1]) * 1000000 + 0.5)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(us) return string.format('%.0f', us) end
local function secs(us) return string.format('%.6f', us / 1000000) end
local function to_us(s)
  if not s then return nil end
  return math.floor(tonumber(s) * 1000000 + 0.5)
end
local function extend(hkey, until_us)
  local old = to_us(redis.call('HGET', hkey, 'cooling_until'))
  if old and old >= until_us then return old end
  redis.call('HSET', hkey, 'cooling_until', secs(until_us))
  return until_us
end
local function quarantine(hkey, reason, now)
  if redis.call('HEXISTS', hkey, 'quarantine_reason') == 0 then
    redis.call('HSET', hkey, 'quarantine_reason', reason, 'quarantined_at', secs(now))
  end
end
"""

# Pick the least recently used key that can serve, and record the use, in one step.
# KEYS[2i-1], KEYS[2i]: state hash and pace zset of candidate i, in configuration order (keys
# of one account share the zset of a purpose paced per account); the last KEYS entry is the
# hand-out counter, whose value also makes each zset member unique.
# ARGV[2] limit count (0 = unpaced), ARGV[3] window µs, ARGV[4] history µs,
# ARGV[5] '1' = skip quarantined/disabled keys (pool), '0' = ignore those states (named),
# ARGV[6..] key names in the same order.
# Returns {'ok', name} or {'no', retry_at_us or '', now_us, one code per key}; a code is
# 'd:' disabled, 'q:<reason>' quarantined, 'c:' cooling, 'p:' paced, 'cp:' both.
ACQUIRE = (
    PRELUDE
    + """
local now = clock_us()
local count = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local history = tonumber(ARGV[4])
local screen = ARGV[5] == '1'
local best, best_used, retry = nil, nil, nil
local report = {}
local n_keys = (#KEYS - 1) / 2
for i = 1, n_keys do
  local hkey, zkey = KEYS[2 * i - 1], KEYS[2 * i]
  local f = redis.call('HMGET', hkey, 'disabled_reason', 'quarantine_reason',
                       'cooling_until', 'lru')
  if screen and f[1] then
    report[i] = 'd:'
  elseif screen and f[2] then
    report[i] = 'q:' .. f[2]
  else
    local free_at, why = now, ''
    local cool = to_us(f[3])
    if cool and cool > now then free_at, why = cool, 'c' end
    if count > 0 then
      redis.call('ZREMRANGEBYSCORE', zkey, '-inf', int(now - history))
      local cutoff = '(' .. int(now - window)
      local n = redis.call('ZCOUNT', zkey, cutoff, '+inf')
      if n >= count then
        -- the key is free again when the oldest use that keeps it at the limit leaves the window
        local e = redis.call('ZRANGEBYSCORE', zkey, cutoff, '+inf', 'WITHSCORES',
                             'LIMIT', n - count, 1)
        local paced_until = tonumber(e[2]) + window
        if paced_until > free_at then free_at = paced_until end
        why = why .. 'p'
      end
    end
    if why == '' then
      local used = tonumber(f[4]) or 0
      if best == nil or used < best_used then best, best_used = i, used end
    else
      report[i] = why .. ':'
      if retry == nil or free_at < retry then retry = free_at end
    end
  end
end
if best then
  local hkey, zkey = KEYS[2 * best - 1], KEYS[2 * best]
  local uses = redis.call('HINCRBY', hkey, 'uses', 1)
  local seq = redis.call('INCR', KEYS[#KEYS])
  redis.call('HSET', hkey, 'last_used', secs(now), 'lru', seq)
  if count > 0 then
    redis.call('ZADD', zkey, int(now), int(now) .. '-' .. seq)
    redis.call('PEXPIRE', zkey, int(math.ceil(history / 1000)))
  end
  return {'ok', ARGV[5 + best]}
end
local out = {'no', retry and int(retry) or '', int(now)}
for i = 1, n_keys do out[#out + 1] = report[i] end
return out
"""
)

# KEYS[1] state hash; ARGV[2] last_error text; ARGV[3] cooldown seconds or '';
# ARGV[4] quarantine reason or ''.
FAILURE = (
    PRELUDE
    + """
local now = clock_us()
redis.call('HINCRBY', KEYS[1], 'errors', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[2], 'last_error_at', secs(now))
if ARGV[3] ~= '' then extend(KEYS[1], now + math.floor(tonumber(ARGV[3]) * 1000000 + 0.5)) end
if ARGV[4] ~= '' then quarantine(KEYS[1], ARGV[4], now) end
return secs(now)
"""
)

# KEYS[1] state hash; ARGV[2] absolute epoch seconds. Returns the effective cooling_until.
EXTEND = (
    PRELUDE
    + """
return secs(extend(KEYS[1], to_us(ARGV[2])))
"""
)

# KEYS[1] state hash; ARGV[2] reason.
QUARANTINE = (
    PRELUDE
    + """
quarantine(KEYS[1], ARGV[2], clock_us())
return 1
"""
)

# KEYS[1] state hash; ARGV[2] field holding the time ('disabled_at', 'last_success');
# ARGV[3], ARGV[4] an optional extra field and value.
STAMP = (
    PRELUDE
    + """
redis.call('HSET', KEYS[1], ARGV[2], secs(clock_us()))
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
return 1
"""
)
