"""Accepted records: an append-only SQLite log on disk and the rolling window in memory.

Every accepted batch is one SQLite transaction (WAL, synchronous=NORMAL: a committed batch
survives a crash of the daemon). On start the window is rebuilt from the newest rows, so a
restart resumes exactly where it stopped. Rows older than the newest ``keep`` (the window plus a
retention) are deleted as new ones arrive, so the file stops growing. A state file that is not a
readable SQLite database stops the start with a message naming it; ``reset=True`` moves it
aside (never deletes it) and starts empty.

A *tick* is one new newest timestamp: a batch that backfills a day at 5-minute steps advances
the tick by 288 and is still one request for the rate limiter.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obslab.serve.schemas import METRICS

__all__ = ["Row", "RecordStore", "RollingWindow", "StateFileError"]


class StateFileError(RuntimeError):
    """The state file cannot be used; the message says which file and what to do."""


@dataclass(slots=True)
class Row:
    seq: int
    ts_ms: int
    server: str
    status: str | None
    values: tuple  # len(METRICS) floats, METRICS order


_COLS = ", ".join(f'"{m}" REAL NOT NULL' for m in METRICS)
_NAMES = ", ".join(f'"{m}"' for m in METRICS)


class RecordStore:
    def __init__(self, path: str | Path, keep: int | None = None, reset: bool = False):
        self.path = Path(path)
        self.keep = None if keep is None else int(keep)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if not reset:
                raise StateFileError(
                    f"state file {self.path} is not a readable SQLite database ({exc}); move it aside "
                    f"(mv {self.path} {self.path}.bad) or start with --reset-state, which renames it and "
                    "starts with an empty window") from None
            self.moved_aside = self._move_aside()
            self._open()

    def _move_aside(self) -> Path:
        target = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.rename(str(target) + suffix)
        return target

    def _open(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check}")
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, "
                f"server TEXT NOT NULL, status TEXT, {_COLS})"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            state = dict(self.db.execute("SELECT key, value FROM state").fetchall())
            self.tick = int(state.get("tick", 0))
            self.newest_ts = state.get("newest_ts")
            self.next_seq = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]) + 1
            # records ever accepted (pruning deletes rows, not the count); older files: count the rows
            self.total = int(state["total"]) if "total" in state else \
                int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        except sqlite3.DatabaseError:
            self.db.close()
            raise

    def append(self, rows: list[tuple]) -> list[Row]:
        """Store (ts_ms, server, status, *values) tuples in one transaction; returns them as Rows."""
        out, tick, newest = [], self.tick, self.newest_ts
        for i, r in enumerate(rows):
            out.append(Row(self.next_seq + i, r[0], r[1], r[2], r[3:]))
        for ts in sorted({r[0] for r in rows}):
            if newest is None or ts > newest:
                tick, newest = tick + 1, ts
        params = [(row.seq, row.ts_ms, row.server, row.status, *row.values) for row in out]
        marks = ", ".join("?" * (4 + len(METRICS)))
        with self.db:  # one transaction: all rows and the tick, or nothing
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT INTO records (seq, ts_ms, server, status, {_NAMES}) VALUES ({marks})", params)
            self.db.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [("tick", tick), ("newest_ts", newest), ("total", self.total + len(out))],
            )
            if self.keep is not None:  # by primary key: a range delete, no scan
                self.db.execute("DELETE FROM records WHERE seq < ?", (self.next_seq + len(out) - self.keep,))
        self.next_seq += len(out)
        self.total += len(out)
        self.tick, self.newest_ts = tick, newest
        return out

    def stored(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def newest(self, n: int) -> list[Row]:
        cur = self.db.execute(f"SELECT seq, ts_ms, server, status, {_NAMES} FROM records ORDER BY seq DESC LIMIT ?", (n,))
        return [Row(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in reversed(cur.fetchall())]

    def close(self) -> None:
        self.db.close()


class RollingWindow:
    """The newest ``capacity`` records (in arrival order) and each tracked server's latest one.

    Per server, a deque of its rows in the window (arrival order) and a sliding-window maximum
    of (timestamp, seq): rows leave in arrival order, so eviction and "which row is now this
    server's latest" are O(1) amortised, whatever the window size."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.rows: deque[Row] = deque()
        self.latest: dict[str, Row] = {}
        self.by_server: dict[str, deque[Row]] = {}
        self._max: dict[str, deque[Row]] = {}  # candidates for latest, (ts, seq) decreasing
        self.version = 0  # bumped on every change; predictions are cached per version

    def __len__(self) -> int:
        return len(self.rows)

    def extend(self, rows: list[Row]) -> None:
        for row in rows:
            self.rows.append(row)
            self.by_server.setdefault(row.server, deque()).append(row)
            cand = self._max.setdefault(row.server, deque())
            # a backfilled older record does not replace a newer one as "current"
            while cand and (cand[-1].ts_ms, cand[-1].seq) <= (row.ts_ms, row.seq):
                cand.pop()
            cand.append(row)
            self.latest[row.server] = cand[0]
        while len(self.rows) > self.capacity:
            self._evict(self.rows.popleft())
        self.version += 1

    def _evict(self, old: Row) -> None:
        mine = self.by_server[old.server]
        mine.popleft()  # the server's oldest row in the window: arrival order is shared
        cand = self._max[old.server]
        if cand and cand[0] is old:
            cand.popleft()
        if mine:
            self.latest[old.server] = cand[0]
        else:
            del self.by_server[old.server], self._max[old.server], self.latest[old.server]

    def history(self, server: str) -> list[Row]:
        """The server's rows in the window, oldest timestamp first."""
        return sorted(self.by_server.get(server, ()), key=lambda r: (r.ts_ms, r.seq))

    def current(self) -> list[Row]:
        return sorted(self.latest.values(), key=lambda r: r.server)

    @staticmethod
    def arrays(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([r.values for r in rows], dtype=np.float64).reshape(len(rows), len(METRICS)),
                np.array([r.ts_ms for r in rows], dtype=np.int64))
