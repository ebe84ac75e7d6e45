"""A local Exoscale zone: the v2 operations exo-autoscale uses, signed and shaped like Exoscale.

Everything a caller needs is importable from here; the submodules are the package's own.
"""

from .api import ZoneApi, create_zone_app
from .catalog import INSTANCE_TYPES, InstanceType, instance_type_by_name
from .faults import FaultPlan, OperationOutcome, OutcomeFault
from .iam import Policy, PolicyError, load_policy
from .local import LocalZone, new_credentials, random_member_network
from .records import (
    AddressPool,
    HealthCheck,
    InstanceSnapshot,
    OperationSnapshot,
    Pool,
    PoolSnapshot,
    ServiceSnapshot,
    ZoneError,
)
from .runtime import MemberRuntime, RecordRuntime
from .serving import base_url, bind, make_server, serve_in_thread
from .timings import ZoneTimings
from .zone import HealthSource, Zone

__version__ = "0.1.0"
__all__ = [
    "INSTANCE_TYPES",
    "AddressPool",
    "FaultPlan",
    "HealthCheck",
    "HealthSource",
    "InstanceSnapshot",
    "InstanceType",
    "LocalZone",
    "MemberRuntime",
    "OperationOutcome",
    "OperationSnapshot",
    "OutcomeFault",
    "Policy",
    "PolicyError",
    "Pool",
    "PoolSnapshot",
    "RecordRuntime",
    "ServiceSnapshot",
    "Zone",
    "ZoneApi",
    "ZoneError",
    "ZoneTimings",
    "base_url",
    "bind",
    "create_zone_app",
    "instance_type_by_name",
    "load_policy",
    "make_server",
    "new_credentials",
    "random_member_network",
    "serve_in_thread",
]
