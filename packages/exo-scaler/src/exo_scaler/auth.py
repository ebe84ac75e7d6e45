"""Bearer or Basic credentials on mutating routes, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Authenticator:
    """`token` is the Bearer token and the Basic password; `basic_user` None means any user."""

    def __init__(self, token: str | None, *, basic_user: str | None = None) -> None:
        self._token = token
        self._basic_user = basic_user

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def allows(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return True
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
