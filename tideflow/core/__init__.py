"""Shared pieces every Tideflow component may import: resource models, names, labels and helpers."""
