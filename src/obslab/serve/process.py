"""Run ``obslab serve`` as a real subprocess on a free loopback port (tests, bench, docs).

    with DaemonProcess(model_dir, state_path, api_key="...", warmup=20) as d:
        httpx.get(d.url + "/health")

Stopping sends SIGTERM (uvicorn shuts down gracefully) and waits; only this process is killed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["free_port", "DaemonProcess"]


def free_port() -> int:
    """A loopback TCP port nothing listens on now (the daemon needs nothing else of the lab)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    def __init__(self, model_dir: str | Path, state_path: str | Path, api_key: str, *, window: int = 2880,
                 warmup: int = 100, rate_limit: int = 60, max_body_bytes: int | None = None,
                 port: int | None = None, log_path: str | Path | None = None, startup_timeout: float = 180):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.args = [sys.executable, "-m", "obslab.cli", "serve", "--model", str(model_dir), "--state", str(state_path),
                     "--port", str(self.port), "--window", str(window), "--warmup", str(warmup),
                     "--rate-limit", str(rate_limit), "--log-level", "warning"]
        if max_body_bytes is not None:
            self.args += ["--max-body-bytes", str(max_body_bytes)]
        self.log_path = Path(log_path) if log_path else Path(state_path).with_suffix(".log")
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> "DaemonProcess":
        env = {**os.environ, "OBSLAB_API_KEYS": self.api_key}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"obslab serve exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"obslab serve did not answer on {self.url} within {self.startup_timeout} s")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code, self.proc = self.proc.returncode, None
        return code

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=30, **kwargs)

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
