"""Validate OCSF events against the official 1.8.0 schema plus the checks JSON Schema cannot do.

JSON Schema (``ocsf-json-schema``, per class, with the profiles named in ``metadata.profiles``)
checks names, types, enums and required attributes. In code we check what it cannot:
``type_uid == class_uid * 100 + activity_id``, ``metadata.version``, that every caption
(class, category, activity, type, severity, status) matches its id in the official schema,
and that a row fills only columns its class has. Null Arrow values are absent attributes.

The JSON Schema checks run compiled (``jsonschema-rs``, some 100k events/s): tests validate
every event of their fixtures, bulk conversions a random sample (``sample=N``).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

import pyarrow as pa

from obslab.ocsf import catalog as C
from obslab.ocsf.schemas import CLASS_SCHEMAS


@functools.lru_cache(maxsize=1)
def official_schema() -> dict:
    from ocsf_json_schema import get_ocsf_schema

    return get_ocsf_schema(version=C.OCSF_VERSION)


@functools.lru_cache(maxsize=32)
def _validator(class_name: str, profiles: tuple):
    import jsonschema_rs
    from ocsf_json_schema import OcsfJsonSchemaEmbedded

    schema = OcsfJsonSchemaEmbedded(official_schema()).get_class_schema(class_name, profiles=list(profiles))
    return jsonschema_rs.Draft202012Validator(schema)


@functools.lru_cache(maxsize=1)
def official_captions() -> dict:
    """class_uid -> {class, category_uid, category, activities, severities, statuses}."""
    raw = official_schema()
    cats = {v["uid"]: v["caption"] for v in raw["categories"]["attributes"].values()}
    out = {}
    for name, cls in raw["classes"].items():
        attrs = cls["attributes"]

        def enum(attr):
            return {int(k): v["caption"] for k, v in attrs.get(attr, {}).get("enum", {}).items()}

        out[cls["uid"]] = {
            "name": name,
            "class": cls["caption"],
            "category_uid": cls.get("category_uid", 0),
            "category": cats.get(cls.get("category_uid"), "Uncategorized"),
            "activities": enum("activity_id"),
            "severities": enum("severity_id"),
            "statuses": enum("status_id"),
        }
    return out


def strip_nulls(value):
    """Arrow row -> JSON event: null attributes are absent, as in OCSF JSON."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


def check_event(event: dict, signal: str | None = None) -> list[str]:
    """All problems of one event (JSON form, nulls stripped); empty when valid."""
    errors = []
    cls_uid = event.get("class_uid")
    caps = official_captions().get(cls_uid)
    if caps is None:
        return [f"unknown class_uid {cls_uid!r}"]
    profiles = tuple(sorted((event.get("metadata") or {}).get("profiles") or []))
    for err in _validator(caps["name"], profiles).iter_errors(event):
        path = "/".join(str(p) for p in err.instance_path) or "(event)"
        errors.append(f"schema {caps['name']}: {path}: {err.message[:160]}")
    act = event.get("activity_id")
    if event.get("type_uid") != (cls_uid * 100 + act if isinstance(act, int) else None):
        errors.append(f"type_uid {event.get('type_uid')} != class_uid*100+activity_id")
    if (event.get("metadata") or {}).get("version") != C.OCSF_VERSION:
        errors.append(f"metadata.version {event.get('metadata', {}).get('version')!r} != {C.OCSF_VERSION}")
    expected = {
        "class_name": caps["class"],
        "category_uid": caps["category_uid"],
        "category_name": caps["category"],
        "activity_name": caps["activities"].get(act),
        "type_name": f"{caps['class']}: {caps['activities'].get(act)}",
        "severity": caps["severities"].get(event.get("severity_id")),
    }
    if "status_id" in event:
        expected["status"] = caps["statuses"].get(event["status_id"])
    for key, want in expected.items():
        if key in event and event[key] != want:
            errors.append(f"{key} {event[key]!r} does not match its id (expected {want!r})")
    if signal in CLASS_SCHEMAS and cls_uid in CLASS_SCHEMAS[signal]:
        extra = set(event) - set(CLASS_SCHEMAS[signal][cls_uid].names)
        if extra:
            errors.append(f"columns outside class {cls_uid}: {sorted(extra)}")
    return errors


@dataclass
class ValidationResult:
    rows: int = 0
    checked: int = 0
    invalid: int = 0
    by_class: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.invalid == 0

    def summary(self) -> str:
        state = "OK" if self.ok else "INVALID"
        text = (f"OCSF 1.8.0 validation {state}: checked {self.checked} of {self.rows} events,"
                f" {self.invalid} invalid; classes {self.by_class}")
        for ex in self.examples[:5]:
            text += f"\n  uid {ex['uid']}: {ex['errors'][:3]}"
        return text


def signal_of(table: pa.Table) -> str | None:
    um = table.schema.field("unmapped").type if "unmapped" in table.column_names else None
    if um is None:
        return None
    names = {f.name for f in um}
    return "metrics" if "metric" in names else "traces" if "kind" in names else "logs"


def validate_table(table: pa.Table, sample: int | None = None, seed: int = 0,
                   max_examples: int = 10) -> ValidationResult:
    """Validate every row (``sample=None``) or a seeded random sample of ``sample`` rows."""
    signal = signal_of(table)
    n = table.num_rows
    idx = list(range(n))
    if sample is not None and sample < n:
        idx = sorted(random.Random(seed).sample(idx, sample))
    res = ValidationResult(rows=n)
    step = 2048
    for i in range(0, len(idx), step):
        part = table.take(pa.array(idx[i : i + step], pa.int64())).to_pylist(maps_as_pydicts="lossy")
        for row in part:
            event = strip_nulls(row)
            errors = check_event(event, signal)
            res.checked += 1
            cls = event.get("class_uid")
            res.by_class[cls] = res.by_class.get(cls, 0) + 1
            if errors:
                res.invalid += 1
                if len(res.examples) < max_examples:
                    res.examples.append({"uid": event.get("metadata", {}).get("uid"), "errors": errors})
    return res
