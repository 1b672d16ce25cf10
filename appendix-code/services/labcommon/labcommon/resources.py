"""Process-level fault mechanisms: memory leak, CPU saturation, disk fill.

Each runs in its own thread while its flag is active and releases what it took on stop:
the leaked buffers are dropped (large blocks go back to the OS), burner threads exit, the fill
file is deleted. ``ResourceFaults.apply(active)`` starts and stops them to match the flags.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time

__all__ = ["CpuBurner", "DiskFiller", "MemoryLeak", "ResourceFaults", "dir_bytes"]

log = logging.getLogger("faults")


class _Worker:
    def __init__(self):
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _spawn(self, target, n: int = 1) -> None:
        for i in range(n):
            t = threading.Thread(target=target, name=f"{type(self).__name__}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._release()

    def _release(self) -> None:
        pass


class MemoryLeak(_Worker):
    """Grow a list of 1 MiB blocks at mb_per_s up to max_mb."""

    def __init__(self, mb_per_s: float, max_mb: float):
        super().__init__()
        self.mb_per_s, self.max_mb = float(mb_per_s), float(max_mb)
        self.blocks: list[bytearray] = []
        self._spawn(self._run)

    def _run(self) -> None:
        period = 1.0 / max(self.mb_per_s, 0.01)
        while not self._stop.wait(period):
            if len(self.blocks) < self.max_mb:
                block = bytearray(1 << 20)
                block[::4096] = b"x" * len(block[::4096])  # touch every page so RSS grows
                self.blocks.append(block)

    def _release(self) -> None:
        self.blocks.clear()
        gc.collect()


class CpuBurner(_Worker):
    """Busy-loop threads that run `duty` of each 100 ms slice."""

    def __init__(self, threads: int, duty: float):
        super().__init__()
        self.duty = min(max(float(duty), 0.0), 1.0)
        self._spawn(self._run, max(int(threads), 1))

    def _run(self) -> None:
        x = 0
        while not self._stop.is_set():
            end = time.perf_counter() + 0.1 * self.duty
            while time.perf_counter() < end:
                x = (x * 31 + 7) % 1_000_003
            if self.duty < 1.0:
                time.sleep(0.1 * (1.0 - self.duty))


class DiskFiller(_Worker):
    """Append to a fill file in the service's data folder at mb_per_s up to max_mb."""

    def __init__(self, data_dir: str, mb_per_s: float, max_mb: float):
        super().__init__()
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, f"fault-disk-fill-{os.getpid()}.bin")
        self.mb_per_s, self.max_mb = float(mb_per_s), float(max_mb)
        self.written = 0
        self._spawn(self._run)

    def _run(self) -> None:
        chunk = os.urandom(1 << 20)
        with open(self.path, "wb") as f:
            while not self._stop.wait(1.0 / max(self.mb_per_s, 0.01)):
                if self.written < self.max_mb * (1 << 20):
                    f.write(chunk)
                    f.flush()
                    self.written += len(chunk)

    def _release(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        self.written = 0


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class ResourceFaults:
    """Start/stop the resource mechanisms whose flags target this service."""

    FAULTS = ("memory_leak", "cpu_saturation", "disk_fill")

    def __init__(self, service: str, data_dir: str):
        self.service = service
        self.data_dir = data_dir
        self.running: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    def _make(self, fault_id: str, p: dict) -> _Worker:
        if fault_id == "memory_leak":
            return MemoryLeak(p.get("mb_per_s", 5), p.get("max_mb", 200))
        if fault_id == "cpu_saturation":
            return CpuBurner(p.get("threads", 1), p.get("duty", 0.9))
        return DiskFiller(self.data_dir, p.get("mb_per_s", 5), p.get("max_mb", 100))

    def apply(self, active: dict[str, dict]) -> None:
        with self._lock:
            wanted = {f: active[f] for f in self.FAULTS
                      if f in active and active[f].get("target") in (None, "", self.service)}
            for fault_id in list(self.running):
                if fault_id not in wanted:
                    self.running.pop(fault_id).stop()
            for fault_id, flag in wanted.items():
                if fault_id not in self.running:
                    # no log line here: fault markers never enter the logs
                    self.running[fault_id] = self._make(fault_id, flag.get("params", {}))

    def fill_bytes(self) -> int:
        filler = self.running.get("disk_fill")
        return filler.written if isinstance(filler, DiskFiller) else 0
