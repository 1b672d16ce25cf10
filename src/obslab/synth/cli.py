"""``obslab synth``: write a synthetic dataset."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generate synthetic labelled telemetry (metrics, events, logs, traces)",
        description="Generate a synthetic MELT dataset with cascading incidents and ground truth.",
    )
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--days", type=int, help="days to generate (default 365)")
    p.add_argument("--step", help="granularity, e.g. 1m, 5m, 15m (default 15m)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--start", help="first day, YYYY-MM-DD (default 2025-01-01)")
    p.add_argument("--hosts-per-service", type=int, dest="hosts_per_service")
    p.add_argument("--format", choices=["ocsf", "raw", "both", "lake"], default="ocsf",
                   help="ocsf: day-partitioned OCSF parquet + labels; raw: the lab's raw files; "
                        "lake: OCSF in DIR/lake (class_uid/source/region/date, manifest.json)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: generate the chunks as Ray tasks (--address of a cluster, or a local one)")
    p.add_argument("--address", help="Ray cluster address (with --engine ray; default: start a local one)")
    p.add_argument("--config", help="YAML file of settings (flags override it)")
    p.add_argument("--server-metrics", action="store_true", default=None, dest="server_metrics",
                   help="also write server_metrics.parquet (the daemon's schema)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset already in --out (otherwise an error)")
    p.add_argument("--workers", type=int, help="generator processes (default 2; output is the same)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from obslab.synth.config import load_config
    from obslab.synth.generate import generate

    try:
        cfg = load_config(args.config, days=args.days, step=args.step, seed=args.seed,
                          start=args.start, hosts_per_service=args.hosts_per_service,
                          server_metrics=args.server_metrics)
    except (ValueError, TypeError, OSError) as exc:
        print(f"obslab synth: {exc}", file=sys.stderr)
        return 2
    try:
        engine = None
        if args.engine == "ray":
            from obslab.distributed import get_engine

            engine = get_engine("ray", args.address)
        try:
            res = generate(cfg, args.out, fmt=args.format, quiet=args.quiet, workers=args.workers,
                           overwrite=args.overwrite, argv=["obslab", *sys.argv[1:]], engine=engine)
        finally:
            if engine is not None:
                engine.close()
    except (FileExistsError, RuntimeError) as exc:
        print(f"obslab synth: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in res.counts.items() if not k.endswith("_anomalous"))
    print(f"wrote {res.out}: {res.incidents} incidents; {counts}; {res.seconds:.1f} s")
    return 0
