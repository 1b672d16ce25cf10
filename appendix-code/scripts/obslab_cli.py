#!/usr/bin/env python3
"""The ``obslab`` command from the unzipped appendix, without installing anything.

    python scripts/obslab_cli.py lab scenario --scenario scenarios/three-faults.yaml --out runs/compose-1

Same arguments as ``obslab``: it finds the bundled library (``lib/``) the way the converter
scripts do and runs its command line.
"""

import sys

import _obslab_path  # noqa: F401  (the bundled obslab on sys.path)

from obslab.cli import main

if __name__ == "__main__":
    sys.exit(main())
