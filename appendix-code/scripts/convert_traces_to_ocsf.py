#!/usr/bin/env python3
"""OTLP JSON traces (Collector file exporter / SDK file exporter lines) -> OCSF 1.8.0 parquet.

    python convert_traces_to_ocsf.py --trace-file traces.jsonl [--output ocsf_traces.parquet]

Also reads one pretty-printed OTLP document. Files that are not OTLP traces are reported.
"""

import argparse
import sys

from _common import finish


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace-file", required=True, help="OTLP JSON lines (or one OTLP JSON document)")
    p.add_argument("--output", default="ocsf_traces.parquet")
    p.add_argument("--validate-sample", type=int, default=200,
                   help="events to check against the official OCSF schema (0: none, -1: all)")
    args = p.parse_args(argv)
    from obslab.ocsf import convert_file

    sample = None if args.validate_sample < 0 else args.validate_sample
    return finish(convert_file("traces", args.trace_file, args.output, validate_sample=sample))


if __name__ == "__main__":
    sys.exit(main())
