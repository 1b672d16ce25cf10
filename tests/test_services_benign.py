"""web-api's benign transient errors (the lab's background noise, BENIGN_5XX_RATE): a search
answers 500 "transient" and logs it as an error of that type; other routes are not touched."""

from __future__ import annotations

import json

import pytest
import requests

from lab_processes import metric_value, metrics_text, start_stack, wait_for

pytestmark = pytest.mark.integration


def test_benign_transient_5xx_on_search_only(tmp_path):
    stack = start_stack(tmp_path / "lab", extra_env={"web-api": {"BENIGN_5XX_RATE": "1"}})
    try:
        search = requests.get(stack.url("web-api", "/api/search?q=lamp"), timeout=10)
        assert search.status_code == 500 and "transient" in search.json()["error"]
        assert requests.get(stack.url("web-api", "/api/users/7"), timeout=10).status_code == 200
        wait_for(lambda: any(e["error_type"] == "transient" and e["level"] == "ERROR" for e in _errors(stack)), 10, 0.2)
        web = metrics_text(stack.url("web-api", "/metrics"))
        assert metric_value(web, "app_errors_total", service="web-api", type="transient") >= 1
        assert metric_value(web, "http_requests_total", service="web-api", route="/api/search", status="500") >= 1
    finally:
        stack.stop()


def _errors(stack) -> list[dict]:
    return [json.loads(p) for s, p in stack.log_lines() if s == "web-api" and '"error_type"' in p]
