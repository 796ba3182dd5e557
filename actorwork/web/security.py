"""Who may do what over HTTP: tokens, read-only tokens, and the Origin and Host rules.

The decision is pure (:func:`decide`: a method and headers in, a refusal or None out),
so each rule is tested without a server; :class:`Guard` is the ASGI shell that applies
it to every request before the API sees it.

- With a ``token`` set, every request but a read of :data:`PUBLIC_PATHS` needs
  ``Authorization: Bearer <token>`` (401 otherwise); a ``read_token`` allows GET and
  HEAD only (403 for anything else).
  Tokens are compared in constant time (:func:`hmac.compare_digest`).
- Every request must name an allowed ``Host`` (403 otherwise): a DNS name rebound to
  this machine does not make a foreign page same-origin with the API.
- A request that changes state (not GET, HEAD or OPTIONS) that carries an ``Origin``
  must come from the same host or an allowed origin (403 otherwise): a page on another
  site cannot drive the API from a browser (F21).
- A WebSocket upgrade (:func:`decide_upgrade`) names an allowed ``Host`` and, if it
  carries an ``Origin``, an allowed one, whatever it goes on to do: a browser lets any
  page open a socket to any site, so the Origin is the only thing that tells them
  apart. Its token may come as ``?token=`` (a browser cannot set a WebSocket's
  headers), or the dashboard's session cookie; a read-only token may subscribe. A
  refused upgrade is closed before it is accepted, which the server answers with
  HTTP 403.

**The dashboard in a browser.** A browser cannot hold a bearer token safely, so the
dashboard trades it once (``POST /login``) for a session cookie, ``HttpOnly`` (no
script reads it) and ``SameSite=Strict`` (no other site's request carries it). Its
value is an HMAC of the token (:func:`session_value`): nothing is stored, a read-only
token's session is read-only, and changing the token ends every session. The page, its
scripts and ``/login`` itself need no credential (:func:`is_public`).

Cookies are ambient, so a state-changing request that rides on them also needs a CSRF
token, by double submit: the dashboard page sets a random ``actorwork_csrf`` cookie,
and its scripts copy it into an ``X-CSRF-Token`` header that must match. Another site
can make a browser send the cookie's siblings but can neither read the cookie nor set
the header. The check applies to every request that carries one of the dashboard's
cookies and no ``Authorization`` header; a bearer-token client (``curl``, the CLI,
:mod:`actorwork.client` over HTTP) sends no cookies, needs no CSRF token, and works
as before.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actorwork._log import get_logger

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "LOOPBACK_HOSTS",
    "PUBLIC_PATHS",
    "REFUSED_UPGRADE",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "Guard",
    "Refusal",
    "Role",
    "Security",
    "decide",
    "decide_upgrade",
    "is_loopback",
    "is_public",
    "role_of",
    "route_path",
    "session_value",
]

log = get_logger(__name__)

#: Host names that mean this machine; the API allows them by default.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths under the API's root that anyone may GET without a token: the browser module
#: (``/static/actorwork.js``), which a page imports before it can send one, and the
#: dashboard's files; they hold no data. (The dashboard's page ``/`` is public too.)
PUBLIC_PATHS = ("/static/", "/dashboard/")
#: The close code of a refused WebSocket upgrade (policy; the HTTP answer is a 403).
REFUSED_UPGRADE = 4403

#: The dashboard's session cookie (HttpOnly) and its CSRF cookie (read by its scripts).
SESSION_COOKIE = "actorwork_session"
CSRF_COOKIE = "actorwork_csrf"
#: The header that must repeat :data:`CSRF_COOKIE` on a cookie-borne change.
CSRF_HEADER = "x-csrf-token"

#: Headers on every response: no script but the app's own files, no framing, no sniffing.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)

#: What a credential allows: everything, reading only, or (no token configured) everything.
Role = Literal["full", "read", "open"]


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


def session_value(secret: str) -> str:
    """The session cookie's value for a browser that gave ``secret`` (a token)."""
    return hmac.new(secret.encode(), b"actorwork dashboard session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def role_of(security: Security, headers: dict[str, str]) -> Role | Refusal:
    """What the credential of a request allows: its bearer token, else its session
    cookie; a Refusal (401) when a token is configured and neither is valid."""
    if security.token is None:
        return "open"
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return Refusal(401, "a bearer token is required", "authorization")
        what = "the bearer token"
    else:
        given = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE, "")
        if not given:
            return Refusal(401, "a bearer token is required", "authorization")
        what = "the session"
        security = Security(
            token=session_value(security.token),
            read_token=None if security.read_token is None else session_value(security.read_token),
        )
    if _same(given, security.token):
        return "full"
    if _same(given, security.read_token):
        return "read"
    return Refusal(401, f"{what} is not valid", "authorization")


def is_public(method: str, path: str) -> bool:
    """Whether a request needs no credential: the dashboard's page and files (they hold
    no data), and the login that trades a token for a session."""
    if method in ("GET", "HEAD"):
        return path in ("", "/") or path.startswith(PUBLIC_PATHS)
    return method == "POST" and path in ("/login", "/logout")


def _csrf_refusal(headers: dict[str, str]) -> Refusal | None:
    if "authorization" in headers:
        return None  # a bearer client: no ambient credential to forge
    cookies = cookie_parser(headers.get("cookie", ""))
    if SESSION_COOKIE not in cookies and CSRF_COOKIE not in cookies:
        return None
    given = headers.get(CSRF_HEADER, "")
    if not given or not _same(given, cookies.get(CSRF_COOKIE)):
        return Refusal(
            403, "a change from the dashboard needs its CSRF token", CSRF_HEADER, given or None
        )
    return None


def decide(
    security: Security, method: str, headers: dict[str, str], path: str | None = None
) -> Refusal | None:
    """The refusal of a request with ``method``, ``headers`` (lower-case names) and
    ``path`` (within the app; None: an API path), or None if it may go on. Pure."""
    refusal = _host_refusal(security, headers)
    if refusal is not None:
        return refusal
    if path is None or not is_public(method, path):
        role = role_of(security, headers)
        if isinstance(role, Refusal):
            return role
        if role == "read" and method not in _SAFE:
            return Refusal(403, "a read-only token allows GET and HEAD only", "method", method)
    if method in _SAFE:
        return None
    return _origin_refusal(security, headers) or _csrf_refusal(headers)


def decide_upgrade(
    security: Security, headers: dict[str, str], query_token: str | None = None
) -> Refusal | None:
    """The refusal of a WebSocket upgrade with ``headers`` (lower-case names) and the
    ``token`` of its query string, or None if it may go on. Pure."""
    refusal = _host_refusal(security, headers)
    if refusal is not None:
        return refusal
    if "authorization" not in headers and query_token:
        headers = {**headers, "authorization": f"Bearer {query_token}"}
    role = role_of(security, headers)
    if isinstance(role, Refusal):
        return role
    return _origin_refusal(security, headers)


def _host_refusal(security: Security, headers: dict[str, str]) -> Refusal | None:
    host = headers.get("host", "")
    if _host_name(host) not in security.allowed_hosts:
        return Refusal(403, "the Host is not one this API answers to", "host", host)
    return None


def _origin_refusal(security: Security, headers: dict[str, str]) -> Refusal | None:
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        same = parts.scheme in ("http", "https") and parts.netloc == headers.get("host", "")
        if not same and origin not in security.allowed_origins:
            return Refusal(403, "requests from this Origin are not allowed", "origin", origin)
    return None


def route_path(scope: Scope) -> str:
    """The path of a request within this app (without the prefix it is mounted under)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Guard:
    """ASGI middleware: refuses, with a JSON error, what :func:`decide` refuses, and
    adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._upgrade(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = decide(self.security, scope["method"], headers, route_path(scope))

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *SECURITY_HEADERS]}
            await send(message)

        if refusal is None:
            await self.app(scope, receive, send_guarded)
            return
        body = msgspec.json.encode(
            {"error": refusal.error, "field": refusal.field, "value": refusal.value}
        )
        extra = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
        await send_guarded(
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
