"""Start and stop the lab's processes natively: free ports, health waits, output capture.

Everything here is usable on its own (tests start a Redis or a Postgres with it). Each process
runs in its own session (process group) so that stopping it also stops its children (gunicorn
and Celery workers); stop() sends the process's stop signal, waits, then SIGKILLs the group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PG_BIN = Path("/usr/lib/postgresql/15/bin")

# binary -> Debian package that provides it (for the one-line error when it is missing)
APT_PACKAGE = {
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "initdb": "postgresql-15",
    "postgres": "postgresql-15",
    "pg_isready": "postgresql-15",
    "psql": "postgresql-15",
    "setpriv": "util-linux",
    "node": "nodejs",
    "npm": "npm",
}


class LabError(RuntimeError):
    """A problem the user can fix (missing binary, busy port, service not healthy): one line."""


def find_binary(name: str) -> str:
    """Absolute path of ``name`` (PATH, then the PostgreSQL bin folder) or a LabError."""
    found = shutil.which(name) or (str(PG_BIN / name) if (PG_BIN / name).exists() else None)
    if not found:
        pkg = APT_PACKAGE.get(name, name)
        raise LabError(f"required binary {name!r} not found: install it with `apt-get install {pkg}`")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LabError(f"cannot bind 127.0.0.1:{port}: {exc.strerror}") from None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LogSink:
    """Appends ``<service>-1  | <line>`` lines (the `docker compose logs --no-color` format)."""

    WIDTH = 20  # names are padded like Compose does, so columns line up

    def __init__(self, path: str | os.PathLike | None, on_line: Callable[[str, str], None] | None = None):
        self.path = Path(path) if path else None
        self.on_line = on_line  # called with (service, line) for every line, e.g. to follow progress
        self._lock = threading.Lock()
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8", buffering=1)
        self.counts: dict[str, int] = {}

    def write(self, service: str, line: str) -> None:
        prefix = f"{service}-1".ljust(self.WIDTH)
        with self._lock:
            self.counts[service] = self.counts.get(service, 0) + 1
            if self._fh:
                self._fh.write(f"{prefix}| {line}\n")
        if self.on_line is not None:
            self.on_line(service, line)

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None


@dataclass
class ManagedProcess:
    """One started process: its command, environment, and how to stop it."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    sink: LogSink | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0
    after_stop: Callable[[], None] | None = None  # e.g. delete a throwaway data folder
    proc: subprocess.Popen | None = None
    _pump: threading.Thread | None = None

    def start(self) -> "ManagedProcess":
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env} if self.env else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches the children
            )
        except FileNotFoundError:
            raise LabError(f"{self.name}: cannot run {self.argv[0]!r}: not found") from None
        self._pump = threading.Thread(target=self._pump_output, name=f"pump-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _pump_output(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if self.sink is not None:
                self.sink.write(self.name, line)
        self.proc.stdout.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self) -> int | None:
        """Stop signal to the group, wait, then SIGKILL the group. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the group (children that ignored the signal) is killed
        _signal_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._pump:
            self._pump.join(2)
        if self.after_stop is not None:
            self.after_stop()
            self.after_stop = None
        return self.proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(check: Callable[[], bool], timeout: float, what: str, proc: ManagedProcess | None = None,
               interval: float = 0.1) -> None:
    """Poll ``check`` until true; LabError after ``timeout`` or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise LabError(f"{what}: process exited with code {proc.returncode()} before it was ready")
        time.sleep(interval)
    raise LabError(f"{what}: not ready after {timeout:.0f} s")


# --- the infrastructure processes -------------------------------------------------------------

def _ready(p: ManagedProcess, check: Callable[[], bool], timeout: float) -> ManagedProcess:
    """Wait for ``check``; a process that never gets ready is stopped, not left behind."""
    try:
        wait_until(check, timeout, p.name, p)
    except BaseException:
        p.stop()
        raise
    return p


def start_redis(port: int, workdir: str | os.PathLike, sink: LogSink | None = None) -> ManagedProcess:
    check_port_free(port)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    p = ManagedProcess(
        "redis",
        [find_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        sink=sink,
    ).start()
    return _ready(p, lambda: port_open(port), 10)


def _as_postgres_user(argv: list[str]) -> list[str]:
    """initdb refuses root: run as the postgres user via setpriv (keeps the PID real)."""
    if os.geteuid() != 0:
        return argv
    return [find_binary("setpriv"), "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


def _postgres_can_use(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(_as_postgres_user(["test", "-w", str(path), "-a", "-x", str(path)]), check=False)
    return probe.returncode == 0


def postgres_datadir(parent: str | os.PathLike) -> Path:
    """A fresh folder for a throwaway cluster, owned by the postgres user when we are root.

    ``parent`` is used when the postgres user can reach it; otherwise (a 0700 temp folder) the
    cluster goes to a world-traversable folder under the system temp dir.
    """
    import pwd
    import tempfile

    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    base = parent if _postgres_can_use(parent) else Path(tempfile.mkdtemp(prefix="obslab-pg-"))
    if base != parent:
        os.chmod(base, 0o755)
    d = Path(tempfile.mkdtemp(prefix="pgdata-", dir=base))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
    os.chmod(d, 0o700)
    return d


def remove_datadir(datadir: str | os.PathLike) -> None:
    """Delete a stopped throwaway cluster (and its fallback temp parent, if it made one)."""
    d = Path(datadir)
    shutil.rmtree(d, ignore_errors=True)
    if d.parent.name.startswith("obslab-pg-"):
        shutil.rmtree(d.parent, ignore_errors=True)


def start_postgres(port: int, datadir: str | os.PathLike, sink: LogSink | None = None,
                   throwaway: bool = True) -> ManagedProcess:
    """initdb a cluster in ``datadir`` (trust auth, no fsync) and start it; a throwaway cluster's
    folder is deleted when the process is stopped."""
    check_port_free(port)
    datadir = str(datadir)
    init = subprocess.run(
        _as_postgres_user([find_binary("initdb"), "-D", datadir, "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8"]),
        capture_output=True, text=True, check=False,
    )
    if init.returncode != 0:
        raise LabError(f"postgres: initdb failed: {(init.stderr or init.stdout).strip().splitlines()[-1:]}")
    p = ManagedProcess(
        "postgres",
        _as_postgres_user([find_binary("postgres"), "-D", datadir, "-p", str(port), "-k", datadir,
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                           "-c", "max_connections=200"]),
        sink=sink,
        stop_signal=signal.SIGINT,  # fast shutdown
        after_stop=(lambda: remove_datadir(datadir)) if throwaway else None,
    ).start()
    isready = find_binary("pg_isready")
    return _ready(
        p, lambda: subprocess.run([isready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False).returncode == 0,
        30)


def psql(port: int, sql: str, db: str = "postgres") -> str:
    """Run SQL as the postgres superuser over TCP; returns stdout or raises LabError."""
    r = subprocess.run(
        [find_binary("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db,
         "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True, text=True, check=False,
    )
    if r.returncode != 0:
        raise LabError(f"postgres: {sql.split()[0]} failed: {r.stderr.strip()}")
    return r.stdout


def ensure_database(port: int, user: str, password: str, db: str) -> None:
    """The role and database a service's DATABASE_URL names (Compose's POSTGRES_* env does this)."""
    q = lambda s: s.replace("'", "''")  # noqa: E731
    if user != "postgres":
        exists = psql(port, f"SELECT 1 FROM pg_roles WHERE rolname = '{q(user)}'").strip()
        verb = "ALTER" if exists else "CREATE"
        psql(port, f"{verb} ROLE \"{user}\" WITH LOGIN SUPERUSER PASSWORD '{q(password)}'")
    if not psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{q(db)}'").strip():
        psql(port, f'CREATE DATABASE "{db}" OWNER "{user}"')


def start_prometheus(port: int, config_file: str | os.PathLike, datadir: str | os.PathLike,
                     sink: LogSink | None = None) -> ManagedProcess:
    check_port_free(port)
    check = subprocess.run([find_binary("promtool"), "check", "config", str(config_file)],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise LabError(f"prometheus: invalid config {config_file}: {check.stderr.strip() or check.stdout.strip()}")
    Path(datadir).mkdir(parents=True, exist_ok=True)
    p = ManagedProcess(
        "prometheus",
        [find_binary("prometheus"), f"--config.file={config_file}", f"--storage.tsdb.path={datadir}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d",
         "--log.format=json"],
        sink=sink,
    ).start()
    return _ready(p, lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), 30)


def start_redis_exporter(port: int, redis_port: int, sink: LogSink | None = None) -> ManagedProcess:
    check_port_free(port)
    p = ManagedProcess(
        "redis-exporter",
        [find_binary("prometheus-redis-exporter"), "-redis.addr", f"redis://127.0.0.1:{redis_port}",
         "-web.listen-address", f"127.0.0.1:{port}"],
        sink=sink,
    ).start()
    return _ready(p, lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), 15)


def start_postgres_exporter(port: int, pg_port: int, sink: LogSink | None = None) -> ManagedProcess:
    check_port_free(port)
    p = ManagedProcess(
        "postgres-exporter",
        [find_binary("prometheus-postgres-exporter"), f"--web.listen-address=127.0.0.1:{port}"],
        env={"DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg_port}/postgres?sslmode=disable"},
        sink=sink,
    ).start()
    return _ready(p, lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), 15)
