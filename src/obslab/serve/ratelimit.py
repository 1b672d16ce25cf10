"""Rate limiting: at most ``per_minute`` requests in any 60 seconds, per caller.

A sliding log of the caller's admitted request times (at most ``per_minute`` entries): a
request is admitted when fewer than ``per_minute`` admitted requests lie in the last 60 s, so
no 60-second span ever holds more (a token bucket refilled continuously lets nearly twice
through: its full bucket plus the refill). A caller is an API key, or, for requests without a
valid key, the client address, so a key-guessing loop is slowed as much as a client.

One request counts once whatever it carries: a backfill batch spanning a day of timestamps is
one request. A refused caller is told how many whole seconds until its oldest admitted request
leaves the span (``Retry-After``).
"""

from __future__ import annotations

import math
import time
from collections import deque

__all__ = ["RateLimiter"]

_SPAN = 60.0


class RateLimiter:
    def __init__(self, per_minute: int = 60, clock=time.monotonic):
        if per_minute < 1:
            raise ValueError("rate limit must be at least 1 request per minute")
        self.limit = int(per_minute)
        self.clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._next_sweep = 0.0

    def acquire(self, caller: str) -> int:
        """0 if the request may proceed, else whole seconds to wait (>= 1)."""
        now = self.clock()
        self._sweep(now)
        log = self._admitted.setdefault(caller, deque())
        while log and log[0] <= now - _SPAN:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            return 0
        return max(1, math.ceil(log[0] + _SPAN - now))

    def _sweep(self, now: float) -> None:
        # forget callers idle for a whole span, so many client addresses cannot pile up memory
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SPAN
        for caller in [c for c, log in self._admitted.items() if not log or log[-1] <= now - _SPAN]:
            del self._admitted[caller]
