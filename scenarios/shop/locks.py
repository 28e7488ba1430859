"""A lock per piece of work, in Redis: `SET key token NX PX ttl` takes it, and a compare-and-delete
script releases it only for the token that holds it (a lock that outlived its ttl and was taken by
another worker is not released by the first).

The shop's Redis is an in-process fakeredis server unless `SHOP_REDIS_URL` names a real one.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LockBusy", "held", "redis", "reset"]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

_client: Any = None
_guard = threading.Lock()


class LockBusy(Exception):
    """Another worker holds the lock: this delivery stops, and the engine runs it again later."""


def redis() -> Any:
    global _client
    with _guard:
        if _client is None:
            url = os.environ.get("SHOP_REDIS_URL")
            if url:
                import redis as redis_py

                _client = redis_py.Redis.from_url(url)
            else:
                import fakeredis

                _client = fakeredis.FakeRedis()
        return _client


def reset() -> None:
    """Drop every lock (a fresh world)."""
    redis().delete(*redis().keys("lock:*") or ["lock:none"])


@contextmanager
def held(name: str, ttl_ms: int = 60_000) -> Iterator[None]:
    """Hold the lock `name` for the block, or raise `LockBusy` when another worker holds it."""
    token = secrets.token_hex(8)
    key = f"lock:{name}"
    if not redis().set(key, token, nx=True, px=ttl_ms):
        raise LockBusy(f"{key} is held by another worker; try again later")
    try:
        yield
    finally:
        redis().eval(_RELEASE, 1, key, token)
