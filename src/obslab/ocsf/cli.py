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
    c.add_argument("--layout", choices=["files", "lake"], default="files",
                   help="files: ocsf_<signal>.parquet; lake: OUT_DIR/lake (one class per object, "
                        "class_uid/source/region/date partitions, manifest.json; see obslab.lake)")
    c.add_argument("--lake", dest="layout", action="store_const", const="lake", help="same as --layout lake")
    c.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="lake layout: convert one raw file per task, here or on Ray")
    c.add_argument("--address", help="Ray cluster address (--engine ray; default: start a local cluster)")
    c.set_defaults(func=_convert)
    v = sub.add_parser("validate", help="validate OCSF parquet file(s) against the official 1.8.0 schema")
    v.add_argument("files", nargs="+", metavar="FILE.parquet|LAKE", help="parquet files or lake folders")
    v.add_argument("--sample", type=int, default=None, help="validate a random sample of N events (default: all)")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=_validate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _convert(args: argparse.Namespace) -> int:
    from obslab.ocsf.convert import convert_dataset

    if args.layout == "lake":
        return _convert_lake(args)
    if args.engine != "local":
        print("obslab ocsf convert: --engine ray writes the lake layout; add --layout lake", file=sys.stderr)
        return 2
    result = convert_dataset(args.raw_dir, args.out_dir, incidents=args.incidents,
                             validate_sample=args.validate_sample)
    print(json.dumps({k: ({kk: v[kk] for kk in ("records_in", "records_out", "rejected")} if k != "labels" else v)
                      for k, v in result.items()}, indent=2))
    bad = [k for k, v in result.items() if k != "labels" and (v.get("notes", {}).get("invalid") or
                                                              (v["records_out"] == 0 and v["records_in"]))]
    return 1 if bad else 0


def _convert_lake(args: argparse.Namespace) -> int:
    from obslab.distributed import convert_lake

    try:
        result = convert_lake(args.raw_dir, args.out_dir, engine=args.engine, address=args.address,
                              incidents=args.incidents, validate_sample=args.validate_sample)
    except (FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"obslab ocsf convert: {exc}", file=sys.stderr)
        return 2
    files = result["files"]
    print(json.dumps({"files": [{k: f[k] for k in ("source", "records_in", "records_out", "rejected")} for f in files],
                      "rows_by_source": result["manifest"]["rows_by_source"],
                      "partitions": len(result["manifest"]["partitions"])}, indent=2))
    return 1 if any(f["invalid"] or (f["records_out"] == 0 and f["records_in"]) for f in files) else 0


def _validate(args: argparse.Namespace) -> int:
    from obslab.lake import is_lake, lake_files, read_ocsf
    from obslab.ocsf.validate import validate_table

    status = 0
    for path in args.files:
        # a lake is validated source by source (each source has its own schema)
        parts = ([(f"{path} [{s}]", s) for s in sorted({f.parent.parent.parent.name.split("=", 1)[1]
                                                         for f in lake_files(path)})]
                 if is_lake(path) else [(path, None)])
        for name, signal in parts:
            table = read_ocsf(path, signal)
            result = validate_table(table, sample=args.sample, seed=args.seed)
            print(f"{name}: {result.summary()}")
            status = status or (0 if result.ok else 1)
    return status


if __name__ == "__main__":
    from obslab.cli import main

    sys.exit(main(["ocsf", *sys.argv[1:]]))
