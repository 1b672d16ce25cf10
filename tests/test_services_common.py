"""labcommon, the code the Python services share: JSON log lines, markers, fault flags."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import redis

from lab_processes import SERVICES, wait_for
from obslab.lab.processes import free_port, start_redis
from obslab.lab.scenario import Injection, inject

sys.path.insert(0, str(SERVICES / "labcommon"))
from labcommon import jsonlog  # noqa: E402
from labcommon.faults import FaultFlags, markers_for  # noqa: E402
from labcommon.resources import MemoryLeak  # noqa: E402


def _format(record_level=logging.WARNING, msg="disk almost full", **extra) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(jsonlog.JsonFormatter("web-api"))
    logger = logging.getLogger(f"test-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.log(record_level, msg, extra=extra)
    line = stream.getvalue()
    assert line.count("\n") == 1
    return json.loads(line)


def test_json_log_line_fields_and_levels():
    d = _format(logging.WARNING, event="other", used_mb=63)
    assert d["level"] == "WARN" and d["service"] == "web-api" and d["message"] == "disk almost full"
    assert d["event"] == "other" and d["used_mb"] == 63
    assert d["timestamp"].endswith("Z") and len(d["timestamp"]) == 24
    assert _format(logging.ERROR)["event"] == "error"  # errors default to event=error
    assert _format(logging.CRITICAL)["level"] == "ERROR"
    assert "trace_id" not in _format(logging.INFO)


def test_json_log_line_carries_the_active_span():
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("req") as span:
        d = _format(logging.INFO, event="access")
        ctx = span.get_span_context()
    assert d["trace_id"] == format(ctx.trace_id, "032x") and d["span_id"] == format(ctx.span_id, "016x")


def test_markers_describe_all_active_faults_in_order():
    assert markers_for({}) == {}
    m = markers_for({
        "memory_leak": {"fault_id": "memory_leak", "level": "low", "incident_id": "inc-2", "target": "web-api"},
        "dependency_bottleneck": {"fault_id": "dependency_bottleneck", "level": "high", "incident_id": "inc-1",
                                  "target": "auth-service"},
    })
    assert m["x-anomaly-type"] == "dependency_bottleneck,memory_leak"
    assert m["x-anomaly-label"] == "inc-1,inc-2"
    assert m["x-anomaly-root-cause"] == "auth-service,web-api"
    assert m["x-anomaly-msg"] == "dependency_bottleneck level=high;memory_leak level=low"


@pytest.mark.integration
def test_fault_flags_follow_redis_ttl_and_report_changes(tmp_path):
    port = free_port()
    proc = start_redis(port, tmp_path / "redis")
    try:
        r = redis.Redis(port=port)
        changes = []
        flags = FaultFlags(f"redis://127.0.0.1:{port}/0", interval=0.1,
                           on_change=lambda old, new: changes.append((sorted(old), sorted(new))))
        flags.start()
        assert flags.active == {}
        inject(r, Injection(0, "latency_spike", "high", "web-api", 0.8, 0, "inc-001",
                            params={"delay_s": 1.0}))
        r.set("obslab:fault:broken", "{not json", px=800)  # ignored, never fatal
        wait_for(lambda: "latency_spike" in flags.active, 2, 0.05)
        assert flags.param("latency_spike", "delay_s") == 1.0
        assert flags.get("latency_spike", target="web-api") and flags.get("latency_spike", target="auth-service") is None
        wait_for(lambda: flags.active == {}, 3, 0.05)  # the TTL reverted it
        assert changes[0] == ([], ["latency_spike"]) and changes[-1] == (["latency_spike"], [])
        flags.stop()
    finally:
        proc.stop()


def test_memory_leak_mechanism_releases_its_buffers():
    leak = MemoryLeak(mb_per_s=200, max_mb=10)
    wait_for(lambda: len(leak.blocks) >= 10, 5, 0.05)
    assert len(leak.blocks) == 10  # capped at max_mb
    leak.stop()
    assert leak.blocks == [] and not any(t.is_alive() for t in leak._threads)
