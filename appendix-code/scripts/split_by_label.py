#!/usr/bin/env python3
"""Split labelled OCSF traces into all / normal / anomalous / one file per fault type.

    python split_by_label.py --data-dir DIR [--signal traces] [--format parquet|csv] [--out-dir DIR/split]

Joins DIR/ocsf_<signal>.parquet with DIR/labels.parquet by event uid (label_* columns).
CSV output flattens the nested OCSF structs to dotted column names.
"""

import argparse
import sys
from pathlib import Path

import _obslab_path  # noqa: F401


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--signal", default="traces", choices=["traces", "logs", "metrics"])
    p.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    p.add_argument("--out-dir", help="default DATA_DIR/split")
    args = p.parse_args(argv)

    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from obslab.labels import flatten_for_csv, join_labels, split_by_label

    root = Path(args.data_dir)
    events = ds.dataset(root / f"ocsf_{args.signal}.parquet", format="parquet", partitioning="hive").to_table()
    labels = ds.dataset(root / "labels.parquet", format="parquet", partitioning="hive").to_table()
    out = Path(args.out_dir) if args.out_dir else root / "split"
    out.mkdir(parents=True, exist_ok=True)
    for name, part in split_by_label(join_labels(events, labels)).items():
        path = out / f"{args.signal}_{name}.{args.format}"
        if args.format == "csv":
            pcsv.write_csv(flatten_for_csv(part), path)
        else:
            pq.write_table(part, path, compression="zstd")
        print(f"{path}: {part.num_rows} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
