"""Per-key rate limiting: a token bucket of ``per_minute`` tokens refilled continuously.

One request costs one token whatever it carries, so a backfill batch spanning a day of
timestamps is one request. When the bucket is empty the caller is told how many seconds
until the next token (``Retry-After``).
"""

from __future__ import annotations

import math
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, per_minute: int = 60, clock=time.monotonic):
        if per_minute < 1:
            raise ValueError("rate limit must be at least 1 request per minute")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last time)

    def acquire(self, key_id: str) -> int:
        """0 if the request may proceed, else whole seconds to wait (>= 1)."""
        now = self.clock()
        tokens, last = self._buckets.get(key_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0
        self._buckets[key_id] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
