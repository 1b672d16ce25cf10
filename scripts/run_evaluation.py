"""The evaluation sweep behind chapter 8: every detector on embeddings and raw features, several
training seeds, 95 % intervals by bootstrap over incidents, per dataset and fault family.

    .venv/bin/python scripts/run_evaluation.py data/sample data/lab --synth

writes data/results/evaluation_{summary,seeds,datasets}.csv (small, committed; the chapter reads
them). A dataset's rows replace its earlier rows; other datasets' rows are kept, so datasets can
be (re)run one at a time. A dataset argument is a dataset or a corpus folder, optionally named ``name=path``;
``--synth`` adds the synthetic dataset from ``obslab.data.synth_dataset()`` when that exists.
Seeded: the same arguments give the same tables (encoders are cached under obslab.cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "data" / "results"


def _datasets(args) -> list[tuple[str, Path]]:
    out = []
    for item in args.datasets:
        name, _, path = item.rpartition("=")
        path = Path(path)
        if not path.exists():
            print(f"skip {item}: {path} does not exist")
            continue
        out.append((name or path.name, path))
    if args.synth:
        import obslab.data

        make = getattr(obslab.data, "synth_dataset", None)
        if make is None:
            print("skip synth: obslab.data.synth_dataset does not exist yet")
        else:
            out.append(("synth", Path(make(seed=args.synth_seed))))
    return out


def _write(table, name: str, out: Path) -> Path:
    """Replace this run's datasets in the table, keep the other datasets' rows."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"evaluation_{name}.csv"
    if path.exists():
        old = pd.read_csv(path)
        table = pd.concat([old[~old["dataset"].isin(set(table["dataset"]))], table], ignore_index=True)
    table.to_csv(path, index=False, float_format="%.6f")
    return path


def main(argv=None) -> int:
    import pandas as pd

    from obslab.sweep import SEEDS, evaluate_dataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("datasets", nargs="*", help="[name=]path of a dataset or corpus (default: data/sample, "
                   "unless --synth alone)")
    p.add_argument("--synth", action="store_true", help="also the synthetic dataset (obslab.data.synth_dataset)")
    p.add_argument("--synth-seed", type=int, default=7, help="seed of the synthetic dataset")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="training seeds (>= 5 for the book)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--boot-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the tables (default data/results)")
    args = p.parse_args(argv)
    if not args.datasets and not args.synth:
        args.datasets = [str(REPO / "data" / "sample")]
    datasets = _datasets(args)
    if not datasets:
        print("no dataset to evaluate", file=sys.stderr)
        return 1
    tables: dict[str, list] = {"summary": [], "seeds": [], "datasets": []}
    start = time.perf_counter()
    for name, path in datasets:
        t0 = time.perf_counter()
        out = evaluate_dataset(path, name, seeds=args.seeds, n_boot=args.n_boot,
                               boot_seed=args.boot_seed, epochs=args.epochs)
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
        for key, table in out.items():
            tables[key].append(table)
    for key, parts in tables.items():
        print("wrote", _write(pd.concat(parts, ignore_index=True), key, args.out))
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
