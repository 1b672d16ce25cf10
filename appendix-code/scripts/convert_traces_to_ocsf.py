#!/usr/bin/env python3
"""OTLP JSON traces (Collector file exporter / SDK file exporter lines) -> OCSF 1.8.0 parquet.

    python convert_traces_to_ocsf.py --trace-file traces.jsonl [--output ocsf_traces.parquet]

Also reads one pretty-printed OTLP document. Files that are not OTLP traces are reported.
"""

import sys

from _common import convert_cli


def main(argv=None) -> int:
    return convert_cli("traces", "--trace-file", "OTLP JSON lines (or one OTLP JSON document)",
                       __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
