"""The engine switch: the same function over a list of work items, in this process or as Ray
tasks. Jobs are written once against :class:`Engine`; only ``map`` differs.

Ray is imported only by :class:`RayEngine`, so obslab and the book never need it.
"""

from __future__ import annotations

import os
import resource
import time

# one thread per worker: torch and faiss otherwise take every core of the node, and two
# workers on two cores would fight for them instead of adding throughput
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def pin_threads() -> None:
    """Cap torch's and faiss's thread pools at one in this process (idempotent, cheap)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(1)


def _call(fn, shared, has_shared: bool, *args):
    pin_threads()
    cpu = time.process_time()
    out = fn(shared, *args) if has_shared else fn(*args)
    # ru_maxrss is KiB on Linux: the worker's peak resident memory so far
    return out, os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, time.process_time() - cpu


class Engine:
    name = "base"

    def __init__(self):
        self.peaks: dict[int, int] = {}  # worker pid -> peak RSS bytes seen in its tasks
        self.cpu_s = 0.0  # CPU seconds the tasks used (a shared machine's wall time varies)

    def map(self, fn, items, shared=None) -> list:
        """``[fn(*item) for item in items]`` (``fn(shared, *item)`` when ``shared`` is given),
        results in the order of ``items``. ``shared`` travels to each worker once."""
        results = []
        for out, pid, peak, cpu in self._run(fn, [tuple(i) for i in items], shared, shared is not None):
            self.peaks[pid] = max(self.peaks.get(pid, 0), peak)
            self.cpu_s += cpu
            results.append(out)
        return results

    def _run(self, fn, items, shared, has_shared):
        raise NotImplementedError

    @property
    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalEngine(Engine):
    name = "local"

    def _run(self, fn, items, shared, has_shared):
        return [_call(fn, shared, has_shared, *item) for item in items]


class RayEngine(Engine):
    """Ray tasks on a cluster: ``address`` of a running one ("auto", "ray://host:port", or
    host:port), or None to start a local one with ``num_cpus`` (stopped by :meth:`close`).
    A task whose worker dies is retried (``max_retries``); the jobs' writes are idempotent, so a
    retried task leaves the same output."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = 3):
        super().__init__()
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, runtime_env={"env_vars": THREAD_ENV})
        self.max_retries = max_retries

    @property
    def workers(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def _run(self, fn, items, shared, has_shared):
        ray = self._ray
        task = ray.remote(num_cpus=1, max_retries=self.max_retries)(_call)
        ref = ray.put(shared) if has_shared else None
        return ray.get([task.remote(fn, ref, has_shared, *item) for item in items])

    def put(self, value):
        return self._ray.put(value)

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def get_engine(engine: str | Engine = "local", address: str | None = None, num_cpus: int | None = None) -> Engine:
    """``"local"`` or ``"ray"`` (or an Engine, returned as is)."""
    if isinstance(engine, Engine):
        return engine
    if engine == "local":
        return LocalEngine()
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ModuleNotFoundError as exc:
            raise RuntimeError("--engine ray needs Ray: pip install 'ray[data]==2.60.0'") from exc
        return RayEngine(address=address, num_cpus=num_cpus)
    raise ValueError(f"engine must be 'local' or 'ray', not {engine!r}")
