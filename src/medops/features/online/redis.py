"""The shared online store on Redis (``redis://host:port[/db]`` or ``rediss://``).

Rows are keys ``medops:{namespace}:online:{view}:g{generation}:{entity}`` holding
``{"t": event time or null, "v": {feature: value}}``; the pointer is the hash
``medops:{namespace}:online:{view}:meta`` (version, as_of, rows, features, generation),
switched by a compare-and-set script only if no newer write finished first (else the older
write is discarded with Conflict); ``medops:{namespace}:online:views`` lists the views. A
read is one Lua script (one round trip) that reads the pointer and the rows together, so it
is consistent. Older generations are unlinked right after the switch (swept by the next
write if a crash interrupted that).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from medops.errors import ConfigError, Conflict, StoreError
from medops.features.online import base
from medops.features.online.base import (
    Encoder,
    OnlineRow,
    Progress,
    check_read_args,
    dumps,
    loads,
    not_found,
    parse_time,
    prepare_write,
    select_features,
)
from medops.urls import redact_url

if TYPE_CHECKING:
    import redis


def open_store(url: str, *, home: Path, namespace: str) -> RedisOnlineStore:
    """A client on ``url``; nothing connects until the first call."""
    return RedisOnlineStore(url, namespace)


def check(url: str) -> str:
    """Ping the server: ``medops doctor`` says whether the online store answers."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except (redis.RedisError, ValueError) as exc:
        raise StoreError(
            f"Redis at {redact_url(url)} does not answer: {exc}", hint="start Redis or fix online_store"
        ) from None
    return "Redis answers"


# KEYS[1] meta hash; ARGV[1] row key prefix up to ':g'; ARGV[2..] entity ids.
# Returns nil (no table) or {generation, features, value-or-nil per id}. One script, so the
# pointer and the rows come from the same moment. Keys are built inside the script, which
# standalone Redis allows (a cluster would not; medops does not support Redis Cluster).
_READ_LUA = """
local m = redis.call('HMGET', KEYS[1], 'generation', 'features')
if not m[1] then return false end
local base = ARGV[1] .. m[1] .. ':'
local out = {m[1], m[2]}
local i = 2
while i <= #ARGV do
  local keys = {}
  local j = i
  while j <= #ARGV and j < i + 1000 do
    keys[#keys + 1] = base .. ARGV[j]
    j = j + 1
  end
  local vals = redis.call('MGET', unpack(keys))
  for k = 1, #keys do out[#out + 1] = vals[k] end
  i = j
end
return out
"""

# KEYS[1] meta hash, KEYS[2] views set; ARGV generation, version, as_of, rows, features, view.
# Switches the pointer unless a newer generation is already live; returns 1 or 0.
_SWAP_LUA = """
local cur = redis.call('HGET', KEYS[1], 'generation')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'version', ARGV[2], 'as_of', ARGV[3],
           'rows', ARGV[4], 'features', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[6])
return 1
"""


class RedisOnlineStore:
    """The shared online store on Redis; thread-safe (redis-py pools its connections)."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        parsed = urlparse(url)
        self.where = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"
        self.namespace = namespace
        self._base = f"medops:{namespace}:online"
        try:
            self.client: redis.Redis = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
        except ValueError as exc:
            raise ConfigError(f"online store URL {redact_url(url)!r} can't be used: {exc}") from exc
        self._redis_error = redis.RedisError
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)
        self._read_script = self.client.register_script(_READ_LUA)
        self._swap_script = self.client.register_script(_SWAP_LUA)
        self._features_cache: dict[tuple[str, bytes], tuple[tuple[str, ...], frozenset[str]]] = {}

    def _meta_key(self, view: str) -> str:
        return f"{self._base}:{view}:meta"

    def _rows_prefix(self, view: str) -> str:
        return f"{self._base}:{view}:g"

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, self._unreachable):
            return StoreError(f"Redis at {self.where} is unreachable: {exc}", hint="start Redis or fix online_store")
        return StoreError(f"Redis at {self.where} refused the request: {exc}")

    # -- write

    def write(
        self,
        view: str,
        version: str,
        as_of: datetime,
        entity_ids: Sequence[str],
        event_times: Sequence[datetime | None],
        rows: Sequence[dict[str, object]],
        progress: Progress | None = None,
    ) -> int:
        """Write generation g+1 beside the live one, switch the meta hash, then unlink older keys."""
        prep = prepare_write(view, version, as_of, entity_ids, event_times, rows)
        meta = self._meta_key(view)
        try:
            gen = int(self.client.incr(f"{self._base}:{view}:seq"))
        except self._redis_error as exc:
            raise self._error(exc) from exc
        prefix = f"{self._rows_prefix(view)}{gen}:"
        written = 0
        enc = Encoder(view)
        try:
            for start in range(0, prep.count, base.BATCH):
                stop = min(start + base.BATCH, prep.count)
                batch: dict[str, str] = {}
                for i in range(start, stop):
                    t = enc.event_time(event_times[i])
                    batch[prefix + entity_ids[i]] = (
                        f'{{"t":{"null" if t is None else dumps(t)},"v":{enc.values(rows[i])}}}'
                    )
                written = stop  # before the call: a call that timed out may still have stored the batch
                self.client.mset(batch)
                if progress is not None:
                    progress(stop)
            swapped = self._swap_script(
                keys=[meta, f"{self._base}:views"],
                args=[gen, version, prep.as_of, prep.count, dumps(list(enc.features)), view],
            )
        except BaseException as exc:
            self._unlink_quietly([prefix + e for e in entity_ids[:written]])
            if isinstance(exc, self._redis_error):
                raise self._error(exc) from exc
            raise
        if not swapped:
            self._unlink_quietly([prefix + e for e in entity_ids])
            raise Conflict(
                f"a newer write of feature view {view!r} finished while this one ran; this one was discarded",
                code="online_stale",
                view=view,
            )
        self._sweep(view, gen)
        return prep.count

    def _unlink_quietly(self, keys: list[str]) -> None:
        """Best effort: leftovers of a failed write are swept by the next successful one."""
        try:
            for start in range(0, len(keys), base.BATCH):
                self.client.unlink(*keys[start : start + base.BATCH])
        except self._redis_error:
            pass

    def _sweep(self, view: str, gen: int) -> None:
        """Unlink every generation older than ``gen``; newer ones belong to writes still running."""
        prefix = self._rows_prefix(view).encode()
        cut = len(prefix)
        doomed: list[bytes] = []
        try:
            for key in self.client.scan_iter(match=prefix + b"*", count=5_000):
                digits = key[cut : key.index(b":", cut)]
                if digits.isdigit() and int(digits) < gen:
                    doomed.append(key)
                    if len(doomed) >= base.BATCH:
                        self.client.unlink(*doomed)
                        doomed.clear()
            if doomed:
                self.client.unlink(*doomed)
        except self._redis_error:
            pass  # the table is live already; the next write sweeps what is left

    # -- read

    def read(self, view: str, entity_ids: Sequence[str], features: Sequence[str] | None = None) -> list[OnlineRow]:
        """One round trip: a script reads the pointer and the rows together."""
        check_read_args(view, entity_ids, features)
        try:
            result: Any = self._read_script(keys=[self._meta_key(view)], args=[self._rows_prefix(view), *entity_ids])
        except self._redis_error as exc:
            raise self._error(exc) from exc
        if not result:
            raise not_found(view)
        gen, raw_features = result[0], result[1]
        cached = self._features_cache.get((view, gen))
        if cached is None:
            names = tuple(loads(raw_features))
            cached = (names, frozenset(names))
            self._features_cache = {k: v for k, v in self._features_cache.items() if k[0] != view}
            self._features_cache[(view, gen)] = cached
        selected = select_features(view, cached[0], cached[1], features)
        out: list[OnlineRow] = []
        for raw in result[2:]:
            if raw is None:
                out.append(OnlineRow(dict.fromkeys(selected), None, False))
            else:
                doc = loads(raw)
                data = doc["v"]
                out.append(OnlineRow({n: data.get(n) for n in selected}, parse_time(doc["t"]), True))
        return out

    def info(self, view: str) -> dict[str, object] | None:
        try:
            meta: dict[bytes, bytes] = self.client.hgetall(self._meta_key(view))  # type: ignore[assignment]
        except self._redis_error as exc:
            raise self._error(exc) from exc
        if b"generation" not in meta:
            return None
        return {
            "view": view,
            "version": meta[b"version"].decode(),
            "as_of": meta[b"as_of"].decode(),
            "rows": int(meta[b"rows"]),
            "features": loads(meta[b"features"]),
        }

    def views(self) -> list[str]:
        try:
            members: set[bytes] = self.client.smembers(f"{self._base}:views")  # type: ignore[assignment]
        except self._redis_error as exc:
            raise self._error(exc) from exc
        return sorted(m.decode() for m in members)

    def close(self) -> None:
        self.client.close()
