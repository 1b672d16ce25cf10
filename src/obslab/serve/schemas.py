"""Request and response schemas of the inference daemon (pydantic v2).

Two record shapes are accepted by ``POST /feed/data``:

- the 16-field server-metrics record (timestamp, server_name, status and 13 numeric metrics),
- OCSF metric events (one metric value per event, see ``OcsfMetricEvent``); events that share
  a host and a time are assembled into one server-metrics record.

``status`` is an operator annotation: stored and returned, never a model input.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

__all__ = [
    "iso_ms",
    "timestamp_problem",
    "METRICS",
    "METRIC_RANGES",
    "Status",
    "ServerRecord",
    "OcsfMetricEvent",
    "FeedRequest",
    "FeedResponse",
    "ValidationErrorResponse",
    "StatusResponse",
    "PublicStatusResponse",
    "PredictionsResponse",
    "ErrorResponse",
    "HealthResponse",
]


def iso_ms(ts_ms: int | float) -> str:
    """Epoch milliseconds -> ISO 8601 UTC with a Z, the form every answer uses."""
    try:
        text = datetime.fromtimestamp(ts_ms / 1000, timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):  # a state file written before the range check
        return f"@{int(ts_ms)}ms"
    return text.replace("+00:00", "Z")


# accepted timestamps: from 2000 to a little ahead of the daemon's clock (clock skew); anything
# outside is refused, so one mistyped year can neither overflow a date nor hold the tick back
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 15 * 60 * 1000


def timestamp_problem(ts_ms: int, now_ms: int) -> str | None:
    """Why an epoch-ms timestamp is refused, or None."""
    if ts_ms < EARLIEST_MS:
        return "timestamp before 2000-01-01T00:00:00Z"
    if ts_ms > now_ms + MAX_FUTURE_MS:
        return f"timestamp more than {MAX_FUTURE_MS // 60000} minutes ahead of the daemon's clock"
    return None


class Status(str, Enum):
    critical_issue = "critical_issue"
    healthy = "healthy"
    heavy_load = "heavy_load"
    idle = "idle"
    maintenance = "maintenance"
    morning_spike = "morning_spike"
    offline = "offline"
    recovery = "recovery"


# name -> (lower, upper, python type). The order is the model's feature order.
METRIC_RANGES: dict[str, tuple[float, float, type]] = {
    "cpu_user_pct": (0, 100, float),
    "cpu_sys_pct": (0, 100, float),
    "cpu_iowait_pct": (0, 100, float),
    "cpu_idle_pct": (0, 100, float),
    "java_cpu_pct": (0, 100, float),
    "mem_used_pct": (0, 100, float),
    "swap_used_pct": (0, 100, float),
    "disk_usage_pct": (0, 100, float),
    "net_in_mb_s": (0, 100_000, float),
    "net_out_mb_s": (0, 100_000, float),
    "back_close_wait": (0, 1_000_000, int),
    "front_close_wait": (0, 1_000_000, int),
    "load_average": (0, 10_000, float),
    "uptime_days": (0, 36_500, float),
}
METRICS: tuple[str, ...] = tuple(METRIC_RANGES)

ServerName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$",
        description="host name as the monitoring system knows it",
        examples=["web-01"],
    ),
]


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # a bare number is not a timestamp here: seconds or milliseconds would be a guess; nor is a
    # date alone or an epoch in a string (pydantic would take both): date AND time are required
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) > 40 or not _DATE_TIME.match(value):
        raise ValueError("timestamp must be ISO 8601 date and time text, e.g. 2026-01-05T10:00:00Z")
    return value


IsoTimestamp = Annotated[datetime, BeforeValidator(_iso_text)]


def _metric(name: str) -> Any:
    lo, hi, _ = METRIC_RANGES[name]
    # strict: JSON true/false or "12" are errors, not 1.0 and 12 (ints are fine for floats)
    return Field(ge=lo, le=hi, strict=True, description=f"{name} in [{lo}, {hi}]")


class ServerRecord(BaseModel):
    """One server's metrics at one time: the 16-field schema."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    timestamp: IsoTimestamp = Field(description="ISO 8601; without an offset it is taken as UTC")
    server_name: ServerName
    status: Status = Field(description="operator annotation; stored and returned, never a model input")
    cpu_user_pct: float = _metric("cpu_user_pct")
    cpu_sys_pct: float = _metric("cpu_sys_pct")
    cpu_iowait_pct: float = _metric("cpu_iowait_pct")
    cpu_idle_pct: float = _metric("cpu_idle_pct")
    java_cpu_pct: float = _metric("java_cpu_pct")
    mem_used_pct: float = _metric("mem_used_pct")
    swap_used_pct: float = _metric("swap_used_pct")
    disk_usage_pct: float = _metric("disk_usage_pct")
    net_in_mb_s: float = _metric("net_in_mb_s")
    net_out_mb_s: float = _metric("net_out_mb_s")
    back_close_wait: int = _metric("back_close_wait")
    front_close_wait: int = _metric("front_close_wait")
    load_average: float = _metric("load_average")
    uptime_days: float = _metric("uptime_days")


MetricName = Literal[METRICS]  # type: ignore[valid-type]


class OcsfDevice(BaseModel):
    model_config = ConfigDict(extra="allow")
    hostname: ServerName | None = None


class OcsfMetricPayload(BaseModel):
    """The sample in ``unmapped``, as ``obslab.ocsf`` writes metrics (Base Event + unmapped):
    service, host, region, metric, value, unit, query, labels. ``metric`` must be one of the
    daemon's metric names; ``status`` (optional) is the operator annotation."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    metric: MetricName  # type: ignore[valid-type]
    value: float = Field(strict=True)
    host: ServerName | None = None
    status: Status | None = None


class OcsfMetricEvent(BaseModel):
    """An OCSF 1.8.0 Base Event carrying one metric sample: ``time`` (epoch ms), ``unmapped.metric``,
    ``unmapped.value`` and the server in ``unmapped.host`` (or ``device.hostname``). Other OCSF
    attributes (metadata, category_uid, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    class_uid: int = Field(ge=0, strict=True, description="OCSF class; 0 (Base Event) for metrics")
    time: int = Field(ge=0, le=253402300799999, strict=True, description="epoch milliseconds")
    device: OcsfDevice | None = None
    unmapped: OcsfMetricPayload

    @property
    def host(self) -> str | None:
        return self.unmapped.host or (self.device.hostname if self.device else None)


def _record_kind(value: Any) -> str:
    # OCSF events always carry class_uid; the 16-field record never does.
    if isinstance(value, dict):
        return "ocsf" if "class_uid" in value else "server"
    return "ocsf" if hasattr(value, "class_uid") else "server"


FeedItem = Annotated[
    Union[Annotated[ServerRecord, Tag("server")], Annotated[OcsfMetricEvent, Tag("ocsf")]],
    Discriminator(_record_kind),
]


class FeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[FeedItem] = Field(
        max_length=50_000,
        description="server-metrics records and/or OCSF metric events; may span many timestamps",
    )


class Progress(BaseModel):
    records: int
    required: int
    percent: float


class FeedResponse(BaseModel):
    """The guide's fields (status, records_received, tick, rolling_window_size, warmup_complete,
    progress as text, reason) and richer detail beside them."""

    status: Literal["accepted", "warming_up", "ignored"]
    records_received: int
    records_stored: int
    tick: int
    rolling_window_size: int
    window_capacity: int
    warmup_complete: bool
    servers_tracked: int
    progress: str | None = Field(None, description='while warming up, e.g. "45% (need 100 records minimum)"')
    warmup: Progress | None = None
    reason: str | None = None


class FieldError(BaseModel):
    record: int | None = Field(description="index in `records`; null for errors outside a record")
    field: str
    message: str
    input: Any = None


class ValidationErrorResponse(BaseModel):
    """The guide's format (status "error", message, errors as text) with every bad field beside it."""

    status: Literal["error"]
    message: str
    errors: list[str]
    detail: str
    bad_records: list[int]
    field_errors: list[FieldError]


class ErrorResponse(BaseModel):
    detail: str


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    model_id: str
    name: str
    created_at: str
    torch_version: str
    features: list[str]
    threshold: float
    trained_on: dict[str, Any]


class WarmupInfo(BaseModel):
    complete: bool
    records: int
    required: int
    percent: float


class PublicStatusResponse(BaseModel):
    """``GET /status`` without a key: the guide's fields only (tick_count, last_prediction,
    warmup_complete, rolling_window_size, servers_tracked, progress as text)."""

    model_config = ConfigDict(extra="forbid")
    tick_count: int
    last_prediction: str | None
    warmup_complete: bool
    rolling_window_size: int
    servers_tracked: int
    progress: str


class StatusResponse(PublicStatusResponse):
    """With a valid key: the guide's fields and richer detail beside them."""

    model_config = ConfigDict(extra="forbid")
    window_capacity: int
    ticks: int
    records_total: int = Field(description="records accepted since the state file was created")
    records_stored: int = Field(description="records still in the state file (window + retention)")
    newest_timestamp: str | None
    last_prediction_time: str | None
    warmup: WarmupInfo
    model: ModelInfo


class Neighbour(BaseModel):
    server_name: str
    timestamp: str
    distance: float


class Contribution(BaseModel):
    feature: str
    value: float
    normal_value: float
    deviation: float = Field(description="|z(value) - z(normal_value)| against the nearest normal record")


class WindowContribution(BaseModel):
    metric: str
    component: Literal["profile", "own", "trend", "drift"]
    ratio: float = Field(description="|z| over the component's threshold; above 1 alone flags the server")
    z: float


class ServerPrediction(BaseModel):
    server_name: str
    timestamp: str = Field(description="the server's latest record")
    status: Status | None
    profile: str = Field(description="fleet profile by name prefix (ppdb, ppml, ppapi, ppcond, ppetl, pprisk, generic)")
    score: float = Field(description="largest component over its threshold: above 1.0 is flagged")
    flagged: bool
    flag: bool = Field(description="same as flagged")
    since: str | None = Field(description="when the flagged excursion began (null if not flagged)")
    components: dict[str, float] = Field(description="record, profile, own, trend, drift: each score over its threshold")
    top_metrics: list[WindowContribution]
    anomaly_score: float = Field(description="the latest record's k-NN distance to normal training records")
    record_flag: bool = Field(description="anomaly_score above the record threshold")
    nearest_normal: list[Neighbour]
    top_features: list[Contribution]


class FleetSummary(BaseModel):
    servers: int
    flagged: int
    flagged_servers: list[str]
    max_score: float | None
    mean_score: float | None


class PredictionsResponse(BaseModel):
    status: Literal["ok", "warming_up"]
    generated_at: str
    tick: int
    threshold: float = Field(description="record threshold on anomaly_score")
    window_thresholds: dict[str, float]
    progress: Progress | None = None
    fleet: FleetSummary
    servers: list[ServerPrediction]
