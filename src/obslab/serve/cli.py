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
                       "generic) and a second one (another seed) on which the thresholds are chosen; "
                       "`--from FILE.parquet` reads records in the 16-field schema (its last quarter in time "
                       "chooses the thresholds). The folder is the library's model folder (obslab.train."
                       "save_model) plus the daemon's reference (serving.json, reference.npz).")
    t.add_argument("--from", dest="source", required=True, help="synth, or a Parquet file of records")
    t.add_argument("--out", required=True, type=Path, help="model folder to write")
    t.add_argument("--encoder", type=Path, help="use this exported encoder folder (its FeatureSpec must read "
                   "record fields) instead of training one")
    t.add_argument("--days", type=float, default=2, help="synth: days of the fleet")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--false-alarm-target", type=float, default=0.005,
                   help="share of healthy server-checks flagged on the validation data (default 0.005)")
    t.set_defaults(func=train)


def _training_data(source: str, days: float, seed: int):
    """(training frame, validation frame, source identities) or an error text."""
    import pandas as pd

    from obslab.serve.evaluation import VALIDATION_OFFSET
    from obslab.serve.fleet import SYNTH_PER_PROFILE, fleet_names, guide_fleet
    from obslab.serve.schemas import METRICS

    if source == "synth":
        # 16 servers of each profile: with the guide's 6, a profile's spread across servers and the
        # validation quantiles rest on too few servers (a held-out fleet's odd server stays flagged)
        names, gen = fleet_names(SYNTH_PER_PROFILE, generic=SYNTH_PER_PROFILE), "obslab.serve.fleet.guide_fleet"
        ident = {"generator": gen, "days": days, "servers_per_profile": SYNTH_PER_PROFILE}
        return (guide_fleet(days=days, seed=seed, names=names),
                guide_fleet(days=days, seed=seed + VALIDATION_OFFSET, names=names),
                {**ident, "seed": seed}, {**ident, "seed": seed + VALIDATION_OFFSET})
    path = Path(source)
    if not path.exists():
        return f"{path} does not exist (give `synth` or a Parquet file)"
    df = pd.read_parquet(path)
    missing = [c for c in ("timestamp", "server_name", *METRICS) if c not in df.columns]
    if missing:
        return f"{path} lacks column(s) {missing}"
    ts = pd.to_datetime(df["timestamp"], utc=True)
    cut = ts.quantile(0.75)
    return (df[ts <= cut].reset_index(drop=True), df[ts > cut].reset_index(drop=True),
            {"file": str(path), "until": cut.isoformat()}, {"file": str(path), "after": cut.isoformat()})


def build(source: str, out: Path, days: float = 2, seed: int = 0, epochs: int = 5, target: float = 0.005,
          encoder: Path | None = None) -> Path | str:
    """The model folder ``out`` (trained, or from ``encoder``), or an error text."""
    import shutil

    from obslab.serve.model_store import attach_reference, train_server_model

    if encoder is not None and not ((encoder / "model.pt").exists() and (encoder / "meta.json").exists()):
        return f"{encoder} is not an exported model folder (needs model.pt and meta.json)"
    data = _training_data(source, days, seed)
    if isinstance(data, str):
        return data
    df, validation, src, vsrc = data
    if encoder is None:
        return train_server_model(df, out, seed=seed, epochs=epochs, validation=validation, target_rate=target,
                                  source=src, validation_source=vsrc)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "meta.json"):
        if encoder.resolve() != out.resolve():
            shutil.copyfile(encoder / name, out / name)
    return attach_reference(out, df, seed=seed, validation=validation, target_rate=target,
                            source={**src, "encoder": str(encoder)}, validation_source=vsrc)


def train(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    try:
        out = build(args.source, args.out, args.days, args.seed, args.epochs, args.false_alarm_target, args.encoder)
    except (ValueError, FileNotFoundError) as exc:
        out = str(exc)
    if isinstance(out, str):
        print(f"obslab serve train: {out}", file=sys.stderr)
        return 2
    import json

    serving = json.loads((out / "serving.json").read_text())
    cal, trained = serving["calibration"], serving["trained_on"]
    print(f"model folder {out}: {trained['n_records']} records of {trained['n_servers']} servers; thresholds "
          f"chosen on {cal.get('validation_checks', 0)} validation server-checks (flagged "
          f"{100 * cal.get('validation_rate', float('nan')):.2f} %, target {100 * cal.get('target_rate', float('nan')):.2f} %); "
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
    from obslab.serve.model_store import NoReference

    def settings() -> ServeSettings:
        return ServeSettings(model_dir=args.model, state_path=args.state, window=args.window, warmup=args.warmup,
                             rate_limit=args.rate_limit, max_body_bytes=args.max_body_bytes, retain=args.retain,
                             reset_state=args.reset_state)

    try:
        try:
            app = create_app(settings(), keys)
        except NoReference:
            # an exported encoder of record fields: give it the daemon's part once, in a folder beside it
            encoder, args.model = args.model, args.model.with_name(args.model.name + "-serving")
            print(f"obslab serve: {encoder} has no daemon reference; building one from the guide's synthetic fleet "
                  f"into {args.model} (reused on the next start)", file=sys.stderr)
            if not (args.model / "serving.json").exists():
                built = build("synth", args.model, encoder=encoder)
                if isinstance(built, str):
                    raise ValueError(built) from None
            app = create_app(settings(), keys)
    except (ValueError, FileNotFoundError, OSError, StateFileError) as exc:
        print(f"obslab serve: {exc}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"obslab serve: warning: listening on {args.host}, not loopback", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                server_header=False)
    return 0
