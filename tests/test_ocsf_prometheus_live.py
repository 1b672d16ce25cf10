"""export_prometheus_metrics.py against a real Prometheus (Debian binary) scraping itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lab_processes import wait_for_scrapes
from obslab.lab.processes import free_port, start_prometheus
from obslab.ocsf import validate_table

SCRIPT = Path(__file__).resolve().parents[1] / "appendix-code" / "scripts" / "export_prometheus_metrics.py"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus binary not installed")]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    d = tmp_path_factory.mktemp("prom")
    port = free_port()
    (d / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    proc = start_prometheus(port, d / "prometheus.yml", d / "data")
    url = f"http://127.0.0.1:{port}"
    try:
        # one stored scrape is what the export reads (its first comes ~6 s after start, not 1 s)
        stored = wait_for_scrapes(url, "up", 1, timeout_s=90)
        assert stored >= 1, "Prometheus stored no scrape of `up` in 90 s"
        yield url, d
    finally:
        proc.stop()


def test_export_live_prometheus_to_ocsf(prometheus, tmp_path):
    url, d = prometheus
    queries = tmp_path / "queries.yaml"
    queries.write_text(
        "queries:\n"
        "  - {name: up, promql: 'up', unit: ''}\n"
        "  - {name: rss_bytes, promql: 'process_resident_memory_bytes', unit: bytes}\n"
        "  - {name: broken, promql: 'rate(up[', unit: ''}\n")
    out = tmp_path / "ocsf_metrics.parquet"
    r = subprocess.run([sys.executable, str(SCRIPT), "--prometheus-url", url, "--duration", "0.2", "--step", "1",
                        "--queries", str(queries), "--save-json", str(tmp_path / "metrics.json"), "--output", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bad_data" in r.stderr  # the broken query is reported, the others converted
    table = pq.read_table(out)
    metrics = set(pc.struct_field(table.column("unmapped"), "metric").to_pylist())
    assert metrics == {"up", "rss_bytes"}
    ups = [v for m, v in zip(pc.struct_field(table.column("unmapped"), "metric").to_pylist(),
                             pc.struct_field(table.column("unmapped"), "value").to_pylist()) if m == "up"]
    assert ups and set(ups) == {1.0}
    assert validate_table(table).ok
    # the saved raw responses convert to the same events
    r2 = subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "metrics.json"),
                         "--output", str(tmp_path / "again.parquet")], capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    assert pq.read_table(tmp_path / "again.parquet").num_rows == table.num_rows
