"""Exoscale API v2 client for instance pools, on the official exoscale SDK."""

from .client import ExoClient
from .errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    ExoApiError,
    NotFoundError,
    OperationTimeoutError,
    UnavailableError,
)
from .models import POOL_BUSY_STATES, InstancePool, Operation, PoolMember
from .retry import NO_RETRY, RetryPolicy
from .settings import ClientSettings, MissingCredentialError

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "POOL_BUSY_STATES",
    "AuthError",
    "BadRequestError",
    "ClientSettings",
    "ConflictError",
    "ExoApiError",
    "ExoClient",
    "InstancePool",
    "MissingCredentialError",
    "NotFoundError",
    "Operation",
    "OperationTimeoutError",
    "PoolMember",
    "RetryPolicy",
    "UnavailableError",
]
