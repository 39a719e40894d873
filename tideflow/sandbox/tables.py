"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

Custom resources get their CRD's ``additionalPrinterColumns`` (evaluated with the small JSONPath
subset kubectl's columns use: ``.a.b``, ``[0]``, ``[*]`` and ``[?(@.k=="v")]``); a few built-in
kinds get the columns a real server prints; every other kind gets Name and Age.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from tideflow.sandbox.resources import ResourceType

JSON = dict[str, Any]
_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-]+)|\[(\*|\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]"""
)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, expression: str) -> list[Any]:
    """Evaluate a printer-column JSONPath; returns every match (an empty list when nothing matches)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    current: list[Any] = [obj]
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            return []
        position = match.end()
        key, index, filter_key, filter_value = match.groups()
        following: list[Any] = []
        for value in current:
            if key is not None and isinstance(value, dict) and key in value:
                following.append(value[key])
            elif index == "*" and isinstance(value, list):
                following.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                following.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                for item in value:
                    found: Any = item
                    for part in filter_key.split("."):
                        found = found.get(part) if isinstance(found, dict) else None
                    if found is not None and str(found) == filter_value:
                        following.append(item)
        current = following
    return current


def human_duration(since: str, now: datetime.datetime | None = None) -> str:
    """Age as kubectl prints it (``45s``, ``12m``, ``5h``, ``3d``)."""
    try:
        moment = datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return since
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - moment).total_seconds())
    if seconds < 0:
        return "<invalid>"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 3:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _cell(values: list[Any], column_type: str) -> Any:
    """One cell as kube-apiserver's table convertor builds it: null when the path matches nothing."""
    if not values or values[0] is None:
        return None
    value = values[0]
    if column_type == "date" and isinstance(value, str):
        return human_duration(value)
    if column_type == "string":
        return ",".join(_text(v) for v in values) if len(values) > 1 else _text(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name of the object.",
    "priority": 0,
}
_AGE = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "Time since creation.",
    "priority": 0,
    "jsonPath": ".metadata.creationTimestamp",
}


def _builtin_columns(rt: ResourceType) -> list[JSON]:
    def col(name: str, path: str, column_type: str = "string") -> JSON:
        return {
            "name": name,
            "type": column_type,
            "format": "",
            "description": name,
            "priority": 0,
            "jsonPath": path,
        }

    columns = {
        ("", "pods"): [
            col("Ready", ".status.containerStatuses[*].ready"),
            col("Status", ".status.phase"),
            col("Restarts", ".status.containerStatuses[0].restartCount", "integer"),
            col("IP", ".status.podIP"),
        ],
        ("apps", "deployments"): [
            col("Ready", ".status.readyReplicas", "integer"),
            col("Up-to-date", ".status.updatedReplicas", "integer"),
            col("Available", ".status.availableReplicas", "integer"),
        ],
        ("", "services"): [
            col("Type", ".spec.type"),
            col("Cluster-IP", ".spec.clusterIP"),
            col("Port(s)", ".spec.ports[*].port"),
        ],
        ("", "namespaces"): [col("Status", ".status.phase")],
        ("", "events"): [
            col("Type", ".type"),
            col("Reason", ".reason"),
            col("Object", ".involvedObject.name"),
            col("Message", ".message"),
        ],
    }
    return columns.get((rt.group, rt.plural), [])


def columns_for(rt: ResourceType) -> list[JSON]:
    if rt.custom and rt.printer_columns:
        extra = [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
                "jsonPath": c["jsonPath"],
            }
            for c in rt.printer_columns
        ]
        return [_NAME, *extra]
    return [_NAME, *_builtin_columns(rt), _AGE]


def render_list(rt: ResourceType, listed: JSON) -> JSON:
    """Render a list (or a single object wrapped in one) as a ``Table``."""
    columns = columns_for(rt)
    rows: list[JSON] = []
    for item in listed.get("items", []):
        cells: list[Any] = []
        for column in columns:
            if column is _NAME:
                cells.append(item["metadata"]["name"])
            else:
                cells.append(_cell(jsonpath(item, column["jsonPath"]), column["type"]))
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item["metadata"],
                },
            }
        )
    definitions = [{k: v for k, v in column.items() if k != "jsonPath"} for column in columns]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {
            k: v for k, v in listed.get("metadata", {}).items() if k in ("resourceVersion", "continue")
        },
        "columnDefinitions": definitions,
        "rows": rows,
    }
