"""The HTTP JSON API: an ASGI application (Starlette) over the ordinary :class:`Client`.

::

    app = create_app(client)                          # a client you opened
    app = create_app(config=load_config("actorwork.toml"))  # opened in the lifespan
    parent = Starlette(routes=[Mount("/actorwork", app=create_app(client))])

It reaches the Scheduler only through the client, so it works against an inline, a
local or a distributed Scheduler alike. Every error is JSON ``{"error", "field",
"value"}``: a job or schedule that does not exist is 404, a bad filter or body 422, a
change the job's state does not allow 409. Access rules are in
:mod:`actorwork.web.security`; the paths are listed in :mod:`actorwork.web.openapi`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from actorwork._log import get_logger
from actorwork.client import Client
from actorwork.config import Config
from actorwork.errors import (
    ActorworkError,
    JobError,
    JobNotFound,
    MessageEncodeError,
    PayloadError,
    ScheduleError,
    ScheduleNotFound,
    WorkNotFound,
)
from actorwork.messages import (
    MAX_ATTEMPTS,
    MAX_INT,
    MAX_KEY,
    MAX_NAME,
    MAX_SECONDS,
    JobStatus,
    JobView,
)
from actorwork.web.metrics import Metrics
from actorwork.web.openapi import openapi_document
from actorwork.web.pages import dashboard_routes
from actorwork.web.security import Guard, Security
from actorwork.web.workflows import workflow_routes
from actorwork.web.ws import serve_socket

__all__ = ["STATIC", "ApiError", "create_app"]

log = get_logger(__name__)

STATUSES: tuple[str, ...] = get_args(JobStatus)
#: The files served under ``/static`` (the browser module ``actorwork.js``).
STATIC = Path(__file__).parent / "static"
#: The most jobs one page (or one change by filter) holds.
MAX_PAGE = 500


class ApiError(ActorworkError):
    """A request the API refuses: its HTTP status and the field and value at fault."""

    def __init__(self, status: int, error: str, field: str | None = None, value: Any = None):
        super().__init__(error)
        self.status, self.error, self.field, self.value = status, error, field, value


def _action(request: Request, allowed: tuple[str, ...]) -> str:
    action = str(request.path_params["action"])
    if action not in allowed:
        raise ApiError(
            404, f"no action {action!r} here (known: {', '.join(allowed)})", "action", action
        )
    return action


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    value = exc.value if exc.value is None or isinstance(exc.value, int | float) else str(exc.value)
    return _json({"error": exc.error, "field": exc.field, "value": value}, exc.status)


def _translate(exc: ActorworkError) -> ApiError:
    """The HTTP meaning of an error of the client."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, JobNotFound):
        return ApiError(404, str(exc), "job_id")
    if isinstance(exc, ScheduleNotFound):
        return ApiError(404, str(exc), "name")
    if isinstance(exc, WorkNotFound):
        return ApiError(422, str(exc), "work")
    if isinstance(exc, PayloadError):
        return ApiError(422, str(exc), "payload")
    if isinstance(exc, ScheduleError | MessageEncodeError):
        return ApiError(422, str(exc))
    if isinstance(exc, JobError):
        return ApiError(409, str(exc))
    return ApiError(503, f"the Scheduler could not answer: {exc}")


# --- reading parameters ------------------------------------------------------------


def _name(params: Any, key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, f"{key} must be a string", key, repr(value)[:80])
    if not value or len(value) > MAX_NAME:
        raise ApiError(422, f"{key} must be 1 to {MAX_NAME} characters", key, value[:80])
    return str(value)


def _number(params: Any, key: str, *, whole: bool = False, low: float = 0.0, high: float) -> Any:
    text = params.get(key)
    if text is None:
        return None
    if isinstance(text, float) and whole and text.is_integer():
        text = int(text)  # JSON's 3.0 is the integer 3
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ApiError(422, f"{key} must be a number", key, repr(text)[:80])
    if not isinstance(text, str):
        text = repr(text)
    try:
        value: float = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise ApiError(422, f"{key} must be {kind}", key, text[:80]) from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ApiError(422, f"{key} must be between {low:g} and {high:g}", key, text[:80])
    return value


def _flag(params: Any, key: str) -> bool:
    """A yes-or-no query parameter: ``true`` or ``false``, absent being false."""
    text = params.get(key)
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise ApiError(422, f"{key} must be true or false", key, text[:80])


def _filters(params: Any) -> dict[str, Any]:
    """The job filters of a query string (or a JSON object): status, queue, work, time."""
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(STATUSES)}", "status", status)
    since = _number(params, "since", high=32_503_680_000.0)
    until = _number(params, "until", high=32_503_680_000.0)
    return {
        "status": status,
        "queue": _name(params, "queue"),
        "work": _name(params, "work"),
        "since": since,
        "until": until,
    }


def _view(view: JobView) -> Any:
    """A job as JSON: artifacts listed without their bytes (each is its own download)."""
    data: Any = msgspec.to_builtins(view)
    result = data.get("result")
    if result:
        for artifact in result.get("artifacts", []):
            artifact["data"] = ""
    return data


# --- the application ------------------------------------------------------------------


class _Api:
    """The handlers, around the client they ask (given, or opened by the lifespan)."""

    def __init__(self, client: Client | None, metrics: Metrics) -> None:
        self._client = client
        self.metrics = metrics

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ApiError(503, "the API has no client: it is starting or stopping")
        return self._client

    async def jobs(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.submit(request)
        return await self.list_jobs(request)

    async def job_or_delete(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self.change(request)
        return await self.job(request)

    async def list_jobs(self, request: Request, status: str | None = None) -> Response:
        params = request.query_params
        filters = _filters(params)
        if status is not None:
            filters["status"] = status
        limit = _number(params, "limit", whole=True, low=1, high=MAX_PAGE)
        cursor = _number(params, "cursor", whole=True, low=-1, high=2**62)
        count = _flag(params, "count")
        page = await self.client.page(
            **filters, limit=100 if limit is None else limit, before=cursor, count=count
        )
        listed = {"jobs": [_view(v) for v in page.jobs], "next": page.next}
        return _json({**listed, "count": page.count} if count else listed)

    async def submit(self, request: Request) -> Response:
        body = await _body(request)
        work = body.get("work")
        if not isinstance(work, str) or not work:
            raise ApiError(422, "work must name a registered work", "work", work)
        options: dict[str, Any] = {}
        for key, kinds in _SUBMIT_OPTIONS.items():
            value = body.get(key)
            if value is None:
                continue
            if kinds is int and isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON's 3.0 is the integer 3
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise ApiError(422, f"{key} has the wrong type", key, repr(value)[:80])
            _check_bounds(key, value)
            options[key] = value
        unknown = set(body) - {"work", "payload", *_SUBMIT_OPTIONS}
        if unknown:
            key = sorted(unknown)[0]
            raise ApiError(422, f"unknown field {key!r}", key)
        try:
            payload = _whole_numbers(body.get("payload"))
            handle = await self.client.submit(work, payload, **options)
        except OverflowError as exc:  # an integer msgpack cannot carry
            raise ApiError(422, f"payload cannot be encoded: {exc}", "payload") from exc
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        return _json({"job_id": handle.id, "created": handle.created}, 201)

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        view = await self.client.get(job_id)
        attempts = await self.client.attempts(job_id)
        records = [msgspec.to_builtins(a) for a in attempts]
        for record in records:
            for artifact in record["result"].get("artifacts", []):
                artifact["data"] = ""
        return _json({"job": _view(view), "attempts": records})

    async def logs(self, request: Request) -> Response:
        view = await self.client.get(request.path_params["job_id"])
        lines = [] if view.result is None else view.result.logs
        return _json({"logs": msgspec.to_builtins(list(lines))})

    async def artifact(self, request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["artifact"]
        view = await self.client.get(job_id)
        artifacts = [] if view.result is None else view.result.artifacts
        for artifact in artifacts:
            if artifact.name == name:
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
                # Shown in the browser (?view=1) only as a type that runs no script.
                shown = "view" in request.query_params and artifact.media_type in _VIEWABLE
                disposition = "inline" if shown else "attachment"
                return Response(
                    artifact.data,
                    media_type=artifact.media_type,
                    headers={"content-disposition": f'{disposition}; filename="{safe}"'},
                )
        raise ApiError(404, f"job {job_id!r} has no artifact {name!r}", "artifact", name)

    async def change(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        action = "delete" if request.method == "DELETE" else _action(request, ("cancel", "retry"))
        view = await getattr(self.client, action)(job_id)
        return _json({"job": _view(view)})

    async def change_many(self, request: Request) -> Response:
        """Cancel, retry or delete every job a filter matches (up to ``limit``)."""
        action = _action(request, ("cancel", "retry", "delete"))
        body = await _body(request)
        filters = _filters(body)
        limit = _number(body, "limit", whole=True, low=1, high=MAX_PAGE)
        if all(value is None for value in filters.values()):
            raise ApiError(422, "a change by filter needs at least one filter", "status")
        page = await self.client.page(**filters, limit=MAX_PAGE if limit is None else limit)
        done, failed = [], []
        for view in page.jobs:
            try:
                await getattr(self.client, action)(view.id)
                done.append(view.id)
            except JobError as exc:
                failed.append({"job_id": view.id, "error": str(exc)})
        return _json({"done": done, "failed": failed})

    async def queues(self, request: Request) -> Response:
        return _json({"queues": msgspec.to_builtins(await self.client.queues())})

    async def pause(self, request: Request) -> Response:
        name = request.path_params["name"]
        if len(name) > MAX_NAME:
            raise ApiError(422, f"a queue name is at most {MAX_NAME} characters", "name", name[:80])
        paused = _action(request, ("pause", "resume")) == "pause"
        view = await self.client.pause_queue(name, paused)
        return _json({"queue": msgspec.to_builtins(view)})

    async def pools(self, request: Request) -> Response:
        return _json({"pools": msgspec.to_builtins(await self.client.pools())})

    async def schedules(self, request: Request) -> Response:
        count = _number(request.query_params, "count", whole=True, high=100)
        views = await self.client.schedules(count=3 if count is None else count)
        return _json({"schedules": msgspec.to_builtins(views)})

    async def schedule_action(self, request: Request) -> Response:
        name, action = request.path_params["name"], _action(request, ("enable", "disable", "run"))
        if action == "run":
            view = await self.client.run_schedule(name)
            return _json({"job": _view(view)}, 201)
        schedule = await self.client.enable_schedule(name, action == "enable")
        return _json({"schedule": msgspec.to_builtins(schedule)})

    async def events(self, request: Request) -> Response:
        client: Any = self.client
        if not hasattr(client, "events"):
            raise ApiError(503, "this client has no event stream (Client.events)", "events")
        params = request.query_params
        filters: dict[str, Any] = {
            "job_id": _name(params, "job_id"),
            "work": _name(params, "work"),
            "queue": _name(params, "queue"),
            "status": _filters(params)["status"],
        }
        kinds = params.get("kinds")
        if kinds:
            filters["kinds"] = [kind for kind in kinds.split(",") if kind]

        try:
            events = client.events(**filters)
        except ValueError as exc:  # an unknown kind
            raise ApiError(422, str(exc), "kinds", kinds) from exc

        # Subscribed before the response starts: an event that happens once the client
        # has the headers is never missed.
        subscribe = getattr(events, "__aenter__", None)
        if subscribe is not None:
            await subscribe()

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for event in events:
                    data = msgspec.to_builtins(event)
                    kind = data.get("type", "event") if isinstance(data, dict) else "event"
                    yield b"event: %s\ndata: %s\n\n" % (kind.encode(), msgspec.json.encode(data))
            finally:  # the browser went away: unsubscribe at once
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def socket(self, websocket: WebSocket) -> None:
        """``/ws``: the event stream pushed as JSON frames (:mod:`actorwork.web.ws`)."""
        if self._client is None:
            await websocket.close(1013, "the API has no client: it is starting or stopping")
            return
        await serve_socket(websocket, self._client)

    async def openapi(self, request: Request) -> Response:
        registry = self.client.registry if self._client is not None else None
        works = None if registry is None else tuple(registry.get(n) for n in registry.names())
        return _json(openapi_document(works))

    async def metrics_page(self, request: Request) -> Response:
        body, media_type = await self.metrics.render(self.client)
        return Response(body, media_type=media_type)


#: Artifact types a browser may show in place (``?view=1``): none of them runs script.
_VIEWABLE = frozenset({"application/pdf", "image/png", "image/jpeg", "text/plain"})

_SUBMIT_OPTIONS: dict[str, Any] = {
    "queue": str,
    "priority": int,
    "retries": int,
    "timeout": int | float,
    "unique_key": str,
    "delay": int | float,
    "job_id": str,
}


#: The bounds of a submit's options: (least, most, whether the least is allowed).
_SUBMIT_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "priority": (-MAX_INT - 1, MAX_INT, True),
    "retries": (0, MAX_ATTEMPTS - 1, True),
    "timeout": (0.0, MAX_SECONDS, False),
    "delay": (0.0, MAX_SECONDS, True),
}
_SUBMIT_LENGTHS = {"queue": MAX_NAME, "unique_key": MAX_KEY, "job_id": 128}


def _check_bounds(key: str, value: Any) -> None:
    """A submit option outside what a message carries is a 422 naming it."""
    if key in _SUBMIT_BOUNDS:
        low, high, closed = _SUBMIT_BOUNDS[key]
        inside = (low <= value if closed else low < value) and value <= high
        if not (math.isfinite(value) and inside):
            raise ApiError(422, f"{key} must be between {low:g} and {high:g}", key, value)
    elif key == "queue" and not value:
        raise ApiError(422, "queue must not be empty", key, value)
    elif len(value) > _SUBMIT_LENGTHS[key]:
        raise ApiError(422, f"{key} is at most {_SUBMIT_LENGTHS[key]} characters", key, value[:80])


def _whole_numbers(value: Any) -> Any:
    """``value`` with each whole float that a double holds exactly made an int.

    JSON has one kind of number, and writes 3 as ``3.0`` as readily as ``3``; a payload
    field typed ``int`` takes the second only. A ``float`` field takes an int as well.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except (msgspec.DecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise ApiError(422, f"the body is not JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object", "body", type(body).__name__)
    return body


#: The longest value of each path parameter (the bounds of the messages they go into).
_PATH_LIMITS = {"artifact": MAX_KEY}


def _check_path(request: Request) -> None:
    """A path parameter too long for the message it goes into is a 422 naming it."""
    for key, value in request.path_params.items():
        limit = _PATH_LIMITS.get(key, MAX_NAME)
        if not value or len(value) > limit:
            raise ApiError(422, f"{key} must be 1 to {limit} characters", key, value[:80])


def _handler(
    func: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            _check_path(request)
            return await func(request)
        except ActorworkError as exc:
            return _error(_translate(exc))

    return handle


def create_app(
    client: Client | None = None,
    *,
    config: Config | None = None,
    security: Security | None = None,
    run_pools: bool = False,
) -> Starlette:
    """The API as an ASGI app, over ``client``, or over a job system of ``config`` that
    its lifespan opens (and closes) with ``run_pools`` pools; give one or the other.

    Mounted under a prefix (``Mount("/actorwork", app)``), a parent app does not run
    its lifespan: hand it an open ``client`` then.
    """
    if (client is None) == (config is None):
        raise ValueError("create_app needs a client or a config, and not both")
    api = _Api(client, Metrics())
    security = security or Security()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config is None:
            yield
            return
        from actorwork.topology import JobSystem

        async with AsyncExitStack() as stack:
            system = await stack.enter_async_context(JobSystem(config, pools=run_pools))
            api._client = system.client  # noqa: SLF001 - the app's own state
            log.info("api_ready", topology=config.jobs.topology, scheduler=config.scheduler.address)
            try:
                yield
            finally:
                api._client = None  # noqa: SLF001

    def jobs_of(status: str) -> Callable[[Request], Awaitable[Response]]:
        return lambda request: api.list_jobs(request, status)

    routes = [
        Route("/jobs", _handler(api.jobs), methods=["GET", "POST"]),
        Route("/jobs/{action:str}/by-filter", _handler(api.change_many), methods=["POST"]),
        Route("/jobs/{job_id:str}", _handler(api.job_or_delete), methods=["GET", "DELETE"]),
        Route("/jobs/{job_id:str}/logs", _handler(api.logs), methods=["GET"]),
        Route(
            "/jobs/{job_id:str}/artifacts/{artifact:str}", _handler(api.artifact), methods=["GET"]
        ),
        Route("/jobs/{job_id:str}/{action:str}", _handler(api.change), methods=["POST"]),
        *(
            Route(f"/{status}", _handler(jobs_of(status)), methods=["GET"])
            for status in ("scheduled", "retrying", "dead")
        ),
        Route("/queues", _handler(api.queues), methods=["GET"]),
        Route("/queues/{name:str}/{action:str}", _handler(api.pause), methods=["POST"]),
        Route("/pools", _handler(api.pools), methods=["GET"]),
        Route("/schedules", _handler(api.schedules), methods=["GET"]),
        Route(
            "/schedules/{name:str}/{action:str}", _handler(api.schedule_action), methods=["POST"]
        ),
        Route("/events", _handler(api.events), methods=["GET"]),
        *workflow_routes(lambda: api.client, _handler, _action),
        Route("/metrics", _handler(api.metrics_page), methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        WebSocketRoute("/ws", api.socket),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        *dashboard_routes(security),
    ]

    async def not_here(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        response = _json(
            {"error": str(getattr(exc, "detail", exc)), "field": "path", "value": request.url.path},
            status,
        )
        response.headers.update(getattr(exc, "headers", None) or {})  # 405's Allow
        return response

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_here, 405: not_here},
        middleware=[Middleware(Guard, security=security)],
        lifespan=lifespan,
    )
    app.state.api = api
    return app
