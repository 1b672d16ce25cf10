"""``obslab ocsf``: convert raw telemetry to OCSF parquet, validate OCSF parquet files."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("ocsf", help="convert raw telemetry to OCSF 1.8.0 parquet; validate it")
    sub = p.add_subparsers(dest="ocsf_command", metavar="ACTION")
    c = sub.add_parser("convert", help="RAW_DIR (logs.txt, traces.jsonl, metrics.json) -> OUT_DIR parquet + labels")
    c.add_argument("raw_dir")
    c.add_argument("out_dir")
    c.add_argument("--incidents", help="incidents.json (default: next to RAW_DIR when present)")
    c.add_argument("--validate-sample", type=int, default=200, help="events to validate per signal (default 200)")
    c.set_defaults(func=_convert)
    v = sub.add_parser("validate", help="validate OCSF parquet file(s) against the official 1.8.0 schema")
    v.add_argument("files", nargs="+", metavar="FILE.parquet")
    v.add_argument("--sample", type=int, default=None, help="validate a random sample of N events (default: all)")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=_validate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _convert(args: argparse.Namespace) -> int:
    from obslab.ocsf.convert import convert_dataset

    result = convert_dataset(args.raw_dir, args.out_dir, incidents=args.incidents,
                             validate_sample=args.validate_sample)
    print(json.dumps({k: ({kk: v[kk] for kk in ("records_in", "records_out", "rejected")} if k != "labels" else v)
                      for k, v in result.items()}, indent=2))
    bad = [k for k, v in result.items() if k != "labels" and (v.get("notes", {}).get("invalid") or
                                                              (v["records_out"] == 0 and v["records_in"]))]
    return 1 if bad else 0


def _validate(args: argparse.Namespace) -> int:
    import pyarrow.dataset as ds

    from obslab.ocsf.validate import validate_table

    status = 0
    for path in args.files:
        table = ds.dataset(path, format="parquet").to_table()
        result = validate_table(table, sample=args.sample, seed=args.seed)
        print(f"{path}: {result.summary()}")
        status = status or (0 if result.ok else 1)
    return status


if __name__ == "__main__":
    from obslab.cli import main

    sys.exit(main(["ocsf", *sys.argv[1:]]))
