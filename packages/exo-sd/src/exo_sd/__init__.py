"""Prometheus file_sd agent listing the members of an Exoscale instance pool"""

from .agent import Agent, AgentConfig
from .files import write_targets_atomically
from .metrics import SdMetrics
from .targets import TargetGroup, target_groups

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentConfig",
    "SdMetrics",
    "TargetGroup",
    "target_groups",
    "write_targets_atomically",
]
