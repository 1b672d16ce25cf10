"""``obslab lake``: jobs over an OCSF lake, here or on Ray (``--engine local|ray --address A``).

Conversion into a lake is ``obslab ocsf convert --layout lake``; a synthetic lake is
``obslab synth --format lake``.
"""

from __future__ import annotations

import argparse
import json
import sys


def _engine_args(p) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="where the tasks run (default local)")
    p.add_argument("--address", help="Ray cluster address, e.g. auto or HOST:PORT (default: start a local cluster)")


def register(subparsers) -> None:
    p = subparsers.add_parser("lake", help="jobs over an OCSF lake (features, scoring), locally or on Ray")
    sub = p.add_subparsers(dest="lake_command", metavar="ACTION")
    m = sub.add_parser("manifest", help="rebuild LAKE/manifest.json from its objects and print its counts")
    m.add_argument("lake")
    m.set_defaults(func=_manifest)
    f = sub.add_parser("features", help="window features of every day of LAKE -> OUT.parquet")
    f.add_argument("lake")
    f.add_argument("out")
    f.add_argument("--window-ms", type=int, default=60_000)
    _engine_args(f)
    f.set_defaults(func=_features)
    s = sub.add_parser("score", help="score every event of LAKE with a scoring model folder -> OUT.parquet")
    s.add_argument("lake")
    s.add_argument("out")
    s.add_argument("--model", required=True, help="scoring model folder (model.pt, meta.json, detector.pkl)")
    s.add_argument("--signal", default="traces", choices=["traces", "logs"])
    _engine_args(s)
    s.set_defaults(func=_score)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _fail(exc) -> int:
    print(f"obslab lake: {exc}", file=sys.stderr)
    return 2


def _manifest(args) -> int:
    from obslab.lake import find_lake, read_manifest, write_manifest

    lake = find_lake(args.lake)
    if lake is None:
        return _fail(f"{args.lake} is not a lake (no class_uid=... folders)")
    old = read_manifest(lake) if (lake / "manifest.json").exists() else {}
    man = write_manifest(lake, extra={k: v for k, v in old.items() if k == "writers"})
    print(json.dumps({"rows": man["rows"], "rows_by_source": man["rows_by_source"], "partitions": len(man["partitions"])}))
    return 0


def _features(args) -> int:
    from pathlib import Path

    from obslab.distributed.features import lake_window_features

    try:
        df = lake_window_features(args.lake, args.engine, args.address, window_ms=args.window_ms)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        return _fail(exc)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out, index=False)
    print(json.dumps({"rows": len(df), "columns": len(df.columns), "out": args.out}))
    return 0


def _score(args) -> int:
    from obslab.distributed.score import score_lake

    try:
        res = score_lake(args.lake, args.model, args.out, signal=args.signal, engine=args.engine, address=args.address)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        return _fail(exc)
    scores = res["scores"]
    alerts = int(sum(scores.column("alert").to_pylist()))
    print(json.dumps({"events": scores.num_rows, "alerts": alerts, "objects": res["objects"],
                      "workers": len(res["workers"]), "out": args.out}))
    return 0
