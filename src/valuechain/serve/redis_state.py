"""Online feature state in Redis, shared by several service replicas.

:class:`RedisState` implements :class:`~valuechain.serve.state.StateStore` with, per bucket,
a sorted set ``<namespace>:z:<bucket>`` (member: the entry's uid, score: its time) and a hash
``<namespace>:h:<bucket>`` (uid → JSON payload). Every operation is one Lua script, so it is
atomic and costs one round trip (the scripts name their keys from the namespace, so use a
single Redis server, not a cluster): a write adds all its entries and trims in one step, a read
returns every bucket asked for, and :meth:`RedisState.take_capacity` is an
increment-if-below-the-limit. Times are stored as scores (doubles): exact for epoch
microseconds up to ``2**53`` (year 2255).

The reads are identical to :class:`~valuechain.serve.state.MemoryState`'s for the same
writes: entries ordered by ``(time, uid)`` (Redis orders equal scores by member bytes, as
Python orders strings).

>>> state = RedisState("redis://localhost:6379/0", namespace="doc")  # doctest: +SKIP
>>> state.write([("b", 10, "x", {"v": 1})])                            # doctest: +SKIP
>>> state.read(["b"], [None])                                          # doctest: +SKIP
[[(10, 'x', {'v': 1})]]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from valuechain.errors import DataError
from valuechain.serve.state import Entry, WriteItem

__all__ = ["RedisState"]

# Arguments and results travel as one JSON text each (one argument for redis-py to encode,
# one reply to parse). Times and payloads stay strings inside it: Lua numbers would print
# with 14 significant digits, and payloads are stored as written.
_WRITE = """
local ns = ARGV[1]
local req = cjson.decode(ARGV[2])
for _, it in ipairs(req.items) do
  redis.call('ZADD', ns .. ':z:' .. it[1], it[2], it[3])
  redis.call('HSET', ns .. ':h:' .. it[1], it[3], it[4])
end
for _, tr in ipairs(req.trims) do
  local z, h = ns .. ':z:' .. tr[1], ns .. ':h:' .. tr[1]
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', tr[2])
  for j = 1, #gone, 500 do
    redis.call('HDEL', h, unpack(gone, j, math.min(j + 499, #gone)))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', tr[2]) end
end
return #req.items
"""

_READ = """
local ns = ARGV[1]
local req = cjson.decode(ARGV[2])
local parts = {}
for b, ask in ipairs(req) do
  local got = redis.call('ZRANGEBYSCORE', ns .. ':z:' .. ask[1], ask[2], '+inf', 'WITHSCORES')
  local uids = {}
  for j = 1, #got, 2 do uids[#uids + 1] = got[j] end
  local payloads = {}
  if #uids > 0 then payloads = redis.call('HMGET', ns .. ':h:' .. ask[1], unpack(uids)) end
  local flat = {}
  for j = 1, #uids do
    flat[j] = '[' .. got[2 * j] .. ',' .. cjson.encode(uids[j]) .. ',' .. payloads[j] .. ']'
  end
  parts[b] = '[' .. table.concat(flat, ',') .. ']'
end
return '[' .. table.concat(parts, ',') .. ']'
"""

_RELEASE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_CAPACITY_TTL_MS = 40 * 86_400_000  # counts are kept 40 days after their last change


class RedisState:
    """State in a Redis server; see the module docstring.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (also ``rediss://``, ``unix://``).
    namespace : str
        Prefix of every key, so that several projects or bundles can share a server.

    Raises
    ------
    DataError
        When the server cannot be reached (naming the URL).
    """

    def __init__(self, url: str, namespace: str = "valuechain") -> None:
        self.url = url
        self.namespace = namespace
        try:
            self._redis = redis.Redis.from_url(url, decode_responses=True)
            self._redis.ping()
        except (redis.RedisError, ValueError) as err:
            raise DataError(
                f"cannot reach the Redis state at {url!r}: {err}. Start redis-server there, "
                "or pass another `--state` (redis://host:port/db, or memory)."
            ) from None
        self._write = self._redis.register_script(_WRITE)
        self._read = self._redis.register_script(_READ)
        self._take = self._redis.register_script(_TAKE)
        self._release = self._redis.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisState({self.url!r}, namespace={self.namespace!r})"

    def write(self, items: Sequence[WriteItem], trims: Sequence[tuple[str, int]] = ()) -> None:
        if not items and not trims:
            return
        request = {"items": [[bucket, str(int(time)), uid,
                              json.dumps(payload, separators=(",", ":"))]
                             for bucket, time, uid, payload in items],
                   "trims": [[bucket, str(int(cutoff))] for bucket, cutoff in trims]}
        self._write(keys=[], args=[self.namespace, json.dumps(request, separators=(",", ":"))])

    def read(self, buckets: Sequence[str], after: Sequence[int | None]) -> list[list[Entry]]:
        if not buckets:
            return []
        request = [[b, "-inf" if a is None else f"({int(a)}"]
                   for b, a in zip(buckets, after, strict=True)]
        reply = self._read(keys=[], args=[self.namespace,
                                          json.dumps(request, separators=(",", ":"))])
        return [[(int(t), uid, payload) for t, uid, payload in bucket]
                for bucket in json.loads(reply)]

    def get(self, bucket: str, uids: Sequence[str]) -> list[Any]:
        if not uids:
            return []
        found = self._redis.hmget(f"{self.namespace}:h:{bucket}", list(uids))
        return [None if v is None else json.loads(v) for v in found]

    def take_capacity(self, action: str, period_start_us: int, limit: int) -> bool:
        key = f"{self.namespace}:cap:{action}:{int(period_start_us)}"
        return bool(self._take(keys=[key], args=[int(limit), _CAPACITY_TTL_MS]))

    def release_capacity(self, action: str, period_start_us: int) -> None:
        key = f"{self.namespace}:cap:{action}:{int(period_start_us)}"
        self._release(keys=[key])

    def capacity_used(self, action: str, period_start_us: int) -> int:
        value = self._redis.get(f"{self.namespace}:cap:{action}:{int(period_start_us)}")
        return int(value) if value else 0

    def get_meta(self, name: str) -> str | None:
        value = self._redis.hget(f"{self.namespace}:meta", name)
        return None if value is None else str(value)

    def set_meta(self, name: str, value: str) -> None:
        self._redis.hset(f"{self.namespace}:meta", name, value)

    def clear(self) -> None:
        batch: list[str] = []
        for key in self._redis.scan_iter(match=f"{self.namespace}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._redis.unlink(*batch)
                batch = []
        if batch:
            self._redis.unlink(*batch)

    def close(self) -> None:
        self._redis.close()
