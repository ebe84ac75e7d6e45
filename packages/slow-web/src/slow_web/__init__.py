"""A deliberately slow web app that burns CPU per request, for autoscaling demos"""

__version__ = "0.1.0"
