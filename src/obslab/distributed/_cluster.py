"""A local Ray cluster of 1-CPU nodes in this process's session, for tests, the bench and the book.

Each node is a raylet with its own worker processes, so ``nodes=2`` gives two worker
processes on one machine, the smallest real cluster. Usage stats and token auth are off, the
session lives in its own temp folder (a stale address file or token of an earlier session
would break the start), and the driver is quiet: Ray's and Ray Data's progress and info logs
go to the session's log files, not to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import warnings


def ray_available() -> bool:
    """Whether Ray is installed (it is optional: the book and the local engine never need it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def quiet_ray() -> None:
    """Keep Ray's and Ray Data's progress bars, notices and info logs off the driver's stderr
    (a notebook cell that writes to stderr fails the book's build)."""
    # set before Ray's modules load: they log "Missing packages: ipywidgets" in a kernel
    logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # tqdm.auto, imported by Ray, warns in a kernel without ipywidgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        import ray.data

    logging.getLogger("ray").setLevel(logging.WARNING)  # e.g. "Missing packages: ipywidgets"
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # it warns that the bars are off
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\..*")


@contextlib.contextmanager
def local_cluster(nodes: int = 2, object_store_mb: int = 256):
    """Start ``nodes`` 1-CPU nodes, connect, yield a RayEngine; stop everything on exit.

    The engine's ``startup_s`` is the wall time from nothing to a connected driver."""
    quiet_ray()
    import ray
    from ray.cluster_utils import Cluster

    from obslab.distributed._engine import THREAD_ENV, RayEngine

    if ray.is_initialized():
        raise RuntimeError("a Ray session is already connected in this process")
    tmp = tempfile.mkdtemp(prefix="obslab-ray-")
    os.makedirs(os.path.join(tmp, "ray"))
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": tmp}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": object_store_mb << 20})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1, object_store_memory=object_store_mb << 20)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": THREAD_ENV})
        quiet_ray()  # ray.init reset the loggers' levels
        engine = RayEngine()
        engine.startup_s = time.perf_counter() - t0
        yield engine
    finally:
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
