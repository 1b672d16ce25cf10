"""``obslab feed``: turn monitoring data into feed batches and send them to the daemon.

    obslab feed --from-prometheus http://127.0.0.1:9090 --interval 5m --to http://127.0.0.1:8000
    obslab feed --from-zabbix history.json --interval 5m            # JSON lines to stdout

Every ``--interval`` it asks Prometheus for the samples since the last cycle at that step (so
nothing between cycles is missed) and posts them as one batch per ``--batch-size`` records; a
429 is waited out (``Retry-After``) and the same batch sent again. Without ``--to`` the batches
are printed as JSON lines (``{"records": [...]}``) for any other client.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

__all__ = ["register", "parse_duration", "post_batches"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'5m' -> 300 (s, m, h, d; a bare number is seconds)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def register(subparsers) -> None:
    p = subparsers.add_parser("feed", help="send Prometheus or Zabbix data to the inference daemon",
                              description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-prometheus", metavar="URL", help="Prometheus base URL")
    src.add_argument("--from-zabbix", metavar="FILE", type=Path,
                     help="Zabbix history export: JSON list of {host, key_, clock, value}")
    p.add_argument("--interval", type=parse_duration, default=300, help="cycle and sample step (default 5m)")
    p.add_argument("--backfill", type=parse_duration, help="first cycle reaches this far back (default: one interval)")
    p.add_argument("--once", action="store_true", help="one cycle, then exit")
    p.add_argument("--to", metavar="URL", help="daemon base URL; without it, batches go to stdout")
    p.add_argument("--api-key", default=os.environ.get("OBSLAB_API_KEY"), help="default: $OBSLAB_API_KEY")
    p.add_argument("--queries", type=Path, help="JSON {metric: PromQL} overriding the default queries")
    p.add_argument("--server-label", default="instance", help="label naming the server (port stripped)")
    p.add_argument("--status", default="healthy", help="status annotation for every record")
    p.add_argument("--batch-size", type=int, default=5000, help="records per POST")
    p.set_defaults(func=run)


def post_batches(client, records: list[dict], batch_size: int, out=sys.stdout, max_wait: float = 120) -> int:
    """POST records in batches; returns records accepted. 429 -> wait Retry-After, resend."""
    import httpx

    sent = 0
    for i in range(0, len(records), batch_size):
        batch = {"records": records[i:i + batch_size]}
        if client is None:
            out.write(json.dumps(batch) + "\n")
            sent += len(batch["records"])
            continue
        waited = 0.0
        while True:
            r = client.post("/feed/data", json=batch)
            if r.status_code == 429 and waited < max_wait:
                delay = float(r.headers.get("Retry-After", "1"))
                time.sleep(delay)
                waited += delay
                continue
            break
        if r.status_code != 200:
            raise httpx.HTTPStatusError(f"daemon answered {r.status_code}: {r.text[:2000]}", request=r.request, response=r)
        sent += r.json()["records_stored"]
    return sent


def _prometheus_cycle(client, args, queries, start: float, end: float, summary):
    from obslab.serve.prometheus import query_range, records_from_results

    results = {m: query_range(client, args.from_prometheus, q, start, end, args.interval) for m, q in queries.items()}
    return records_from_results(results, status=args.status, server_label=args.server_label, summary=summary)


def run(args: argparse.Namespace) -> int:
    import httpx

    from obslab.serve.prometheus import DEFAULT_QUERIES, FeedSummary, PrometheusError
    from obslab.serve.schemas import METRICS, Status

    if args.status not in Status.__members__:
        print(f"obslab feed: --status must be one of {', '.join(Status.__members__)}", file=sys.stderr)
        return 2
    if args.to and not args.api_key:
        print("obslab feed: --to needs --api-key or $OBSLAB_API_KEY", file=sys.stderr)
        return 2
    queries = dict(DEFAULT_QUERIES)
    if args.queries:
        custom = json.loads(args.queries.read_text())
        unknown = sorted(set(custom) - set(METRICS))
        if unknown:
            print(f"obslab feed: unknown metric(s) in {args.queries}: {', '.join(unknown)}", file=sys.stderr)
            return 2
        queries.update(custom)
    daemon = httpx.Client(base_url=args.to, headers={"X-API-Key": args.api_key}, timeout=60) if args.to else None
    try:
        if args.from_zabbix:
            from obslab.serve.zabbix import records_from_zabbix

            summary = FeedSummary()
            records = records_from_zabbix(json.loads(args.from_zabbix.read_text()), step=args.interval,
                                          status=args.status, summary=summary)
            sent = post_batches(daemon, records, args.batch_size)
            print(f"obslab feed: {summary.line()}; {sent} stored", file=sys.stderr)
            return 0
        step = args.interval
        end = time.time() // step * step
        start = end - (args.backfill or 0)  # first cycle: the backfill, or just the latest step
        with httpx.Client(timeout=60) as prom:
            while True:
                summary = FeedSummary()
                records = _prometheus_cycle(prom, args, queries, start, end, summary)
                sent = post_batches(daemon, records, args.batch_size)
                print(f"obslab feed: {time.strftime('%H:%M:%S')} {summary.line()}; {sent} stored", file=sys.stderr)
                if args.once:
                    return 0
                time.sleep(max(0.0, end + step - time.time()))
                start, end = end + step, time.time() // step * step
    except (PrometheusError, httpx.HTTPError, OSError, ValueError) as exc:
        print(f"obslab feed: {exc}", file=sys.stderr)
        return 1
    finally:
        if daemon is not None:
            daemon.close()
