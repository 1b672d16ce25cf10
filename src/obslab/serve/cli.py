"""``obslab serve``: run the inference daemon (uvicorn, loopback by default);
``obslab serve train``: make the model folder it serves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run", "train"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the inference daemon (REST: /feed/data, /status, /predictions/current, /health)",
        description="Serve a trained daemon model folder (make one with `obslab serve train`). API keys: "
        "OBSLAB_API_KEYS (comma-separated) and/or --keys-file (one per line), 16 characters or more.",
    )
    p.add_argument("--model", type=Path, help="model folder (from `obslab serve train`)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--window", type=int, default=2880, help="rolling window size in records")
    p.add_argument("--warmup", type=int, default=100, help="records needed before predictions")
    p.add_argument("--state", type=Path, default=Path("obslab-daemon.sqlite"),
                   help="SQLite file holding accepted records (the window resumes from it)")
    p.add_argument("--retain", type=int, default=10_000,
                   help="records kept in the state file beyond the window (older ones are deleted)")
    p.add_argument("--reset-state", action="store_true",
                   help="if the state file is unreadable, rename it (.corrupt-<time>) and start empty")
    p.add_argument("--keys-file", type=Path, help="file with API keys, one per line")
    p.add_argument("--rate-limit", type=int, default=60,
                   help="requests in any 60 s per key (and per client address without a valid key)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="serve_command", metavar="{train}")
    t = sub.add_parser("train", help="train a daemon model folder on normal server-metrics records",
                       description="Train the daemon's model on normal records: `--from synth` makes a healthy "
                       "fleet of the metrics-feed guide's profiles (ppdb, ppml, ppapi, ppcond, ppetl, pprisk, "
                       "generic); `--from FILE.parquet` reads records in the 16-field schema.")
    t.add_argument("--from", dest="source", required=True, help="synth, or a Parquet file of records")
    t.add_argument("--out", required=True, type=Path, help="model folder to write")
    t.add_argument("--days", type=float, default=2, help="synth: days of the fleet")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=5)
    t.set_defaults(func=train)


def train(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from obslab.serve.fleet import guide_fleet
    from obslab.serve.model_store import train_server_model
    from obslab.serve.schemas import METRICS

    torch.set_num_threads(1)
    if args.source == "synth":
        df = guide_fleet(days=args.days, seed=args.seed)
        source = {"generator": "obslab.serve.fleet.guide_fleet", "days": args.days, "seed": args.seed}
    else:
        path = Path(args.source)
        if not path.exists():
            print(f"obslab serve train: {path} does not exist (give `synth` or a Parquet file)", file=sys.stderr)
            return 2
        df = pd.read_parquet(path)
        missing = [c for c in ("timestamp", "server_name", *METRICS) if c not in df.columns]
        if missing:
            print(f"obslab serve train: {path} lacks column(s) {missing}", file=sys.stderr)
            return 2
        source = {"file": str(path)}
    out = train_server_model(df, args.out, seed=args.seed, epochs=args.epochs, source=source)
    print(f"model folder {out}: {len(df)} records of {df['server_name'].nunique()} servers; "
          f"serve it with: obslab serve --model {out}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from obslab.serve.auth import KeyChecker, load_keys

    if args.model is None:
        print("obslab serve: --model DIR is required (make one with: obslab serve train --from synth --out DIR)",
              file=sys.stderr)
        return 2
    try:  # keys first: a misconfigured daemon fails in milliseconds, before torch loads
        keys = load_keys(args.keys_file)
        KeyChecker(keys)
    except (ValueError, OSError) as exc:
        print(f"obslab serve: {exc}", file=sys.stderr)
        return 2

    import faiss
    import torch
    import uvicorn

    from obslab.serve.app import ServeSettings, create_app
    from obslab.serve.store import StateFileError

    # tiny batches: threads only add contention with the event loop (measured: 45-row embed
    # 68 ms with default threads vs 4 ms with one, on a loaded 2-core machine)
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    try:
        app = create_app(
            ServeSettings(model_dir=args.model, state_path=args.state, window=args.window, warmup=args.warmup,
                          rate_limit=args.rate_limit, max_body_bytes=args.max_body_bytes, retain=args.retain,
                          reset_state=args.reset_state),
            keys,
        )
    except (ValueError, FileNotFoundError, OSError, StateFileError) as exc:
        print(f"obslab serve: {exc}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"obslab serve: warning: listening on {args.host}, not loopback", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                server_header=False)
    return 0
