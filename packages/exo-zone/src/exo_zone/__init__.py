"""A local Exoscale zone: the v2 operations exo-autoscale uses, signed and shaped like Exoscale."""

from .faults import FaultPlan
from .iam import Policy, PolicyError, load_policy
from .local import LocalZone, new_credentials, random_member_network
from .runtime import MemberRuntime, RecordRuntime
from .zone import HealthCheck, Zone, ZoneError, ZoneTimings

__version__ = "0.1.0"
__all__ = [
    "FaultPlan",
    "HealthCheck",
    "LocalZone",
    "MemberRuntime",
    "Policy",
    "PolicyError",
    "RecordRuntime",
    "Zone",
    "ZoneError",
    "ZoneTimings",
    "load_policy",
    "new_credentials",
    "random_member_network",
]
