"""The HTTP edge: a JSON API, Server-Sent Events, the event stream over a WebSocket
(:mod:`actorwork.web.ws`) with a browser module for it (``static/actorwork.js``), and
Prometheus metrics.

Needs the ``web`` extra (``pip install 'actorwork[web]'``). See :mod:`actorwork.web.app`.
"""

from actorwork.web.app import ApiError, create_app
from actorwork.web.security import Security

__all__ = ["ApiError", "Security", "create_app"]
