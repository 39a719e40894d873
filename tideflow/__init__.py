"""Tideflow: Kubernetes-native workflow automation (operator, runtime, API and a local sandbox)."""

__version__ = "0.1.0"
