"""Exoscale API v2 client for instance pools, on the official exoscale SDK"""

__version__ = "0.1.0"
