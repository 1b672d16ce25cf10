"""The lab appendix page shows every file a reader needs, included from appendix-code/ so it
cannot drift, plus the architecture diagram.

The files checked are those the appendix zip ships (scripts/build_appendix_zip.py decides), less
the prose (README/TELEMETRY, shown as documents elsewhere), the npm lock file and .dockerignore.
Each must be literalincluded whole (no :pyobject:, :lines: or similar) at least once.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "book" / "appendix" / "lab.md"
APPENDIX = REPO / "appendix-code"
# files a reader reads as documents or never needs to read
NOT_SHOWN_SUFFIXES = {".md"}
NOT_SHOWN_NAMES = {"package-lock.json", ".dockerignore"}
# options that include only part of a file
PARTIAL_OPTIONS = ("pyobject", "lines", "start-after", "end-before", "start-at", "end-at", "diff")

DIRECTIVE = re.compile(r"^```\{(?P<name>[a-z-]+)\}[ \t]*(?P<arg>.*)\n(?P<body>(?:(?!```).*\n)*?)```", re.M)


def _zip_builder():
    spec = importlib.util.spec_from_file_location("build_appendix_zip", REPO / "scripts" / "build_appendix_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lab_files() -> set[Path]:
    """The appendix files the page must show: what the zip ships, less prose and lock files."""
    return {p.resolve() for p in _zip_builder().iter_files(APPENDIX)
            if p.suffix not in NOT_SHOWN_SUFFIXES and p.name not in NOT_SHOWN_NAMES}


def directives(text: str, name: str) -> list[tuple[str, str]]:
    return [(m["arg"].strip(), m["body"]) for m in DIRECTIVE.finditer(text) if m["name"] == name]


def whole_includes(text: str, base: Path) -> set[Path]:
    """Files a page literalincludes in full."""
    out = set()
    for arg, body in directives(text, "literalinclude"):
        options = re.findall(r"^:([a-z-]+):", body, re.M)
        if not any(o in PARTIAL_OPTIONS for o in options):
            out.add((base / arg).resolve())
    return out


def test_the_directive_parser_sees_whole_and_partial_includes(tmp_path):
    text = ("```{literalinclude} a.py\n:language: python\n```\n\n"
            "```{literalinclude} b.py\n:pyobject: f\n```\n")
    assert whole_includes(text, tmp_path) == {(tmp_path / "a.py").resolve()}


def test_every_lab_file_is_shown_whole():
    wanted = lab_files()
    # the walk found the lab (a wrong root would make the check vacuous)
    names = {p.relative_to(APPENDIX.resolve()).as_posix() for p in wanted}
    assert {"docker-compose.yml", "config/prometheus.yml", "config/otel-collector-config.yml",
            "scripts/convert_to_ocsf.py", "scripts/label_subset_for_evaluation.py",
            "services/auth-service/server.js", "services/web-api/Dockerfile"} <= names, sorted(names)
    shown = whole_includes(PAGE.read_text(), PAGE.parent)
    missing = sorted(p.relative_to(APPENDIX.resolve()).as_posix() for p in wanted - shown)
    assert not missing, f"not literalincluded by {PAGE.relative_to(REPO)}: {missing}"


def test_every_include_points_at_an_existing_file():
    text = PAGE.read_text()
    targets = [arg for arg, _ in directives(text, "literalinclude") + directives(text, "include")]
    assert targets
    absent = [t for t in targets if not (PAGE.parent / t).is_file()]
    assert not absent, absent


def test_the_compose_quick_start_is_included_from_the_archive_readme():
    (arg, body), = directives(PAGE.read_text(), "include")
    readme = (PAGE.parent / arg).resolve()
    assert readme == (APPENDIX / "README.md").resolve()
    markers = dict(re.findall(r'^:(start-after|end-before): "(.*)"$', body, re.M))
    text = readme.read_text()
    start, end = (text.index(markers["start-after"]), text.index(markers["end-before"]))
    section = text[start:end]
    assert start < end and "docker compose up" in section and "label_subset_for_evaluation.py" in section


def test_architecture_diagram_names_services_stack_load_and_conversion():
    diagrams = directives(PAGE.read_text(), "mermaid")
    assert len(diagrams) == 1
    diagram = diagrams[0][1].lower()
    compose = yaml.safe_load((APPENDIX / "docker-compose.yml").read_text())
    built = [name for name, svc in compose["services"].items()
             if str((svc.get("build") or {}).get("context", "")).startswith("./services")]
    assert {"web-api", "auth-service", "payment-worker", "load-generator"} <= set(built), built
    expected = [*built, "postgres", "redis", "prometheus", "collector", "scenario",
                "convert_to_ocsf.py", "convert_traces_to_ocsf.py", "export_prometheus_metrics.py",
                "label_subset_for_evaluation.py"]
    absent = [name for name in expected if name not in diagram]
    assert not absent, absent


def test_book_config_loads_mermaid():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert "sphinxcontrib.mermaid" in config["sphinx"].get("extra_extensions", [])
    assert importlib.util.find_spec("sphinxcontrib.mermaid") is not None
    pins = (REPO / "requirements.txt").read_text()
    assert re.search(r"^sphinxcontrib-mermaid==\S+", pins, re.M)
