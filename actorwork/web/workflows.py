"""The API's workflow endpoints: a workflow's tree, and cancel or retry of it.

``GET /workflows/{workflow_id}`` answers ``{"workflow": WorkflowView}`` (every node
with its path, status, attempts, result and times); ``POST
/workflows/{workflow_id}/cancel`` and ``/retry`` answer the tree after the change. An
unknown workflow is a 404. The handlers reach the Scheduler through the client, as the
rest of the API does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actorwork.client import Client
from actorwork.workflow import WorkflowView

__all__ = ["workflow_paths", "workflow_routes"]

Handler = Callable[[Request], Awaitable[Response]]
_ACTIONS = ("cancel", "retry")


def _answer(view: WorkflowView) -> Response:
    body = msgspec.json.encode({"workflow": view})
    return Response(body, 200, media_type="application/json")


def workflow_routes(
    client: Callable[[], Client],
    wrap: Callable[[Handler], Handler],
    action: Callable[[Request, tuple[str, ...]], str],
) -> list[Route]:
    """The routes, asking the client ``client()`` gives; ``wrap`` turns the client's
    errors into HTTP ones, ``action`` reads and checks the path's action."""

    async def tree(request: Request) -> Response:
        return _answer(await client().workflow(request.path_params["workflow_id"]))

    async def change(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        if action(request, _ACTIONS) == "cancel":
            return _answer(await client().cancel_workflow(workflow_id))
        return _answer(await client().retry_workflow(workflow_id))

    return [
        Route("/workflows/{workflow_id:str}", wrap(tree), methods=["GET"]),
        Route("/workflows/{workflow_id:str}/{action:str}", wrap(change), methods=["POST"]),
    ]


def workflow_paths(
    name: dict[str, Any], ok: Callable[[dict[str, Any]], dict[str, Any]], errors: Any
) -> dict[str, Any]:
    """The OpenAPI paths of these endpoints (``name`` is the schema of an id)."""
    param = {"name": "workflow_id", "in": "path", "required": True, "schema": name}
    answer = ok(
        {
            "type": "object",
            "properties": {"workflow": {"$ref": "#/components/schemas/WorkflowView"}},
            "required": ["workflow"],
        }
    )
    action = {
        "name": "action",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(_ACTIONS)},
    }
    return {
        "/workflows/{workflow_id}": {
            "get": {"parameters": [param], "responses": {**answer, **errors(404)}}
        },
        "/workflows/{workflow_id}/{action}": {
            "post": {"parameters": [param, action], "responses": {**answer, **errors(404, 409)}}
        },
    }
