#!/usr/bin/env python3
"""Prometheus range queries (live, or saved JSON) -> OCSF 1.8.0 parquet (Base Event + unmapped).

    python export_prometheus_metrics.py --prometheus-url http://127.0.0.1:9090 --duration 10 --step 15
    python export_prometheus_metrics.py --prometheus-url URL --start 2026-01-01T10:00:00Z --end ...
    python export_prometheus_metrics.py --from-json metrics.json

The queries are the documented list in ../config/metrics_queries.yaml (``--queries``). With a
live Prometheus the raw responses are also saved (``--save-json``, default metrics.json).
"""

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from _common import finish

DEFAULT_QUERIES = Path(__file__).resolve().parent.parent / "config" / "metrics_queries.yaml"


def _epoch(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prometheus-url", help="e.g. http://127.0.0.1:9090")
    src.add_argument("--from-json", help="saved metrics.json bundle, query_range response or result list")
    p.add_argument("--duration", type=float, default=10.0, help="minutes back from now (default 10)")
    p.add_argument("--start", help="ISO 8601 or epoch seconds (overrides --duration)")
    p.add_argument("--end", help="ISO 8601 or epoch seconds (default now)")
    p.add_argument("--step", type=float, default=15.0, help="seconds between samples (default 15)")
    p.add_argument("--queries", default=str(DEFAULT_QUERIES), help="metrics_queries.yaml")
    p.add_argument("--save-json", default="metrics.json", help="where to keep the raw responses")
    p.add_argument("--output", default="ocsf_metrics.parquet")
    p.add_argument("--validate-sample", type=int, default=200)
    args = p.parse_args(argv)
    from obslab.ocsf import convert_file

    source = args.from_json
    if args.prometheus_url:
        from obslab.prom import PromError, export_range, load_queries

        end = _epoch(args.end) if args.end else time.time()
        start = _epoch(args.start) if args.start else end - args.duration * 60
        try:
            doc = export_range(args.prometheus_url, load_queries(args.queries), start, end, args.step)
        except PromError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        Path(args.save_json).write_text(json.dumps(doc) + "\n")
        source = args.save_json
    sample = None if args.validate_sample < 0 else args.validate_sample
    return finish(convert_file("metrics", source, args.output, validate_sample=sample))


if __name__ == "__main__":
    sys.exit(main())
