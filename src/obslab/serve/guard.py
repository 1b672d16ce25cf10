"""The ASGI middleware in front of every route: body size, API key, rate limit (in that order).

A request without a valid key counts against its client address in the same limiter, so a
loop guessing keys is answered 429 after ``--rate-limit`` attempts a minute.

It runs before FastAPI parses anything, so an unauthenticated or oversized request is refused
without its body being read into memory or validated. ``/health`` and the API description
(``/openapi.json``, ``/docs``) are open. ``GET /status`` without a key is let through (the
metrics-feed guide's ``curl .../status`` sends none), counted against the client address like
any request without a valid key; the route then answers only the guide's fields. A wrong key is
still 403: it is a mistake to report, not an anonymous caller.
"""

from __future__ import annotations

import orjson

from obslab.serve.auth import KeyChecker
from obslab.serve.ratelimit import RateLimiter

__all__ = ["Guard", "OPEN_PATHS", "ANONYMOUS_GET"]

OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
ANONYMOUS_GET = frozenset({"/status"})  # answered without a key, with less detail


async def _send_error(send, status: int, detail: str, headers: list | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, keys: KeyChecker, limiter: RateLimiter, max_body_bytes: int):
        self.app, self.keys, self.limiter, self.max_body = app, keys, limiter, int(max_body_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _send_error(send, 413, f"request body larger than {self.max_body} bytes")
        presented = headers.get(b"x-api-key")
        key_id = self.keys.identify(presented.decode("latin-1")) if presented else None
        if key_id is None:
            client = scope.get("client") or ("unknown", 0)
            wait = self.limiter.acquire(f"addr:{client[0]}")
            if wait:
                return await _send_error(send, 429, f"too many requests without a valid key; retry in {wait} s",
                                         [(b"retry-after", str(wait).encode())])
            if not presented and scope["method"] == "GET" and scope["path"] in ANONYMOUS_GET:
                scope.setdefault("state", {})["key_id"] = None
                return await self.app(scope, receive, send)
            if not presented:
                return await _send_error(send, 401, "missing X-API-Key header",
                                         [(b"www-authenticate", b'APIKey header="X-API-Key"')])
            return await _send_error(send, 403, "invalid API key")
        wait = self.limiter.acquire(key_id)
        if wait:
            return await _send_error(send, 429, f"rate limit exceeded; retry in {wait} s",
                                     [(b"retry-after", str(wait).encode())])
        scope.setdefault("state", {})["key_id"] = key_id
        if length is None and scope["method"] not in ("GET", "HEAD"):
            # chunked body without Content-Length: read it here, up to the limit, then replay it
            body = await self._read_limited(receive)
            if body is None:
                return await _send_error(send, 413, f"request body larger than {self.max_body} bytes")
            receive = self._replay(body, receive)
        await self.app(scope, receive, send)

    async def _read_limited(self, receive) -> bytes | None:
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_body:
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, original):
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return await original()  # later reads wait for the real disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return receive
