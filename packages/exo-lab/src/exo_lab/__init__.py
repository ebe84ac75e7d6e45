"""A local Exoscale zone and the whole autoscaling stack on one machine"""

__version__ = "0.1.0"
