"""Bearer or Basic credentials on mutating routes, compared in constant time.

`Authenticator` is the check; `AuthMiddleware` puts it in front of a Starlette app's protected
paths. Running without authentication means not adding the middleware at all.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Collection, Mapping

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Authenticator:
    """`token` is the Bearer token and the Basic password; `basic_user` None means any user."""

    def __init__(self, token: str, *, basic_user: str | None = None) -> None:
        if not token:
            raise ValueError("an authenticator needs a token")
        self._token = token
        self._basic_user = basic_user

    def allows(self, headers: Mapping[str, str]) -> bool:
        header = headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer":
            return _same(credentials, self._token)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, colon, password = decoded.partition(":")
            if not colon:
                return False
            user_ok = self._basic_user is None or _same(user, self._basic_user)
            # Both compares always run so the answer time does not tell which part was wrong.
            password_ok = _same(password, self._token)
            return user_ok and password_ok
        return False


Refused = Callable[[Scope], None]


class AuthMiddleware:
    """Pure ASGI middleware: requests to a `protected` path need credentials `authenticator`
    allows, or end in 401 before any route (or body reading) runs; other paths pass.

    Pure ASGI rather than BaseHTTPMiddleware so request bodies still stream to the handlers
    (the body limit is enforced while reading). `on_refused` sees each refused request's
    scope, e.g. to count it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        protected: Collection[str],
        realm: str = "exo-scaler",
        on_refused: Refused | None = None,
    ) -> None:
        self._app = app
        self._authenticator = authenticator
        self._protected = frozenset(protected)
        self._challenge = f'Bearer realm="{realm}", Basic realm="{realm}"'
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._protected:
            await self._app(scope, receive, send)
            return
        if self._authenticator.allows(Headers(scope=scope)):
            await self._app(scope, receive, send)
            return
        if self._on_refused is not None:
            self._on_refused(scope)
        response = JSONResponse(
            {"error": "missing or wrong credentials"},
            status_code=401,
            headers={"WWW-Authenticate": self._challenge},
        )
        await response(scope, receive, send)
