"""The root-cause sweep behind chapter 9: every ranking of obslab.rca_runs.rca_methods on every
incident, for several training seeds (each seed: its own encoder, detector and alert times).

    .venv/bin/python scripts/run_rca.py data/sample [name=path ...] [--seeds 7 11 23 42 97]

writes data/results/rca_per_incident.csv (small, committed; the chapter computes AC@k and its
intervals over incidents from it). A dataset's rows replace its earlier rows; other datasets'
rows are kept. A dataset argument is a dataset or a corpus folder, optionally ``name=path``.
Seeded: the same arguments give the same table (encoders are cached under obslab.cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    import pandas as pd

    from obslab.rca_runs import rca_seed_sweep, read_rca_results
    from obslab.sweep import SEEDS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", help="dataset or corpus folders, optionally name=path")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--out", type=Path, default=REPO / "data" / "results")
    args = ap.parse_args(argv)
    table = read_rca_results(args.out)
    for item in args.datasets:
        name, _, path = item.rpartition("=")
        path = Path(path)
        name = name or path.name
        started = time.perf_counter()
        rows = rca_seed_sweep(path, args.seeds, name)
        table = pd.concat([table[table["dataset"] != name], rows], ignore_index=True)
        print(f"{name}: {rows['incident'].nunique()} incidents x {len(args.seeds)} seeds "
              f"in {time.perf_counter() - started:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "rca_per_incident.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
