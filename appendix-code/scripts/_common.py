"""Shared argparse plumbing of the converter scripts (reporting and exit codes)."""

import sys

import _obslab_path  # noqa: F401


def finish(report) -> int:
    """Exit code: 0 when something was converted and every sampled event validated."""
    if report.notes.get("invalid"):
        print("error: some events failed OCSF validation (see the report)", file=sys.stderr)
        return 1
    if not report.ok:
        print("error: nothing usable in the input (see the problems above)", file=sys.stderr)
        return 1
    return 0
