"""The daemon as a user of the metrics-feed guide meets it (issue 16): the guide's examples
replayed against a real `obslab serve` (model from `obslab serve train --from synth`), the
bad-input table (input, status, body: never a 5xx, never an unbounded echo, nothing stored),
the limiter, a corrupt state file and a fleet of the guide's profiles."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

from obslab.serve.evaluation import VALIDATION_OFFSET
from obslab.serve.fleet import SYNTH_PER_PROFILE
from obslab.serve.process import DaemonProcess
from obslab.serve.schemas import METRICS
from obslab.train import Encoder

pytestmark = pytest.mark.integration

KEY = "guide-test-key-3f9a2c71e05b"

# the guide's example record (its request format, Python and curl examples)
GUIDE_RECORD = {
    "timestamp": "2025-01-15T10:00:00", "server_name": "ppdb001", "status": "healthy",
    "cpu_user_pct": 25.3, "cpu_sys_pct": 8.2, "cpu_iowait_pct": 2.1, "cpu_idle_pct": 64.4, "java_cpu_pct": 15.5,
    "mem_used_pct": 72.1, "swap_used_pct": 5.2, "disk_usage_pct": 45.8, "net_in_mb_s": 12.5, "net_out_mb_s": 8.3,
    "back_close_wait": 5, "front_close_wait": 3, "load_average": 2.4, "uptime_days": 45,
}
# the guide's "Testing your integration" record
TEST001 = {"timestamp": "2025-01-15T10:00:00", "server_name": "test001", "status": "healthy", "cpu_user_pct": 25,
           "cpu_sys_pct": 5, "cpu_iowait_pct": 2, "cpu_idle_pct": 68, "java_cpu_pct": 10, "mem_used_pct": 60,
           "swap_used_pct": 0, "disk_usage_pct": 40, "net_in_mb_s": 5, "net_out_mb_s": 3, "back_close_wait": 0,
           "front_close_wait": 0, "load_average": 1.5, "uptime_days": 30}
PROGRESS = re.compile(r"^\d{1,3}% \(need \d+ records minimum\)$")


def _cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "obslab.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def model_dir(synth_serve_model) -> Path:
    out, r = synth_serve_model  # `obslab serve train --from synth --days 1 --epochs 2`, shared with test_serve_quality
    assert r.returncode == 0, r.stderr
    assert f"obslab serve --model {out}" in r.stderr
    serving = json.loads((out / "serving.json").read_text())
    trained, cal = serving["trained_on"], serving["calibration"]
    assert trained["generator"] == "obslab.serve.fleet.guide_fleet" and trained["n_servers"] == 7 * SYNTH_PER_PROFILE
    assert set(serving["profiles"]) == {"ppdb", "ppml", "ppapi", "ppcond", "ppetl", "pprisk", "generic"}
    # thresholds chosen on a validation fleet of another seed, to the target it reports
    assert cal["on"] == "validation fleet" and cal["seed"] == trained["seed"] + VALIDATION_OFFSET
    assert 0 < cal["validation_rate"] <= cal["target_rate"] == 0.005
    Encoder.load(out)  # the library's own format
    return out


@pytest.fixture
def daemon(model_dir, tmp_path):
    started = []

    def start(**opts):
        opts.setdefault("rate_limit", 10_000)
        d = DaemonProcess(model_dir, opts.pop("state", tmp_path / "state.sqlite"), KEY, **opts).start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def _types(body: dict, spec: dict) -> None:
    for name, kind in spec.items():
        assert name in body, (name, body)
        assert isinstance(body[name], kind) and not (kind is int and isinstance(body[name], bool)), (name, body[name])


def test_the_guides_examples_work_unchanged(daemon):
    d = daemon()
    url, headers = d.url + "/feed/data", {"X-API-Key": KEY}
    # Python with requests: collect_server_metrics() for four servers, timestamp datetime.now().isoformat()
    records = [dict(GUIDE_RECORD, server_name=s, timestamp=dt.datetime.now().isoformat())
               for s in ["ppdb001", "ppdb002", "ppml001", "ppapi001"]]
    result = requests.post(url, json={"records": records}, headers=headers).json()
    assert result.get("records_received", 0) == 4
    _types(result, {"status": str, "records_received": int, "tick": int, "rolling_window_size": int,
                    "warmup_complete": bool, "progress": str})
    assert result["status"] == "warming_up" and PROGRESS.match(result["progress"]), result["progress"]
    assert result["progress"] == "4% (need 100 records minimum)"
    # bash/curl: the heredoc payload with TIMESTAMP=$(date -Iseconds)
    payload = json.dumps({"records": [dict(GUIDE_RECORD, timestamp="$TIMESTAMP")]}, indent=2)
    script = (f'API_URL="{url}"\nAPI_KEY="{KEY}"\nTIMESTAMP=$(date -Iseconds)\n'
              f"read -r -d '' PAYLOAD << EOF\n{payload}\nEOF\n"
              'curl -s -X POST "$API_URL" -H "Content-Type: application/json" -H "X-API-Key: $API_KEY" -d "$PAYLOAD"\n')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout)["records_received"] == 1, out.stdout
    # "Testing your integration": the curl one-liner with test001
    out = subprocess.run(["curl", "-s", "-X", "POST", url, "-H", "Content-Type: application/json",
                          "-H", f"X-API-Key: {KEY}", "-d", json.dumps({"records": [TEST001]})],
                         capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout)["status"] == "warming_up"
    # records shaped as the Prometheus and Zabbix examples build them (floats from queries, int()
    # for counters and uptime, front_close_wait 0 for Zabbix); here every query answered 0.0
    prom = {m: 0.0 for m in METRICS} | {"back_close_wait": 0, "front_close_wait": 0, "uptime_days": 0}
    zabbix = dict(prom, front_close_wait=0)
    for name, rec in (("promhost", prom), ("zbxhost", zabbix)):
        r = requests.post(url, json={"records": [dict(rec, timestamp=dt.datetime.now().isoformat(),
                                                      server_name=name, status="healthy")]}, headers=headers)
        assert r.status_code == 200, r.text
    # empty batch
    empty = requests.post(url, json={"records": []}, headers=headers).json()
    assert empty["status"] == "ignored" and empty["reason"] == "empty batch"
    # validation error: the guide's format, its two example texts
    bad = [{k: v for k, v in GUIDE_RECORD.items() if k != "cpu_iowait_pct"}, dict(GUIDE_RECORD, status="unknown")]
    err = requests.post(url, json={"records": bad}, headers=headers)
    assert err.status_code == 422
    body = err.json()
    assert body["status"] == "error" and body["message"] == "Validation failed"
    assert all(isinstance(e, str) for e in body["errors"])
    assert any(e.startswith("Missing required columns: ['cpu_iowait_pct']") for e in body["errors"]), body["errors"]
    assert any(e.startswith("Invalid status value 'unknown' - must be one of: ") for e in body["errors"])
    assert {(e["record"], e["field"]) for e in body["field_errors"]} == {(0, "cpu_iowait_pct"), (1, "status")}
    # ticks of the guide's 45-server fleet until past the 100-record warmup (8 records so far)
    fleet = [dict(GUIDE_RECORD, server_name=f"ppdb{i:03d}", timestamp=dt.datetime.now().isoformat()) for i in range(45)]
    for _ in range(3):
        result = requests.post(url, json={"records": fleet}, headers=headers).json()
    assert result["status"] == "accepted" and result["warmup_complete"] is True and "progress" not in result
    # /status: the guide's fields with the guide's types; richer detail beside them
    status = requests.get(d.url + "/status", headers=headers).json()
    _types(status, {"warmup_complete": bool, "rolling_window_size": int, "servers_tracked": int,
                    "tick_count": int, "progress": str})
    # 7 servers before the fleet (ppdb001/2, ppml001, ppapi001, test001, promhost, zbxhost) + 45 - ppdb001/2
    assert status["warmup_complete"] and status["servers_tracked"] == 7 + 45 - 2
    assert status["last_prediction"] is None
    pred = requests.get(d.url + "/predictions/current", headers=headers).json()
    assert pred["status"] == "ok" and len(pred["servers"]) == status["servers_tracked"]
    again = requests.get(d.url + "/status", headers=headers).json()
    assert isinstance(again["last_prediction"], str)
    # the guide's status check sends no key: `curl http://localhost:8000/status` and the Python
    # form; both get the guide's fields (and nothing more) with the guide's types
    out = subprocess.run(["curl", "-s", f"{d.url}/status"], capture_output=True, text=True, timeout=60)
    public = json.loads(out.stdout)
    _types(public, {"tick_count": int, "warmup_complete": bool, "rolling_window_size": int, "servers_tracked": int,
                    "progress": str, "last_prediction": str})
    assert set(public) == {"tick_count", "last_prediction", "warmup_complete", "rolling_window_size",
                           "servers_tracked", "progress"}
    assert {k: again[k] for k in public} == public
    assert requests.get(d.url + "/status").json() == public


def test_the_guides_placeholder_key_is_refused_with_how_to_make_one(model_dir, tmp_path):
    r = _cli("serve", "--model", str(model_dir), "--state", str(tmp_path / "s.sqlite"),
             env={"OBSLAB_API_KEYS": "your-api-key"}, timeout=120)
    assert r.returncode == 2 and "shorter than 16" in r.stderr and "secrets.token_urlsafe" in r.stderr


def _rec(**over):
    return {**GUIDE_RECORD, "timestamp": "2025-01-15T10:00:00Z", **over}


def _body(records) -> bytes:
    return json.dumps({"records": records}).encode()


_BIG = 2**70
BAD_INPUTS = [  # (what, raw body, content type, expected status)
    ("timestamp at the year-9999 edge", _body([_rec(timestamp="9999-12-31T23:59:59-05:00")]), "application/json", 422),
    ("timestamp at the year-1 edge", _body([_rec(timestamp="0001-01-01T00:00:00+05:00")]), "application/json", 422),
    ("timestamp in 2099", _body([_rec(timestamp="2099-01-01T00:00:00Z")]), "application/json", 422),
    ("timestamp before 2000", _body([_rec(timestamp="1999-12-31T23:59:59Z")]), "application/json", 422),
    ("date only", _body([_rec(timestamp="2025-01-15")]), "application/json", 422),
    ("epoch seconds as text", _body([_rec(timestamp="1736935200")]), "application/json", 422),
    ("epoch seconds as a number", _body([_rec(timestamp=1736935200)]), "application/json", 422),
    ("garbage timestamp", _body([_rec(timestamp="yesterday")]), "application/json", 422),
    ("integer beyond 64 bits in a float field", _body([_rec(cpu_user_pct=_BIG)]), "application/json", 422),
    ("integer beyond 64 bits in an int field", _body([_rec(back_close_wait=_BIG)]), "application/json", 422),
    ("integer beyond 64 bits as the server name", _body([_rec(server_name=_BIG)]), "application/json", 422),
    ("1 MB server name", _body([_rec(server_name="a" * 1_000_000)]), "application/json", 422),
    ("100 kB unknown field name", _body([_rec(**{"x" * 100_000: 1})]), "application/json", 422),
    ("empty server name", _body([_rec(server_name="")]), "application/json", 422),
    ("unknown status", _body([_rec(status="unknown")]), "application/json", 422),
    ("missing metric", _body([{k: v for k, v in _rec().items() if k != "load_average"}]), "application/json", 422),
    ("percentage above 100", _body([_rec(mem_used_pct=100.5)]), "application/json", 422),
    ("negative counter", _body([_rec(front_close_wait=-1)]), "application/json", 422),
    ("fractional counter", _body([_rec(front_close_wait=2.5)]), "application/json", 422),
    ("boolean metric", _body([_rec(cpu_sys_pct=True)]), "application/json", 422),
    ("metric as text", _body([_rec(cpu_sys_pct="12")]), "application/json", 422),
    ("NaN literal", _body([_rec()]).replace(b'"cpu_sys_pct": 8.2', b'"cpu_sys_pct": NaN'), "application/json", 422),
    ("duplicate key in a record", _body([_rec()]).replace(b'"status": "healthy"', b'"status": "healthy", "status": "offline"'),
     "application/json", 422),
    ("duplicate records key", b'{"records": [], "records": []}', "application/json", 422),
    ("not JSON", b"{oops", "application/json", 422),
    ("invalid UTF-8", b'{"records": [{"server_name": "\xff\xfe"}]}', "application/json", 422),
    ("nested 100k deep", b"[" * 100_000 + b"]" * 100_000, "application/json", 422),
    ("a list, not an object", b"[]", "application/json", 422),
    ("records not a list", b'{"records": {}}', "application/json", 422),
    ("OCSF time beyond 64 bits", _body([{"class_uid": 0, "time": _BIG, "unmapped": {"metric": "load_average", "value": 1, "host": "h1"}}]),
     "application/json", 422),
    ("OCSF time in 2099", _body([{"class_uid": 0, "time": 4070908800000, "unmapped": {"metric": "load_average", "value": 1, "host": "h1"}}]),
     "application/json", 422),
    ("text/plain", _body([_rec()]), "text/plain", 415),
    ("form-encoded (curl -d without a type)", _body([_rec()]), "application/x-www-form-urlencoded", 415),
    ("no Content-Type", _body([_rec()]), None, 415),
    ("JSON with a charset", _body([_rec()]), "application/json; charset=utf-8", 200),
]


def test_bad_input_table_no_5xx_no_unbounded_echo_nothing_stored(daemon, capsys):
    d = daemon(warmup=1, max_body_bytes=2_000_000)
    table = []
    with d.client() as c:
        stored = c.get("/status").json()["records_total"]
        for what, raw, ctype, expected in BAD_INPUTS:
            headers = {"content-type": ctype} if ctype else {}
            r = c.post("/feed/data", content=raw, headers=headers)
            table.append((what, r.status_code, r.text[:110]))
            assert r.status_code == expected, (what, r.status_code, r.text[:500])
            assert len(r.content) < 4000, (what, len(r.content))  # the answer never grows with the input
            body = r.json()
            if expected == 422:
                assert body["status"] == "error" and body["errors"] and all(isinstance(e, str) for e in body["errors"])
            stored += expected == 200
            assert c.get("/status").json()["records_total"] == stored, what
            assert c.get("/status").status_code == 200 and c.get("/predictions/current").status_code == 200
        s = c.get("/status").json()
        assert s["tick_count"] == 1 and s["newest_timestamp"] == "2025-01-15T10:00:00Z"
    with capsys.disabled():
        print("\n" + "\n".join(f"{what:<45} {code}  {body}" for what, code, body in table))


def test_a_key_guessing_loop_is_throttled_per_address(daemon):
    d = daemon(rate_limit=4)
    anonymous = httpx.get(d.url + "/status")  # the guide's keyless status check: same per-address budget
    codes = [httpx.get(d.url + "/status", headers={"X-API-Key": f"guess-{i:020d}"}).status_code for i in range(4)]
    assert anonymous.status_code == 200 and codes == [403, 403, 403, 429]
    limited = httpx.get(d.url + "/status")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1  # no key: same address
    assert httpx.get(d.url + "/status", headers={"X-API-Key": KEY}).status_code == 200  # a valid key has its own budget
    assert httpx.get(d.url + "/health").status_code == 200


def test_a_corrupt_state_file_stops_the_start_and_is_kept(model_dir, tmp_path):
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    before = state.read_bytes()
    r = _cli("serve", "--model", str(model_dir), "--state", str(state), "--port", "1",
             env={"OBSLAB_API_KEYS": KEY}, timeout=120)
    assert r.returncode == 2 and str(state) in r.stderr and "--reset-state" in r.stderr
    assert "Traceback" not in r.stderr and state.read_bytes() == before


def test_a_restart_after_bad_inputs_answers(daemon, tmp_path):
    state = tmp_path / "restart.sqlite"
    d = daemon(state=state, warmup=1)
    with d.client() as c:
        assert c.post("/feed/data", json={"records": [_rec(timestamp="9999-12-31T23:59:59-05:00")]}).status_code == 422
        assert c.post("/feed/data", json={"records": [_rec()]}).status_code == 200
    d.stop()
    again = daemon(state=state, warmup=1)
    with again.client() as c:
        assert c.get("/status").status_code == 200 and c.get("/predictions/current").status_code == 200
        assert c.get("/status").json()["records_total"] == 1


def test_the_guides_healthy_record_is_not_flagged_on_its_profile(daemon):
    """The guide's 'healthy' example on every database server, for two hours: the issue found it
    flagged on every server with the old single-profile model."""
    d = daemon(warmup=1)
    t0 = dt.datetime(2025, 1, 15, 8, 0, tzinfo=dt.timezone.utc)
    with d.client() as c:
        for k in range(24):
            ts = (t0 + dt.timedelta(minutes=5 * k)).isoformat()
            batch = [dict(GUIDE_RECORD, server_name=f"ppdb{i:03d}", timestamp=ts) for i in range(1, 7)]
            assert c.post("/feed/data", json={"records": batch}).status_code == 200
        p = c.get("/predictions/current").json()
    assert len(p["servers"]) == 6 and all(s["profile"] == "ppdb" for s in p["servers"])
    assert not any(s["flagged"] for s in p["servers"]), [(s["server_name"], s["components"]) for s in p["servers"]]
