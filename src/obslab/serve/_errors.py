"""Validation answers: the metrics-feed guide's format, with every bad field beside it.

The guide documents ``{"status": "error", "message": "Validation failed", "errors": [text, ...]}``
with texts such as ``Missing required columns: ['cpu_iowait_pct']``; its clients read that. The
daemon adds ``field_errors`` (record index, field, message, the offending input), ``bad_records``
and ``detail``. Echoed input is clipped: an answer never grows with the request (a 1 MB server
name comes back as 64 characters) and never holds a number JSON cannot carry.
"""

from __future__ import annotations

import json

from obslab.serve.schemas import Status

__all__ = ["clip", "field_errors", "invalid_body", "DuplicateKey", "reject_duplicate_keys"]

_MAX_TEXT = 64
_MAX_MESSAGE = 400  # pydantic's own text (it names the rule, not the input), bounded all the same
_MAX_INT = 2**53  # integers a JSON reader keeps exactly
_STATUSES = ", ".join(s.value for s in Status)


def clip(value, limit: int = _MAX_TEXT):
    """An echo of user input that is small and always serialisable."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_INT else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return None


def field_errors(exc_errors) -> list[dict]:
    """pydantic errors -> one entry per bad field: record index, dotted field path, message, input."""
    out = []
    for err in exc_errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        record = None
        if len(loc) >= 2 and loc[0] == "records" and isinstance(loc[1], int):
            record, loc = loc[1], loc[2:]
            if loc and loc[0] in ("server", "ocsf"):  # the union tag, not a field
                loc = loc[1:]
        field = ".".join(clip(str(p)) for p in loc) or ("record" if record is not None else "body")
        out.append({"record": record, "field": field, "message": clip(str(err.get("msg", "invalid")), _MAX_MESSAGE),
                    "input": clip(err.get("input")), "type": err.get("type")})
    return out


def _guide_texts(errors: list[dict]) -> list[str]:
    """The guide's one-line texts: missing fields grouped per record, then one line per other error."""
    missing: dict[int | None, list[str]] = {}
    lines = []
    for e in errors:
        where = "" if e["record"] is None else f" (record {e['record']})"
        if e.get("type") == "missing":
            missing.setdefault(e["record"], []).append(e["field"])
        elif e["field"] == "status" and e.get("type") == "enum":
            lines.append(f"Invalid status value {e['input']!r} - must be one of: {_STATUSES}{where}")
        else:
            lines.append(f"Invalid value for {e['field']}: {e['message']}{where}")
    heads = [f"Missing required columns: {cols}" + ("" if rec is None else f" (record {rec})")
             for rec, cols in missing.items()]
    return heads + lines


def invalid_body(errors: list[dict]) -> dict:
    bad = sorted({e["record"] for e in errors if e["record"] is not None})
    detail = (f"{len(bad)} record(s) invalid, {len(errors)} error(s); nothing was stored" if bad
              else f"request invalid, {len(errors)} error(s); nothing was stored")
    return {"status": "error", "message": "Validation failed", "errors": _guide_texts(errors),
            "detail": detail, "bad_records": bad,
            "field_errors": [{k: e[k] for k in ("record", "field", "message", "input")} for e in errors]}


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        seen = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise DuplicateKey(f"duplicate JSON key {clip(dup)!r}: refused rather than guessing which value counts")
    return dict(pairs)


def reject_duplicate_keys(body: bytes) -> str | None:
    """None if the body has no object with a repeated key (or is not JSON: pydantic reports
    that); else what is wrong."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except DuplicateKey as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None
