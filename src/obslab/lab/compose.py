"""docker-compose.yml as the one source of truth for how a service runs natively.

Reads the Compose file and its ``.env``, interpolates ``${VAR:-default}`` like Compose does,
and gives each service's exec-form ``command`` and ``environment``. ``native_environment``
then rewrites ``<compose-host>:<port>`` in the values to ``127.0.0.1:<native port>``.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "ComposeError", "ServiceSpec", "load_compose", "parse_env_file", "interpolate", "rewrite_hosts",
]


class ComposeError(ValueError):
    pass


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}, ${NAME:+alt}, ${NAME+alt}, $NAME
_VAR = re.compile(r"\$(?:(\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def parse_env_file(path: str | os.PathLike) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, blank lines, optional 'export ', single/double quotes."""
    env: dict[str, str] = {}
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise ComposeError(f"{path}:{n}: not a KEY=VALUE line: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip()[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:  # inline comment on an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        env[key] = value
    return env


def _braced_end(text: str, start: int) -> int:
    """Index of the '}' closing a ${...} whose body starts at ``start`` (nesting allowed)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ComposeError(f"unterminated ${{...}} in {text!r}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose variable interpolation of one string."""
    out: list[str] = []
    pos = 0
    while True:
        m = _VAR.search(text, pos)
        if not m:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:m.start()])
        if m.group(1):  # "$$" is a literal "$"
            out.append("$")
            pos = m.end()
        elif m.group("plain"):
            out.append(env.get(m.group("plain"), ""))
            pos = m.end()
        else:
            name, op = m.group("braced"), m.group("op")
            end = _braced_end(text, m.end())
            arg = text[m.end():end]
            if op is None and arg:
                raise ComposeError(f"bad substitution ${{{name}{arg}}} in {text!r}")
            value = env.get(name)
            unset_or_empty = value is None or (op or "").startswith(":") and value == ""
            kind = (op or "")[-1:]
            if kind == "-":
                out.append(interpolate(arg, env) if unset_or_empty else value)
            elif kind == "?":
                if unset_or_empty:
                    raise ComposeError(f"required variable {name} is missing a value: {interpolate(arg, env)}")
                out.append(value)
            elif kind == "+":
                out.append("" if unset_or_empty else interpolate(arg, env))
            else:
                out.append(value or "")
            pos = end + 1


def _interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(x, env) for x in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def rewrite_hosts(value: str, ports: dict[str, int]) -> str:
    """``host:port`` for a host in ``ports`` -> ``127.0.0.1:<ports[host]>`` (word-bounded)."""
    if not ports:
        return value
    names = "|".join(re.escape(h) for h in sorted(ports, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.-])({names}):(\d+)(?![\w.-])")
    return pattern.sub(lambda m: f"127.0.0.1:{ports[m.group(1)]}", value)


@dataclass
class ServiceSpec:
    name: str
    command: list[str] | None
    environment: dict[str, str]
    ports: list[str] = field(default_factory=list)
    image: str | None = None
    build: str | None = None
    raw: dict = field(default_factory=dict)

    def native_environment(self, host_ports: dict[str, int], overrides: dict[str, str] | None = None) -> dict[str, str]:
        """The environment with Compose hosts rewritten to loopback ports, then ``overrides``."""
        env = {k: rewrite_hosts(v, host_ports) for k, v in self.environment.items()}
        env.update(overrides or {})
        return env


def _environment(block) -> dict[str, str]:
    if block is None:
        return {}
    if isinstance(block, dict):
        return {str(k): "" if v is None else str(v) for k, v in block.items()}
    env = {}
    for item in block:
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    return env


def _command(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(x) for x in value]


def load_compose(path: str | os.PathLike, env_file: str | os.PathLike | None = None,
                 environ: dict[str, str] | None = None) -> dict[str, ServiceSpec]:
    """Services of a Compose file, interpolated with ``.env`` (next to it by default).

    Like Compose, variables from ``environ`` (default: none, so runs are reproducible) win over
    the ``.env`` file.
    """
    path = Path(path)
    if not path.exists():
        raise ComposeError(f"{path} not found")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    env_path = Path(env_file) if env_file else path.parent / ".env"
    env = parse_env_file(env_path) if env_path.exists() else {}
    env.update(environ or {})
    services = {}
    for name, svc in (doc.get("services") or {}).items():
        svc = _interpolate_tree(svc or {}, env)
        build = svc.get("build")
        services[name] = ServiceSpec(
            name=name,
            command=_command(svc.get("command")),
            environment=_environment(svc.get("environment")),
            ports=[str(p) for p in svc.get("ports") or []],
            image=svc.get("image"),
            build=build.get("context") if isinstance(build, dict) else build,
            raw=svc,
        )
    return services
