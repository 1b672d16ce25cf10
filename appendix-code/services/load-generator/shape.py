"""The load generator's schedule: a seeded open-loop arrival process with a daily shape.

Kept apart from the sending code so that the schedule (what would be sent when) is a pure
function of the seed and the settings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Request", "daily_factor", "schedule", "PROBE_PATHS", "SCANNER_AGENT", "probe_requests"]

WORDS = ["lamp", "chair", "kettle", "backpack", "monitor", "keyboard", "bottle", "jacket", "speaker",
         "desk", "red", "blue", "quiet", "smart", "eco", "classic"]
NONSENSE = ["zzxq", "qwerty123", "nothing-here"]


@dataclass(frozen=True)
class Request:
    offset_s: float  # from the start of the run
    kind: str  # browse | user | search | checkout
    method: str
    path: str
    body: dict | None = None  # for checkout: {"username", "password", "product_id", "quantity"}


def _bump(h: float, centre: float, width: float) -> float:
    d = min(abs(h - centre), 24 - abs(h - centre))  # circular distance on the clock
    return math.exp(-0.5 * (d / width) ** 2)


def daily_factor(t_s: float, day_length_s: float, start_hour: float) -> float:
    """Share of the peak rate at run time t: a night low, a late-morning and an evening peak."""
    if day_length_s <= 0:
        return 1.0
    h = (start_hour + 24.0 * t_s / day_length_s) % 24.0
    return 0.25 + 0.75 * max(_bump(h, 11.0, 3.0), 0.85 * _bump(h, 19.5, 2.5))


def _pick(rng: random.Random, offset: float) -> Request:
    r = rng.random()
    if r < 0.60:  # browse
        if rng.random() < 0.9:
            return Request(offset, "browse", "GET", f"/api/users?page={rng.randint(1, 25)}")
        return Request(offset, "user", "GET", f"/api/users/{rng.randint(1, 600)}")  # >500: benign 404
    if r < 0.85:  # search
        u = rng.random()
        q = rng.choice(NONSENSE) if u < 0.05 else "" if u < 0.07 else rng.choice(WORDS)
        return Request(offset, "search", "GET", f"/api/search?q={q}")
    n = rng.randint(1, 500)
    user = f"user{n:04d}"
    password = f"pw-{user}" if rng.random() >= 0.04 else "wrong-password"  # benign bad logins
    return Request(offset, "checkout", "POST", "/api/checkout",
                   {"username": user, "password": password, "product_id": rng.randint(1, 1050),
                    "quantity": rng.randint(1, 3)})


def schedule(seed: int, rate: float, duration_s: float | None, day_length_s: float = 0.0,
             start_hour: float = 9.0):
    """Yield requests in time order: Poisson arrivals at `rate` thinned by the daily shape.

    duration_s None or 0: forever (a generator, consumed as the run goes).
    """
    rng = random.Random(seed)
    t = 0.0
    if rate <= 0:
        return
    while True:
        t += rng.expovariate(rate)
        if duration_s and t >= duration_s:
            return
        if rng.random() <= daily_factor(t, day_length_s, start_hour):
            yield _pick(rng, t)


# endpoint_enumeration: what a scanner asks for (paths no user of this shop ever calls) and how it
# presents itself. The address block is TEST-NET-3 (RFC 5737), never a real client.
PROBE_PATHS = ["/admin", "/admin/login", "/api/admin/users", "/api/v1/users/export", "/api/internal/config",
               "/api/debug/vars", "/.env", "/.git/config", "/wp-login.php", "/actuator/env", "/api/orders",
               "/api/payments/refund", "/api/users/export.csv", "/server-status", "/api/graphql", "/backup.sql",
               "/api/v2/search", "/api/tokens", "/config.json", "/api/keys"]
SCANNER_AGENT = "Mozilla/5.0 (compatible; httpx-scan/1.3; +https://example.invalid/scanner)"


def probe_requests(seed: int, rate_per_s: float):
    """Yield (gap_s, path, client_ip) of an enumeration run: Poisson arrivals at rate_per_s."""
    rng = random.Random(seed)
    client = f"203.0.113.{rng.randint(10, 250)}"
    while True:
        yield rng.expovariate(max(rate_per_s, 1e-3)), rng.choice(PROBE_PATHS), client
