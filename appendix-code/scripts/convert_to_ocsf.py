#!/usr/bin/env python3
"""Compose log lines (``docker compose logs --no-color`` output) -> OCSF 1.8.0 parquet.

    python convert_to_ocsf.py --log-file logs.txt [--output ocsf_logs.parquet]

Prints a loss summary on stderr and writes ``<output>.report.json`` next to the output.
"""

import sys

from _common import convert_cli


def main(argv=None) -> int:
    return convert_cli("logs", "--log-file", "Compose-format log file (any encoding, with or without colour)",
                       __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
