"""Loss accounting for one conversion: records in = records out + records rejected.

Every reader updates a :class:`ConversionReport` as it streams. Rejections keep their reason
and line number (the first ``max_examples`` of them, plus a count per reason), so a user can
find the bad lines; file-level problems (wrong signal, not OTLP, an error body) go to
``problems``. The report is printed as a summary on stderr and written as a sidecar
``<output>.report.json`` by the converters.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_EXAMPLES = 20
EXAMPLE_CHARS = 200


class Unsupported(Exception):
    """A fast-path parser refuses a block: the general (Python) parser must read it."""


@dataclass
class ConversionReport:
    source: str = ""
    signal: str = ""
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)  # [{"line", "reason", "text"}]
    problems: list = field(default_factory=list)  # file-level findings, human readable
    notes: Counter = field(default_factory=Counter)  # non-loss facts (e.g. time_inferred)
    max_examples: int = MAX_EXAMPLES

    def reject(self, reason: str, line: int | None = None, text=None, count: int = 1) -> None:
        """Count ``count`` rejected records for ``reason`` (they were already counted in)."""
        self.rejected += count
        self.reasons[reason] += count
        if len(self.examples) < self.max_examples:
            if isinstance(text, (bytes, bytearray)):
                text = bytes(text[:EXAMPLE_CHARS]).decode("utf-8", "replace")
            elif text is not None:
                text = str(text)[:EXAMPLE_CHARS]
            self.examples.append({"line": line, "reason": reason, "text": text, "count": count})

    def fast_block(self, parse, *args):
        """Run a fast-path block parser: its batch, counted in and out, or None (noted) when
        it refuses the block and the general parser must read it."""
        try:
            batch = parse(*args)
        except Unsupported as exc:
            self.notes["blocks_slow_path"] += 1
            self.notes.setdefault("slow_path_reason", str(exc))
            return None
        self.notes["blocks_fast_path"] += 1
        self.records_in += batch.num_rows
        self.records_out += batch.num_rows
        return batch

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    @property
    def balanced(self) -> bool:
        return self.records_in == self.records_out + self.rejected

    def check(self) -> None:
        """Raise if records were lost or invented (a bug, never a data problem)."""
        if not self.balanced:
            raise AssertionError(
                f"{self.source}: records_in {self.records_in} != out {self.records_out}"
                f" + rejected {self.rejected}"
            )

    @property
    def ok(self) -> bool:
        """False when the input yielded nothing usable although it was not empty."""
        return not (self.records_out == 0 and (self.rejected or self.problems))

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "signal": self.signal,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": self.rejected,
            "balanced": self.balanced,
            "reasons": dict(self.reasons),
            "examples": self.examples,
            "problems": self.problems,
            "notes": dict(self.notes),
        }

    def summary(self) -> str:
        head = (
            f"{self.signal or 'input'} {self.source}: in={self.records_in} out={self.records_out}"
            f" rejected={self.rejected}"
        )
        parts = [head]
        parts += [f"  rejected {n} x {r}" for r, n in self.reasons.most_common()]
        parts += [f"  problem: {p}" for p in self.problems]
        parts += [f"  note: {k}={v}" for k, v in self.notes.items()]
        for ex in self.examples[:5]:
            parts.append(f"  e.g. line {ex['line']}: {ex['reason']}: {ex['text']!r}")
        return "\n".join(parts)

    def print_summary(self, stream=None) -> None:
        print(self.summary(), file=stream or sys.stderr)

    def write_sidecar(self, output: str | os.PathLike) -> Path:
        path = Path(f"{os.fspath(output)}.report.json")
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path
