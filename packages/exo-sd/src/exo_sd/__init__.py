"""Prometheus file_sd agent listing the members of an Exoscale instance pool"""

__version__ = "0.1.0"
