"""The FastAPI application: routes, error formats and the OpenAPI description.

Auth, rate limiting and the body size limit live in ``obslab.serve.guard`` (outside FastAPI,
so they act before any parsing); the API-key scheme is still declared here so that
``/openapi.json`` tells clients what to send.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from pydantic import ValidationError

from obslab import __version__
from obslab.serve._errors import field_errors, invalid_body, reject_duplicate_keys
from obslab.serve.auth import KeyChecker
from obslab.serve.guard import Guard
from obslab.serve.model_store import load_model
from obslab.serve.ratelimit import RateLimiter
from obslab.serve.schemas import (
    ErrorResponse,
    FeedRequest,
    FeedResponse,
    HealthResponse,
    PredictionsResponse,
    PublicStatusResponse,
    StatusResponse,
    ValidationErrorResponse,
)
from obslab.serve.service import Daemon, RecordError
from obslab.serve.store import RecordStore

__all__ = ["ServeSettings", "create_app"]


@dataclass
class ServeSettings:
    model_dir: Path
    state_path: Path
    window: int = 2880
    warmup: int = 100
    rate_limit: int = 60  # requests in any 60 s, per key (and per address without a valid key)
    max_body_bytes: int = 4 * 1024 * 1024
    retain: int = 10_000  # records kept in the state file beyond the window
    reset_state: bool = False


def _json(payload, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


_GUARDED = {
    401: {"model": ErrorResponse, "description": "X-API-Key header missing"},
    403: {"model": ErrorResponse, "description": "X-API-Key not recognised"},
    429: {"model": ErrorResponse, "description": "rate limit exceeded",
          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}},
}


def _invalid(errors: list[dict]) -> Response:
    return _json(invalid_body(errors), 422)


_JSON_TYPES = ("application/json",)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def create_app(settings: ServeSettings, keys: list[str]) -> FastAPI:
    checker = KeyChecker(keys)  # refuses to build an app with no keys
    model = load_model(settings.model_dir)
    store = RecordStore(settings.state_path, keep=settings.window + settings.retain, reset=settings.reset_state)
    daemon = Daemon(model, store, settings.window, settings.warmup)

    @asynccontextmanager
    async def lifespan(app):
        yield
        daemon.store.close()

    app = FastAPI(
        title="obslab inference daemon",
        version=__version__,
        description="Feed server metrics, get per-server anomaly scores from the trained TabularResNet.",
        lifespan=lifespan,
    )
    app.state.daemon = daemon
    api_key = Security(APIKeyHeader(name="X-API-Key", auto_error=False, description="one of the configured keys"))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        return _invalid(field_errors(exc.errors()))

    @app.get("/health", response_model=HealthResponse, tags=["ops"])
    async def health():
        """Liveness; needs no key."""
        return _json({"status": "ok"})

    @app.post(
        "/feed/data",
        response_model=FeedResponse,
        dependencies=[api_key],
        tags=["feed"],
        responses={**_GUARDED, 413: {"model": ErrorResponse, "description": "body too large"},
                   415: {"model": ErrorResponse, "description": "Content-Type is not JSON"},
                   422: {"model": ValidationErrorResponse, "description": "every bad field of every bad record"}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/FeedRequest"}}}}},
    )
    async def feed(request: Request):
        """Store a batch of records (any number of servers and timestamps) in the rolling window.

        The batch is all-or-nothing: if any record is invalid, none is stored and the answer
        lists every bad field of every bad record."""
        if not _is_json(request.headers.get("content-type")):
            return _json({"detail": "Content-Type must be application/json"}, 415)
        raw = await request.body()
        duplicate = reject_duplicate_keys(raw)
        if duplicate:
            return _invalid([{"record": None, "field": "body", "message": duplicate, "input": None, "type": "duplicate"}])
        # validated from the bytes by pydantic-core (about 1.7x faster than FastAPI's
        # json.loads + validate; the schema is still published, see _openapi below)
        try:
            body = FeedRequest.model_validate_json(raw)
        except ValidationError as exc:
            return _invalid(field_errors(exc.errors()))
        try:
            return _json(daemon.ingest(body.records))
        except RecordError as exc:
            return _invalid(exc.errors)

    @app.get("/status", response_model=StatusResponse | PublicStatusResponse, tags=["ops"],
             responses={k: v for k, v in _GUARDED.items() if k != 401},
             openapi_extra={"security": [{"APIKeyHeader": []}, {}]})
    async def status(request: Request):
        """Window, ticks, warmup, tracked servers and the model's identity. Without a key (the
        guide's `curl .../status`): the guide's fields only, rate-limited per client address."""
        if request.scope.get("state", {}).get("key_id") is None:
            return _json(daemon.public_status())
        return _json(daemon.status())

    @app.get("/predictions/current", response_model=PredictionsResponse, dependencies=[api_key],
             tags=["predictions"], responses=_GUARDED)
    async def predictions():
        """Per server (its latest record in the window): anomaly score, flag, nearest normal
        records and the metrics that differ most from them; plus a fleet summary."""
        return Response(daemon.predictions_json(), media_type="application/json")

    def _openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            feed_schema = FeedRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, sub in feed_schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas["FeedRequest"] = feed_schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = _openapi
    app.add_middleware(Guard, keys=checker, limiter=RateLimiter(settings.rate_limit),
                       max_body_bytes=settings.max_body_bytes)
    return app
