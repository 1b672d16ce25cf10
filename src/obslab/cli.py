"""The single ``obslab`` command. Each area registers its own subcommands.

Areas are imported lazily so that ``obslab --help`` stays fast and a missing optional
dependency of one area does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module that defines ``register(subparsers)``; that function adds one parser
# named like the key and sets ``func`` (called with the parsed args, returns an exit code).
AREAS: dict[str, str] = {
    "lab": "obslab.lab.cli",
    "synth": "obslab.synth.cli",
    "ocsf": "obslab.ocsf.cli",
    "serve": "obslab.serve.cli",
    "feed": "obslab.serve.feed_cli",
    "lake": "obslab.distributed.cli",
}

__all__ = ["build_parser", "main"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obslab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in AREAS.items():
        if only is not None and name != only:
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:  # an area not installed or not written yet
            sub.add_parser(name, help=f"(unavailable: {exc})")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the area asked for, so one area's import cost or failure stays its own.
    only = argv[0] if argv and argv[0] in AREAS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
