"""Static checks of the lab's images, beside the Compose run: hadolint on every Dockerfile,
every COPY source present in its build context, and every service pin equal to the
repository's requirements.txt (one version of each package, in the lab and in the book)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
APPENDIX = REPO / "appendix-code"
HADOLINT = Path(sys.executable).parent / "hadolint"


def builds() -> dict[str, tuple[Path, Path]]:
    """service -> (build context, Dockerfile) from docker-compose.yml."""
    doc = yaml.safe_load((APPENDIX / "docker-compose.yml").read_text())
    out = {}
    for name, svc in doc["services"].items():
        b = svc.get("build")
        if b:
            b = {"context": b} if isinstance(b, str) else b
            context = (APPENDIX / b["context"]).resolve()
            out[name] = (context, context / b.get("dockerfile", "Dockerfile"))
    return out


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==(\S+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[3]
    return out


def test_every_built_service_has_a_dockerfile():
    found = builds()
    assert set(found) == {"web-api", "auth-service", "payment-worker", "load-generator", "otel-collector"}
    assert all(dockerfile.exists() for _, dockerfile in found.values())


@pytest.mark.parametrize("service", sorted(builds()))
def test_hadolint_passes(service):
    _, dockerfile = builds()[service]
    r = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_really_refuses(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    r = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "DL3007" in r.stdout  # :latest


@pytest.mark.parametrize("service", sorted(builds()))
def test_every_copy_source_is_in_the_build_context(service):
    context, dockerfile = builds()[service]
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].upper() not in ("COPY", "ADD") or any(p.startswith("--from") for p in parts):
            continue
        sources = [p for p in parts[1:-1] if not p.startswith("--")]
        for src in sources:
            matches = list(context.glob(src)) if any(c in src for c in "*?[") else [context / src]
            assert matches and all(m.exists() for m in matches), f"{dockerfile}: {line!r}: {src} not in {context}"


def test_service_pins_equal_the_repository_pins():
    top = pins(REPO / "requirements.txt")
    files = sorted(APPENDIX.glob("services/*/requirements.txt")) + [APPENDIX / "scripts" / "requirements.txt"]
    assert len(files) >= 4
    for f in files:
        for name, version in pins(f).items():
            assert name in top, f"{f.relative_to(REPO)}: {name} is not pinned in requirements.txt"
            assert top[name] == version, f"{f.relative_to(REPO)}: {name}=={version}, requirements.txt has {top[name]}"
