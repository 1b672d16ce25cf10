"""Accepted records: an append-only SQLite log on disk and the rolling window in memory.

Every accepted batch is one SQLite transaction (WAL, synchronous=NORMAL: a committed batch
survives a crash of the daemon). On start the window is rebuilt from the newest rows, so a
restart resumes exactly where it stopped. Rows are never deleted: the log is the record of what
was fed.

A *tick* is one new newest timestamp: a batch that backfills a day at 5-minute steps advances
the tick by 288 and is still one request for the rate limiter.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obslab.serve.schemas import METRICS

__all__ = ["Row", "RecordStore", "RollingWindow"]


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
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            f"CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, "
            f"server TEXT NOT NULL, status TEXT, {_COLS})"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        state = dict(self.db.execute("SELECT key, value FROM state").fetchall())
        self.tick = int(state.get("tick", 0))
        self.newest_ts = state.get("newest_ts")
        self.total = int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        self.next_seq = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]) + 1

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
                [("tick", tick), ("newest_ts", newest)],
            )
        self.next_seq += len(out)
        self.total += len(out)
        self.tick, self.newest_ts = tick, newest
        return out

    def newest(self, n: int) -> list[Row]:
        cur = self.db.execute(f"SELECT seq, ts_ms, server, status, {_NAMES} FROM records ORDER BY seq DESC LIMIT ?", (n,))
        return [Row(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in reversed(cur.fetchall())]

    def close(self) -> None:
        self.db.close()


class RollingWindow:
    """The newest ``capacity`` records (in arrival order) and each tracked server's latest one."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.rows: deque[Row] = deque()
        self.latest: dict[str, Row] = {}
        self.version = 0  # bumped on every change; predictions are cached per version

    def __len__(self) -> int:
        return len(self.rows)

    def extend(self, rows: list[Row]) -> None:
        for row in rows:
            self.rows.append(row)
            current = self.latest.get(row.server)
            # a backfilled older record does not replace a newer one as "current"
            if current is None or row.ts_ms >= current.ts_ms:
                self.latest[row.server] = row
        while len(self.rows) > self.capacity:
            old = self.rows.popleft()
            if self.latest.get(old.server) is old:
                self._replace_latest(old.server)
        self.version += 1

    def _replace_latest(self, server: str) -> None:
        # the server's latest row left the window: its newest remaining row, if any, takes over
        rest = [r for r in self.rows if r.server == server]
        if rest:
            self.latest[server] = max(rest, key=lambda r: (r.ts_ms, r.seq))
        else:
            del self.latest[server]

    def current(self) -> list[Row]:
        return sorted(self.latest.values(), key=lambda r: r.server)

    @staticmethod
    def arrays(rows: list[Row]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([r.values for r in rows], dtype=np.float64).reshape(len(rows), len(METRICS)),
                np.array([r.ts_ms for r in rows], dtype=np.int64))
