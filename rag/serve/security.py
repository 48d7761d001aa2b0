"""Who may call `rag serve`: loopback by default, a bearer token otherwise, and never another web site.

The API routes (`/api/*`, `/v1/*`) pass these checks, in this order:

1. **Host** (when bound to loopback): the ``Host`` header must name loopback. A page on another
   site that rebinds its DNS name to 127.0.0.1 would otherwise be "same-origin" with this server.
2. **Cross-site**: ``Sec-Fetch-Site: cross-site`` / ``same-site`` or an ``Origin`` other than this
   server's own is refused (403). No CORS headers are ever sent, so browsers keep other sites'
   scripts from reading any reply.
3. **Token** (when one is set): ``Authorization: Bearer <token>``, else 401.
4. **JSON only** for POST: a form (``application/x-www-form-urlencoded``, ``multipart/form-data``,
   ``text/plain``) is what a plain cross-site ``<form>`` can send without a preflight, so POSTs
   must say ``Content-Type: application/json`` (415 otherwise).

The page itself and its assets are public (they hold no data); the page asks for the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "RAG_SERVE_TOKEN"
PROTECTED_PREFIXES = ("/api/", "/v1/")
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name is loopback (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8765`` -> ``::1``, ``localhost:8765`` -> ``localhost``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """ASGI middleware applying the checks above to the API routes."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token or None
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, extra = refusal
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, extra headers) when the request must be refused, else None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.loopback_only and not is_loopback(host_name(host)):
            return 403, f"host {host!r} is not this loopback server — open it as http://127.0.0.1", []
        path: str = scope["path"]
        if not path.startswith(PROTECTED_PREFIXES):
            return None
        site = headers.get("sec-fetch-site")
        if site in ("cross-site", "same-site"):
            return 403, "cross-site requests are refused — use the page this server serves", []
        origin = headers.get("origin")
        if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
            return 403, f"requests from origin {origin} are refused — use the page this server serves", []
        if self.token is not None and not self._authorized(headers.get("authorization", "")):
            return 401, "missing or wrong token — send `Authorization: Bearer <token>`", [
                (b"www-authenticate", b"Bearer")
            ]
        if scope["method"] == "POST":
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return 415, "send the request body as JSON (Content-Type: application/json)", []
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or self.token is None:
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())
