"""Polyculture: a Kubernetes operator for cooperative GPU pools."""

__version__ = "0.1.0"
