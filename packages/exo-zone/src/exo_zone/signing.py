"""EXO2-HMAC-SHA256 request signatures, verified the way Exoscale documents them.

The signed message is five lines joined by "\\n":
  "<METHOD> <path>", the raw body, the values of the signed query arguments concatenated in
  the order of their sorted names, the signed headers (none today: an empty line), and the
  expiry as a UNIX timestamp. The header carries `credential`, `signed-query-args`, `expires`
  and the base64 HMAC-SHA256 `signature`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

SCHEME = "EXO2-HMAC-SHA256"


class SignatureError(Exception):
    """The request is not signed by a known key, or not signed correctly."""


@dataclass(frozen=True)
class ParsedAuthorization:
    credential: str
    signed_query_args: tuple[str, ...]
    expires: int
    signature: bytes


def parse_authorization(header: str | None) -> ParsedAuthorization:
    if not header:
        raise SignatureError("missing Authorization header")
    scheme, _, params = header.partition(" ")
    if scheme != SCHEME:
        raise SignatureError(f"unsupported authorization scheme {scheme!r}")
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Authorization header")
        fields[name] = value
    try:
        return ParsedAuthorization(
            credential=fields["credential"],
            signed_query_args=tuple(a for a in fields.get("signed-query-args", "").split(";") if a),
            expires=int(fields["expires"]),
            signature=base64.b64decode(fields["signature"], validate=True),
        )
    except (KeyError, ValueError) as exc:
        raise SignatureError("malformed Authorization header") from exc


def _signed_query_values(query_string: str, names: tuple[str, ...]) -> bytes:
    params = parse_qs(query_string)
    if sorted(params) != list(names):
        raise SignatureError("query arguments do not match signed-query-args")
    return "".join(params[n][0] for n in names if len(params[n]) == 1).encode()


def signature_message(
    method: str, path: str, body: bytes, query_values: bytes, expires: int
) -> bytes:
    return b"\n".join([f"{method} {path}".encode(), body, query_values, b"", str(expires).encode()])


def sign(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def verify_request(
    *,
    method: str,
    path: str,
    query_string: str,
    body: bytes,
    authorization: str | None,
    secrets: Mapping[str, str],
    now: float | None = None,
) -> str:
    """Return the API key that signed the request, or raise SignatureError."""
    auth = parse_authorization(authorization)
    if auth.expires < (time.time() if now is None else now):
        raise SignatureError("request signature expired")
    secret = secrets.get(auth.credential)
    if secret is None:
        raise SignatureError("unknown API key")
    message = signature_message(
        method, path, body, _signed_query_values(query_string, auth.signed_query_args), auth.expires
    )
    if not hmac.compare_digest(sign(secret, message), auth.signature):
        raise SignatureError("invalid request signature")
    return auth.credential
