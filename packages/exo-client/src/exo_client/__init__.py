"""Exoscale API v2 client for instance pools, on the official exoscale SDK."""

from .client import ExoClient, pool_health_from
from .errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    ExoApiError,
    NotFoundError,
    OperationTimeoutError,
    QuotaExceededError,
    UnavailableError,
)
from .models import (
    POOL_BUSY_STATES,
    POOL_UNHEALTHY_STATES,
    InstancePool,
    Operation,
    PoolMember,
    Quota,
)
from .retry import NO_RETRY, RetryPolicy, sdk_poll_interval
from .settings import ClientSettings, MissingCredentialError

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "POOL_BUSY_STATES",
    "POOL_UNHEALTHY_STATES",
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
    "Quota",
    "QuotaExceededError",
    "RetryPolicy",
    "UnavailableError",
    "pool_health_from",
    "sdk_poll_interval",
]
