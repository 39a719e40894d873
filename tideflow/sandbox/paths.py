"""Dotted JSON paths (``.spec.replicas``) as used by scale subresources and printer columns."""

from __future__ import annotations

import copy
from typing import Any


def split(path: str) -> list[str]:
    return [part for part in path.strip().lstrip(".").split(".") if part]


def get(obj: Any, path: str) -> Any:
    current = obj
    for part in split(path):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def with_value(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``obj`` with ``value`` set at ``path``, creating intermediate maps."""
    result = copy.deepcopy(obj)
    current = result
    parts = split(path)
    for part in parts[:-1]:
        child = current.get(part)
        if not isinstance(child, dict):
            child = {}
            current[part] = child
        current = child
    current[parts[-1]] = value
    return result
