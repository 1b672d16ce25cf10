#!/usr/bin/env python3
"""The KPI table (per service, per step) from OCSF metrics, with per-step labels -> CSV or Parquet.

    python export_kpis.py --data-dir DIR [--output kpis.csv] [--step 15]

Columns: cpu_pct, ram_pct, rss_mb, storage_pct, storage_mb, net_bytes_per_s, request_rate,
error_rate_pct, availability_pct, p95_latency_ms, queue_depth, worker_throughput (empty when the
data has no source metric for it; aliases in obslab.kpis), their rolling mean/std over
5 and 15 minutes, and phase / is_anomaly / fault_id / incident_id / root_cause_service per step.
"""

import argparse
import sys
from pathlib import Path

import _obslab_path  # noqa: F401


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="dataset folder (ocsf_metrics.parquet, incidents.json)")
    p.add_argument("--metrics", help="OCSF metrics parquet (default DATA_DIR/ocsf_metrics.parquet)")
    p.add_argument("--incidents", help="incidents.json (default DATA_DIR/incidents.json)")
    p.add_argument("--step", type=int, help="seconds per row (default: the data's step)")
    p.add_argument("--output", default="kpis.csv", help=".csv or .parquet")
    args = p.parse_args(argv)
    if not (args.data_dir or args.metrics):
        p.error("give --data-dir or --metrics")

    import pyarrow.dataset as ds

    from obslab.kpis import kpi_table, write_table
    from obslab.truth import read_incidents

    root = Path(args.data_dir) if args.data_dir else None
    metrics = Path(args.metrics) if args.metrics else root / "ocsf_metrics.parquet"
    inc = Path(args.incidents) if args.incidents else (root / "incidents.json" if root else None)
    incidents = read_incidents(inc) if inc and inc.exists() else []
    table = ds.dataset(metrics, format="parquet", partitioning="hive").to_table()
    try:
        df = kpi_table(table, incidents, args.step)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if Path(args.output).is_dir():  # a folder: the default file name inside it
        args.output = str(Path(args.output) / "kpis.csv")
    write_table(df, args.output)
    print(f"{args.output}: {len(df)} rows ({df['service'].nunique()} services), "
          f"{int(df['is_anomaly'].sum())} anomalous steps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
