"""The dashboard's routes: its page and files, and the login that opens a browser session.

The dashboard is plain HTML, CSS and ES modules in ``actorwork/web/dashboard/`` (no
build step), served by the API app itself, so it reaches exactly what the API does and
works under any prefix the app is mounted at: the page at ``/``, its files under
``/dashboard/``, the browser module under ``/static/``. Every URL the scripts use is
relative to where the page was served from.

Access (see :mod:`actorwork.web.security`): the page and files are public, they hold
no data. ``GET /`` sets the CSRF cookie the scripts repeat in a header. ``POST /login``
trades a token for a session cookie; ``GET /session`` tells the page what its
credential allows, so a read-only session is shown no buttons (and the server refuses
its changes anyway).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from actorwork.web.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Refusal,
    Security,
    role_of,
    session_value,
)

__all__ = ["DASHBOARD_DIR", "dashboard_routes"]

#: The dashboard's files inside the package.
DASHBOARD_DIR = Path(__file__).with_name("dashboard")


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json")


def _cookie_path(request: Request) -> str:
    """The prefix the app is mounted at: the cookies belong to it alone."""
    return str(request.scope.get("root_path", "")) or "/"


class _Pages:
    def __init__(self, security: Security) -> None:
        self.security = security

    async def index(self, request: Request) -> Response:
        response = FileResponse(DASHBOARD_DIR / "index.html", media_type="text/html")
        response.headers["cache-control"] = "no-store"
        if not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(
                CSRF_COOKIE,
                secrets.token_urlsafe(32),
                path=_cookie_path(request),
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    async def login(self, request: Request) -> Response:
        """``{"token": ...}`` in, a session cookie out (HttpOnly, SameSite=Strict)."""
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return _json({"error": "login needs a token", "field": "token", "value": None}, 422)
        if self.security.token is None:
            return _json({"role": "open"})
        role = role_of(self.security, {"authorization": f"Bearer {token}"})
        if isinstance(role, Refusal):
            return _json({"error": "the token is not valid", "field": "token", "value": None}, 401)
        response = _json({"role": role})
        response.set_cookie(
            SESSION_COOKIE,
            session_value(token),
            path=_cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = _json({"role": None})
        response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request), httponly=True)
        return response

    async def session(self, request: Request) -> Response:
        """What this request's credential allows (the Guard let it through)."""
        headers = {key.lower(): value for key, value in request.headers.items()}
        role = role_of(self.security, headers)
        return _json({"role": None if isinstance(role, Refusal) else role})


def dashboard_routes(security: Security) -> list[BaseRoute]:
    """The dashboard's routes, for the API app."""
    pages = _Pages(security)
    routes: list[BaseRoute] = [
        Route("/", pages.index, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/session", pages.session, methods=["GET"]),
        Mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard"),
    ]
    return routes
