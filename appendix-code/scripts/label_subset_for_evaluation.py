#!/usr/bin/env python3
"""Ground truth per event: OCSF events + incidents.json + request markers -> labels.parquet.

    python label_subset_for_evaluation.py --data-dir DIR [--trace-file DIR/raw/traces.jsonl]

Reads DIR/ocsf_{logs,traces,metrics}.parquet and DIR/incidents.json; writes DIR/labels.parquet
(uid, signal, time, service, is_anomaly, fault_id, incident_id, phase, root_cause_service) and a
small stratified evaluation subset (``--subset``, seeded). Markers (x-anomaly-* / anomaly.*)
come from the raw OTLP file, since they are never copied into OCSF events.
"""

import argparse
import sys
from pathlib import Path

import _obslab_path  # noqa: F401


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="folder with ocsf_*.parquet")
    p.add_argument("--incidents", help="incidents.json (default DATA_DIR/incidents.json)")
    p.add_argument("--trace-file", help="raw OTLP traces for markers (default DATA_DIR/raw/traces.jsonl if present)")
    p.add_argument("--output", help="labels parquet (default DATA_DIR/labels.parquet)")
    p.add_argument("--subset", help="evaluation subset parquet (default DATA_DIR/eval_subset.parquet)")
    p.add_argument("--subset-size", type=int, default=2000)
    p.add_argument("--anomaly-share", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from obslab.labels import align_markers, evaluation_subset, label_rows, markers_from_otlp
    from obslab.truth import read_incidents

    root = Path(args.data_dir)
    inc_path = Path(args.incidents) if args.incidents else root / "incidents.json"
    incidents = read_incidents(inc_path) if inc_path.exists() else []
    if not inc_path.exists():
        print(f"note: {inc_path} not found: labelling from markers only", file=sys.stderr)
    trace_file = Path(args.trace_file) if args.trace_file else root / "raw" / "traces.jsonl"
    marker_uids, markers = markers_from_otlp(trace_file) if trace_file.exists() else (None, None)
    parts = []
    for signal in ("logs", "traces", "metrics"):
        path = root / f"ocsf_{signal}.parquet"
        if not path.exists():
            continue
        t = ds.dataset(path, format="parquet", partitioning="hive").to_table(columns={
            "uid": pc.field("metadata", "uid"), "time": pc.field("time"), "service": pc.field("unmapped", "service")})
        m = align_markers(t.column("uid"), marker_uids, markers) if signal == "traces" and markers is not None else None
        parts.append(label_rows(t.column("uid"), t.column("time"), t.column("service"), signal, incidents, m))
    if not parts:
        print(f"error: no ocsf_*.parquet in {root}", file=sys.stderr)
        return 1
    labels = pa.concat_tables(parts)
    out = Path(args.output) if args.output else root / "labels.parquet"
    if out.is_dir():  # a folder: the default file name inside it
        out = out / "labels.parquet"
    pq.write_table(labels, out, compression="zstd")
    subset = evaluation_subset(labels, args.subset_size, args.anomaly_share, args.seed)
    sub_out = Path(args.subset) if args.subset else root / "eval_subset.parquet"
    pq.write_table(subset, sub_out, compression="zstd")
    n_anom = pc.sum(labels.column("is_anomaly")).as_py() or 0
    print(f"{out}: {labels.num_rows} events, {n_anom} anomalous, {len(incidents)} incidents; "
          f"{sub_out}: {subset.num_rows} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
