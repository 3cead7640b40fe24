"""Server-side scripts that make each per-key write atomic and idempotent.

Each script handles a whole batch (KEYS = the batch's keys) and returns one status per key,
so a redone batch is harmless and a concurrent write is detected, never overwritten:

``0`` written · ``1`` already in the wanted state · ``2`` conflict (left untouched) ·
``3`` nothing to do (the key or field is absent on both sides).

Hash-field TTLs (HPEXPIRETIME) are carried over: HSET would otherwise clear them.
"""

from __future__ import annotations

WRITTEN, ALREADY, CONFLICT, ABSENT = 0, 1, 2, 3

_LUA_KEEP_FIELD_TTL = """
local function field_ttl(key, field)
  local ok, t = pcall(redis.call, 'HPEXPIRETIME', key, 'FIELDS', 1, field)
  if ok and type(t) == 'table' and tonumber(t[1]) and tonumber(t[1]) > 0 then
    return tonumber(t[1])
  end
  return nil
end
local function restore_ttl(key, field, t)
  if t then redis.call('HPEXPIREAT', key, t, 'FIELDS', 1, field) end
end
"""

CAS_HSET = (
    _LUA_KEEP_FIELD_TTL
    + """
-- ARGV: force, nfields, field_1..field_n, then per key and field: expected_sha1, new_value.
-- An empty expected_sha1 means "the backup had no such field": nothing to write. A shorter
-- expected_sha1 is a prefix (a digest the backup recorded): the current value's sha1 starts so.
local force = ARGV[1] == '1'
local nfields = tonumber(ARGV[2])
local out = {}
local base = 3 + nfields
for k = 1, #KEYS do
  local key = KEYS[k]
  local status = 3
  local pending = {}
  for f = 1, nfields do
    local field = ARGV[2 + f]
    local i = base + ((k - 1) * nfields + (f - 1)) * 2
    local expected, wanted = ARGV[i], ARGV[i + 1]
    if expected ~= '' then
      local current = redis.call('HGET', key, field)
      if not current then
        -- gone (the key or the field): absent, never recreated, not someone else's write
      elseif current == wanted then
        if status == 3 then status = 1 end
      elseif force or string.sub(redis.sha1hex(current), 1, #expected) == expected then
        pending[#pending + 1] = {field, wanted}
      else
        status = 2
      end
    end
  end
  if status ~= 2 or force then
    for _, p in ipairs(pending) do
      local t = field_ttl(key, p[1])
      redis.call('HSET', key, p[1], p[2])
      restore_ttl(key, p[1], t)
      status = 0
    end
  end
  out[k] = status
end
return out
"""
)

RENAME_KEYS = """
-- KEYS: src_1, dst_1, src_2, dst_2, ...  RENAMENX keeps the value and the TTL.
local out = {}
for i = 1, #KEYS, 2 do
  local src, dst = KEYS[i], KEYS[i + 1]
  local has_src = redis.call('EXISTS', src) == 1
  local has_dst = redis.call('EXISTS', dst) == 1
  if has_src and not has_dst then
    redis.call('RENAMENX', src, dst)
    out[#out + 1] = 0
  elseif has_dst and not has_src then
    out[#out + 1] = 1
  elseif has_src and has_dst then
    out[#out + 1] = 2
  else
    out[#out + 1] = 3
  end
end
return out
"""

RENAME_HASH_FIELDS = (
    _LUA_KEEP_FIELD_TTL
    + """
-- ARGV: old_1, new_1, old_2, new_2, ...; a key whose destination field exists while its
-- source field also exists is a conflict and is left untouched.
local out = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local status = 3
  for i = 1, #ARGV, 2 do
    local old, new = ARGV[i], ARGV[i + 1]
    local has_old = redis.call('HEXISTS', key, old) == 1
    local has_new = redis.call('HEXISTS', key, new) == 1
    if has_old and has_new then
      status = 2
    elseif has_new then
      if status == 3 then status = 1 end
    end
  end
  if status ~= 2 then
    for i = 1, #ARGV, 2 do
      local old, new = ARGV[i], ARGV[i + 1]
      local value = redis.call('HGET', key, old)
      if value then
        local t = field_ttl(key, old)
        redis.call('HSET', key, new, value)
        redis.call('HDEL', key, old)
        restore_ttl(key, new, t)
        status = 0
      end
    end
  end
  out[k] = status
end
return out
"""
)

RENAME_JSON_FIELDS = """
-- ARGV: old_path_1, new_path_1, ...  JSONPath values come back wrapped in [ ]; the inner
-- text is the exact serialization, written back with NX so nothing is overwritten.
local out = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local status = 3
  if redis.call('EXISTS', key) == 1 then
    for i = 1, #ARGV, 2 do
      local has_old = redis.call('JSON.GET', key, ARGV[i]) ~= '[]'
      local has_new = redis.call('JSON.GET', key, ARGV[i + 1]) ~= '[]'
      if has_old and has_new then
        status = 2
      elseif has_new and status == 3 then
        status = 1
      end
    end
    if status ~= 2 then
      for i = 1, #ARGV, 2 do
        local value = redis.call('JSON.GET', key, ARGV[i])
        if value ~= '[]' then
          redis.call('JSON.SET', key, ARGV[i + 1], string.sub(value, 2, -2), 'NX')
          redis.call('JSON.DEL', key, ARGV[i])
          status = 0
        end
      end
    end
  end
  out[k] = status
end
return out
"""
