#!/usr/bin/env python3
"""Compose log lines (``docker compose logs --no-color`` output) -> OCSF 1.8.0 parquet.

    python convert_to_ocsf.py --log-file logs.txt [--output ocsf_logs.parquet]

Prints a loss summary on stderr and writes ``<output>.report.json`` next to the output.
"""

import argparse
import sys

from _common import finish


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log-file", required=True, help="Compose-format log file (any encoding, with or without colour)")
    p.add_argument("--output", default="ocsf_logs.parquet")
    p.add_argument("--validate-sample", type=int, default=200,
                   help="events to check against the official OCSF schema (0: none, -1: all)")
    args = p.parse_args(argv)
    from obslab.ocsf import convert_file

    sample = None if args.validate_sample < 0 else args.validate_sample
    return finish(convert_file("logs", args.log_file, args.output, validate_sample=sample))


if __name__ == "__main__":
    sys.exit(main())
