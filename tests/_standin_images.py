"""Stand-in base images for the Compose test, built locally from Debian packages.

No image registry is reachable from these machines, so every image the appendix names
(.env and the Dockerfiles' FROM lines) is built here under exactly that name: a debootstrap
root file system imported once, then one small Dockerfile per image that installs the Debian
package and reproduces the entrypoint behaviour the stack relies on (Postgres creating its
user and database from POSTGRES_*, Redis accepting connections from the other containers...).

Each image carries the hash of its recipe as a label; a build is skipped when an image with
that name and label exists, so a rerun costs seconds. The machine's CA bundle (the file PIP_CERT
names) goes into the Python and Node stand-ins only, never into the appendix's files.

The Collector has no Debian package: `obslab-test/otlp-receiver` (tests/compose_standins/)
stands in for it in the test's Compose override.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

__all__ = ["STANDINS", "RECEIVER_IMAGE", "ensure_all", "ensure_image", "docker_ready"]

LABEL = "org.obslab.standin.recipe"
SUITE = "bookworm"
BASE = "obslab-standin/debian-minbase:" + SUITE
RECEIVER_IMAGE = "obslab-test/otlp-receiver:1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Debian images ship this: package scripts must not try to start services during a build
_PREAMBLE = """\
FROM {base}
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
"""

_APT = ("RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends {pkgs} >/dev/null "
        "&& rm -rf /var/lib/apt/lists/*\n")

_CA = """\
COPY host-ca.crt /usr/local/share/obslab-standin/host-ca.crt
ENV PIP_CERT=/usr/local/share/obslab-standin/host-ca.crt \\
    NODE_EXTRA_CA_CERTS=/usr/local/share/obslab-standin/host-ca.crt
"""

_PG_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the official image's entrypoint: first start creates the superuser
# POSTGRES_USER with POSTGRES_PASSWORD and the database POSTGRES_DB, then runs the command.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pw="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "stand-in entrypoint: created user $user and database $db"
fi
exec "$@"
"""

_REDIS_ENTRYPOINT = r"""#!/bin/sh
# Stand-in for the official image's entrypoint: without a config file Redis 7 is in protected
# mode and refuses the other containers; the official image turns that off the same way.
set -eu
if [ "${1:-}" = redis-server ]; then
  case "${2:-}" in
    *.conf) ;;
    *) shift; set -- redis-server --protected-mode no "$@" ;;
  esac
fi
exec "$@"
"""


def _node_version() -> str:
    """The machine's Node 20 and npm go into the Node stand-in (Debian bookworm only has Node 18)."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    npm = subprocess.run(["npm", "--version"], capture_output=True, text=True).stdout.strip()
    if not node.startswith("v20."):
        raise RuntimeError(f"the Node stand-in needs the machine's Node 20.x; found {node!r}")
    return f"node {node} npm {npm}"


def _node_tar() -> bytes:
    """node, and the npm installed beside it (the whole folder: it may be newer than the package)."""
    node = Path(shutil.which("node")).resolve()
    modules = Path("/usr/lib/node_modules")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(node, arcname="usr/bin/node")
        for pkg in ("npm", "corepack"):
            if (modules / pkg).is_dir():
                tar.add(modules / pkg, arcname=f"usr/lib/node_modules/{pkg}")
        for link, target in (("npm", "npm/bin/npm-cli.js"), ("npx", "npm/bin/npx-cli.js")):
            info = tarfile.TarInfo(f"usr/bin/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, f"../lib/node_modules/{target}"
            tar.addfile(info)
    return buf.getvalue()


def _ca_bundle() -> bytes:
    path = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    return Path(path).read_bytes()


def _recipes() -> dict[str, dict]:
    """image name -> {"dockerfile": text, "files": {name: bytes}, "key": extra hash input}."""
    pre = _PREAMBLE.format(base=BASE)
    ca = _ca_bundle()
    node_version = _node_version()
    python = (pre + _APT.format(pkgs="python3.11 python3.11-venv ca-certificates") + _CA
              # a venv in /usr/local plays the official image's /usr/local Python: pip installs there
              + "RUN python3.11 -m venv /usr/local/python\n"
              + "ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
              + 'CMD ["python3"]\n')
    node = (pre + _APT.format(pkgs="ca-certificates libstdc++6") + _CA
            + "ADD node.tar /\n"
            + 'CMD ["node"]\n')
    postgres = (pre
                + "RUN groupadd -r -g 999 postgres && useradd -r -u 999 -g postgres -d /var/lib/postgresql "
                  "-s /bin/sh postgres && mkdir -p /etc/postgresql-common "
                  "&& echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf\n"
                + _APT.format(pkgs="postgresql-15")
                + "RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql "
                  "&& chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql "
                  "&& chmod 700 /var/lib/postgresql/data\n"
                + "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
                  "PGDATA=/var/lib/postgresql/data\n"
                + "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
                + "RUN chmod 755 /usr/local/bin/docker-entrypoint.sh\n"
                + 'USER postgres\nSTOPSIGNAL SIGINT\nEXPOSE 5432\n'
                + 'ENTRYPOINT ["docker-entrypoint.sh"]\nCMD ["postgres"]\n')
    redis = (pre
             + "RUN groupadd -r -g 999 redis && useradd -r -u 999 -g redis -d /data -s /bin/sh redis\n"
             + _APT.format(pkgs="redis-server redis-tools")
             + "RUN mkdir -p /data && chown redis:redis /data\nWORKDIR /data\n"
             + "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
             + "RUN chmod 755 /usr/local/bin/docker-entrypoint.sh\n"
             + 'USER redis\nEXPOSE 6379\nENTRYPOINT ["docker-entrypoint.sh"]\nCMD ["redis-server"]\n')
    prometheus = (pre + _APT.format(pkgs="prometheus wget ca-certificates")
                  + "RUN mkdir -p /prometheus && chown 65534:65534 /prometheus\nWORKDIR /prometheus\n"
                  + 'USER 65534:65534\nEXPOSE 9090\nENTRYPOINT ["/usr/bin/prometheus"]\n'
                  + 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]\n')
    redis_exp = (pre + _APT.format(pkgs="prometheus-redis-exporter wget")
                 + 'USER 65534:65534\nEXPOSE 9121\nENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]\n')
    pg_exp = (pre + _APT.format(pkgs="prometheus-postgres-exporter wget")
              + 'USER 65534:65534\nEXPOSE 9187\nENTRYPOINT ["/usr/bin/prometheus-postgres-exporter"]\n')
    env = _dotenv(REPO / "appendix-code" / ".env")
    froms = _dockerfile_froms()
    ca_files = {"host-ca.crt": ca}
    recipes = {
        froms["python"]: {"dockerfile": python, "files": ca_files},
        froms["node"]: {"dockerfile": node, "files": {**ca_files, "node.tar": b""}, "key": node_version,
                        "lazy": {"node.tar": _node_tar}},
        env["POSTGRES_IMAGE"]: {"dockerfile": postgres, "files": {"docker-entrypoint.sh": _PG_ENTRYPOINT.encode()}},
        env["REDIS_IMAGE"]: {"dockerfile": redis, "files": {"docker-entrypoint.sh": _REDIS_ENTRYPOINT.encode()}},
        env["PROMETHEUS_IMAGE"]: {"dockerfile": prometheus, "files": {}},
        env["REDIS_EXPORTER_IMAGE"]: {"dockerfile": redis_exp, "files": {}},
        env["POSTGRES_EXPORTER_IMAGE"]: {"dockerfile": pg_exp, "files": {}},
    }
    receiver = (HERE / "compose_standins" / "otlp_receiver.py").read_bytes()
    pins = _pins(("opentelemetry-proto", "protobuf"))
    recipes[RECEIVER_IMAGE] = {
        "dockerfile": (f"FROM {froms['python']}\n"
                       f"RUN pip install --no-cache-dir -q {' '.join(pins)}\n"
                       "COPY otlp_receiver.py /srv/otlp_receiver.py\n"
                       'USER 10001:10001\nEXPOSE 4318 13133\nCMD ["python", "/srv/otlp_receiver.py"]\n'),
        "files": {"otlp_receiver.py": receiver},
        "after": froms["python"],
    }
    return recipes


def _dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _dockerfile_froms() -> dict[str, str]:
    """The base images the app Dockerfiles start FROM, by kind (python/node)."""
    out = {}
    for df in sorted((REPO / "appendix-code" / "services").glob("*/Dockerfile")):
        for line in df.read_text().splitlines():
            if line.upper().startswith("FROM "):
                image = line.split()[1]
                out["node" if image.startswith("node:") else "python"] = image
    return out


def _pins(names) -> list[str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line:
            k, v = line.split("#")[0].strip().split("==")
            pins[k.lower()] = v
    installed = _installed_versions(names)
    return [f"{n}=={pins.get(n) or installed[n]}" for n in names]


def _installed_versions(names) -> dict[str, str]:
    from importlib.metadata import version

    return {n: version(n) for n in names}


def _hash(recipe: dict, base_id: str) -> str:
    h = hashlib.sha256(base_id.encode())
    h.update(recipe["dockerfile"].encode())
    h.update(str(recipe.get("key", "")).encode())
    for name, data in sorted(recipe["files"].items()):
        h.update(name.encode() + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _docker(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, **kw)


def docker_ready() -> str | None:
    """None when the docker CLI reaches an engine, else the reason why not."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    r = _docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if r.returncode != 0:
        return f"docker engine not reachable: {r.stderr.strip()[:200]}"
    return None


def _label(image: str) -> str | None:
    r = _docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False)
    if r.returncode != 0:
        return None
    return (json.loads(r.stdout) or {}).get(LABEL)


def _base_recipe() -> str:
    return f"debootstrap --variant=minbase {SUITE}"


def ensure_base(log=print) -> str:
    """Import the debootstrap root file system once; returns its recipe hash."""
    key = hashlib.sha256(_base_recipe().encode()).hexdigest()[:16]
    if _label(BASE) == key:
        return key
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="obslab-rootfs-") as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root)], check=True,
                       capture_output=True, text=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "--change", f"LABEL {LABEL}={key}",
                        "--change", 'CMD ["/bin/bash"]', "-", BASE],
                       stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    log(f"stand-in {BASE}: debootstrap + import in {time.monotonic() - t0:.0f} s")
    return key


def ensure_image(name: str, recipe: dict, base_key: str, log=print) -> bool:
    """Build `name` unless an image with this recipe's hash exists; returns whether it built."""
    key = _hash(recipe, base_key)
    if _label(name) == key:
        return False
    # lazy files (the 190 MB Node tar) are made only when a build is needed; the key stands for them
    files = {**recipe["files"], **{n: make() for n, make in recipe.get("lazy", {}).items()}}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="obslab-standin-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(recipe["dockerfile"])
        for fname, data in files.items():
            (Path(ctx) / fname).write_bytes(data)
        r = subprocess.run(["docker", "build", "-q", "--label", f"{LABEL}={key}", "-t", name, ctx],
                           capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if r.returncode != 0:
        raise RuntimeError(f"building stand-in {name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    log(f"stand-in {name}: built in {time.monotonic() - t0:.0f} s")
    return True


def ensure_all(log=print, workers: int = 3) -> dict[str, bool]:
    """Every stand-in image present and current; returns {image: rebuilt}.

    The independent images build side by side (their time is mostly apt downloads); the
    receiver builds FROM the Python stand-in, so it comes after, and its hash follows that image.
    """
    from concurrent.futures import ThreadPoolExecutor

    base_key = ensure_base(log)
    recipes = _recipes()
    first = [n for n in recipes if not recipes[n].get("after")]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        built = dict(zip(first, pool.map(lambda n: ensure_image(n, recipes[n], base_key, log), first)))
    for name in recipes:
        if name not in built:
            after = recipes[name]["after"]
            built[name] = ensure_image(name, recipes[name], base_key + (_label(after) or ""), log)
    return built


if __name__ == "__main__":
    t = time.monotonic()
    print(ensure_all())
    print(f"stand-in images ready in {time.monotonic() - t:.0f} s")
