"""API keys: where they come from and how a presented key is checked.

Keys come from ``OBSLAB_API_KEYS`` (comma-separated) and/or a keys file (one key per line,
``#`` comments). A presented key is compared with every configured key using
``hmac.compare_digest`` and without stopping at the first match, so the time taken does not
tell how much of a key was right or which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

__all__ = ["ENV_VAR", "load_keys", "KeyChecker"]

ENV_VAR = "OBSLAB_API_KEYS"
MIN_KEY_LENGTH = 16
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def load_keys(keys_file: str | Path | None = None, environ: dict | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    keys = [k.strip() for k in env.get(ENV_VAR, "").split(",") if k.strip()]
    if keys_file:
        for line in Path(keys_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.append(line)
    short = [k for k in keys if len(k) < MIN_KEY_LENGTH]
    if short:
        raise ValueError(f"{len(short)} API key(s) shorter than {MIN_KEY_LENGTH} characters (a guide's placeholder "
                         f"such as 'your-api-key' is refused); make one with: {MAKE_KEY}")
    return list(dict.fromkeys(keys))


class KeyChecker:
    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError(f"no API keys configured: set {ENV_VAR} or pass --keys-file; make a key with: {MAKE_KEY}")
        # compare digests: equal lengths, and the raw keys need not stay in memory
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def identify(self, presented: str) -> str | None:
        """A stable id for the matching key (for rate limiting and logs), or None."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        match = None
        for i, known in enumerate(self._digests):
            if hmac.compare_digest(digest, known) and match is None:
                match = f"key{i}"
        return match
