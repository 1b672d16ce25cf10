"""Fault injection for the distributed jobs' tests and bench: kill the worker running a task."""

from __future__ import annotations

import os
import signal
from pathlib import Path


class KillOnce:
    """A task hook that SIGKILLs its own worker process the first time it runs (any task, or the
    task for ``source``), after the task did its work and before it wrote its output. The marker
    file makes "first" hold across processes: the retried task finds it and carries on. Only
    for engines whose tasks run in other processes (Ray): locally it would kill the caller."""

    def __init__(self, marker, source: str | None = None):
        self.marker, self.source = os.fspath(marker), source

    def __call__(self, source: str) -> None:
        if self.source is not None and source != self.source:
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()} {source}\n".encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    @property
    def fired(self) -> bool:
        return Path(self.marker).exists()
