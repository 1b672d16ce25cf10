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


def convert_cli(signal: str, input_option: str, input_help: str, description: str, argv=None) -> int:
    """The whole CLI of a one-file converter: parse, convert with obslab.ocsf, report, exit code."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument(input_option, required=True, dest="input", help=input_help)
    p.add_argument("--output", default=f"ocsf_{signal}.parquet")
    p.add_argument("--validate-sample", type=int, default=200,
                   help="events to check against the official OCSF schema (0: none, -1: all)")
    args = p.parse_args(argv)
    from obslab.ocsf import convert_file

    sample = None if args.validate_sample < 0 else args.validate_sample
    return finish(convert_file(signal, args.input, args.output, validate_sample=sample))
