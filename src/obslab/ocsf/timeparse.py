"""Timestamps as found in logs -> epoch milliseconds (UTC when no offset is given)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_ISO = re.compile(
    r"(\d{4})[-/](\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s?(Z|z|[+-]\d{2}:?\d{2}|UTC)?"
)
_CACHE: dict = {}  # (y, m, d, H, M, tz) -> epoch ms of that minute
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
# nginx/apache "[27/Jun/2025:10:39:25 +0000]" and redis "27 Jun 2025 10:39:25.407"
_CLF = re.compile(r"(\d{2})[/ ](\w{3})[/ ](\d{4})[: ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?: ([+-]\d{4}))?")


def _minute_ms(y, mo, d, h, mi, tz) -> int:
    key = (y, mo, d, h, mi, tz)
    v = _CACHE.get(key)
    if v is None:
        if len(_CACHE) > 100_000:
            _CACHE.clear()
        if tz in (None, "Z", "z", "UTC"):
            tzinfo = timezone.utc
        else:
            sign = -1 if tz[0] == "-" else 1
            digits = tz[1:].replace(":", "")
            from datetime import timedelta

            tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))
        v = int(datetime(y, mo, d, h, mi, tzinfo=tzinfo).timestamp()) * 1000
        _CACHE[key] = v
    return v


def _frac_ms(frac: str | None) -> int:
    if not frac:
        return 0
    return int((frac + "00")[:3])


def parse_iso_ms(text: str) -> int | None:
    """ISO 8601 / RFC 3339 (any fraction length, Z or offset) anywhere at the start of text."""
    m = _ISO.match(text)
    if m is None:
        return None
    return _from_iso_match(m)


def _from_iso_match(m) -> int | None:
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        return _minute_ms(int(y), int(mo), int(d), int(h), int(mi), tz) + int(s) * 1000 + _frac_ms(frac)
    except ValueError:
        return None


def search_time_ms(text: str, window: int = 64) -> int | None:
    """A timestamp within the first ``window`` characters of a plain-text log line."""
    head = text[:window]
    m = _ISO.search(head)
    if m is not None:
        return _from_iso_match(m)
    m = _CLF.search(head)
    if m is not None:
        d, mon, y, h, mi, s, frac, tz = m.groups()
        month = _MONTHS.get(mon[:3].title())
        if month is None:
            return None
        try:
            return _minute_ms(int(y), month, int(d), int(h), int(mi), tz) + int(s) * 1000 + _frac_ms(frac)
        except ValueError:
            return None
    return None


def epoch_to_ms(value: float) -> int | None:
    """Epoch in s, ms, us or ns (guessed by magnitude) -> ms."""
    if value != value or value <= 0 or value >= 9e18:
        return None
    if value > 1e17:
        return int(value // 1_000_000)
    if value > 1e14:
        return int(value // 1000)
    if value > 1e11:
        return int(value)
    return int(value * 1000)


def any_time_ms(value) -> int | None:
    """A JSON time value (ISO string, epoch number, Mongo {"$date": ...}) -> ms."""
    if isinstance(value, str):
        ms = parse_iso_ms(value.strip())
        if ms is None:
            try:
                return epoch_to_ms(float(value))
            except ValueError:
                return search_time_ms(value)
        return ms
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return epoch_to_ms(float(value))
    if isinstance(value, dict):
        for key in ("$date", "$numberLong", "seconds"):
            if key in value:
                return any_time_ms(value[key])
    return None
