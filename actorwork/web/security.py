"""Who may do what over HTTP: tokens, read-only tokens, and the Origin and Host rules.

The decision is pure (:func:`decide`: a method and headers in, a refusal or None out),
so each rule is tested without a server; :class:`Guard` is the ASGI shell that applies
it to every request before the API sees it.

- With a ``token`` set, every request but a read of :data:`PUBLIC_PATHS` needs
  ``Authorization: Bearer <token>`` (401 otherwise); a ``read_token`` allows GET and
  HEAD only (403 for anything else).
  Tokens are compared in constant time (:func:`hmac.compare_digest`).
- A request that changes state (not GET, HEAD or OPTIONS) must name an allowed
  ``Host`` and, if it carries an ``Origin``, one of the same host or an allowed one
  (403 otherwise): a page on another site cannot drive the API from a browser (F21).
- A WebSocket upgrade (:func:`decide_upgrade`) names an allowed ``Host`` and, if it
  carries an ``Origin``, an allowed one, whatever it goes on to do: a browser lets any
  page open a socket to any site, so the Origin is the only thing that tells them
  apart. Its token may come as ``?token=`` (a browser cannot set a WebSocket's
  headers); a read-only token may subscribe. A refused upgrade is closed before it is
  accepted, which the server answers with HTTP 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from actorwork._log import get_logger

__all__ = [
    "LOOPBACK_HOSTS",
    "PUBLIC_PATHS",
    "REFUSED_UPGRADE",
    "Guard",
    "Refusal",
    "Security",
    "decide",
    "decide_upgrade",
    "is_loopback",
]

log = get_logger(__name__)

#: Host names that mean this machine; the API allows them by default.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths under the API's root that anyone may GET without a token: the browser module
#: (``/static/actorwork.js``), which a page imports before it can send one, and which
#: holds no data.
PUBLIC_PATHS = ("/static/",)
#: The close code of a refused WebSocket upgrade (policy; the HTTP answer is a 403).
REFUSED_UPGRADE = 4403


@dataclass(frozen=True)
class Security:
    """The API's access rules. ``allowed_hosts`` are host names (no port) a
    state-changing request may name in ``Host``; ``allowed_origins`` are origins
    (``https://admin.example.org``) besides the API's own that may send them."""

    token: str | None = None
    read_token: str | None = None
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("token", "read_token"):
            value = getattr(self, name)
            if value is not None and len(value) < 16:
                raise ValueError(f"the API {name} must be at least 16 characters, got {len(value)}")
        if self.read_token is not None and self.token is None:
            raise ValueError("a read_token needs a token as well: reads alone would be open")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: an HTTP status and the JSON error body's parts."""

    status: int
    error: str
    field: str
    value: str | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable from this machine only."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _host_name(host: str) -> str:
    """``host`` of a Host header, without its port (IPv6 in brackets kept bare)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token_allows(security: Security, method: str, authorization: str) -> Refusal | None:
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return Refusal(401, "a bearer token is required", "authorization")
    full = hmac.compare_digest(given.encode(), (security.token or "").encode())
    read = security.read_token is not None and hmac.compare_digest(
        given.encode(), security.read_token.encode()
    )
    if full:
        return None
    if read:
        if method in _SAFE:
            return None
        return Refusal(403, "a read-only token allows GET and HEAD only", "method", method)
    return Refusal(401, "the bearer token is not valid", "authorization")


def decide(security: Security, method: str, headers: dict[str, str]) -> Refusal | None:
    """The refusal of a request with ``method`` and ``headers`` (lower-case names), or
    None if it may go on. Pure."""
    if security.token is not None:
        refusal = _token_allows(security, method, headers.get("authorization", ""))
        if refusal is not None:
            return refusal
    if method in _SAFE:
        return None
    return _place_refusal(security, headers)


def decide_upgrade(
    security: Security, headers: dict[str, str], query_token: str | None = None
) -> Refusal | None:
    """The refusal of a WebSocket upgrade with ``headers`` (lower-case names) and the
    ``token`` of its query string, or None if it may go on. Pure."""
    if security.token is not None:
        authorization = headers.get("authorization", "")
        if not authorization and query_token:
            authorization = f"Bearer {query_token}"
        refusal = _token_allows(security, "GET", authorization)
        if refusal is not None:
            return refusal
    return _place_refusal(security, headers)


def _place_refusal(security: Security, headers: dict[str, str]) -> Refusal | None:
    """The refusal of a request whose Host or Origin is not allowed, or None."""
    host = headers.get("host", "")
    if _host_name(host) not in security.allowed_hosts:
        return Refusal(403, "the Host is not one this API answers to", "host", host)
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        same = parts.scheme in ("http", "https") and parts.netloc == host
        if not same and origin not in security.allowed_origins:
            return Refusal(403, "requests from this Origin are not allowed", "origin", origin)
    return None


def _public(scope: Scope) -> bool:
    """Whether the request reads a file anyone may have (see :data:`PUBLIC_PATHS`)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root + "/"):  # mounted under a prefix: the path below it
        path = path[len(root) :]
    return scope["method"] in ("GET", "HEAD") and path.startswith(PUBLIC_PATHS)


class Guard:
    """ASGI middleware: refuses, with a JSON error, what :func:`decide` refuses."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._upgrade(scope, receive, send)
            return
        if scope["type"] != "http" or _public(scope):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = decide(self.security, scope["method"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        body = msgspec.json.encode(
            {"error": refusal.error, "field": refusal.field, "value": refusal.value}
        )
        extra = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _upgrade(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        refusal = decide_upgrade(self.security, headers, tokens[0] if tokens else None)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        log.info("websocket_refused", field=refusal.field, value=refusal.value)
        await receive()  # the websocket.connect the server sends first
        await send({"type": "websocket.close", "code": REFUSED_UPGRADE, "reason": refusal.error})
