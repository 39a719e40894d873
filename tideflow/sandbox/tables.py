"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for.

Custom resources get their CRD's ``additionalPrinterColumns`` (evaluated with the small JSONPath
subset kubectl's columns use: ``.a.b``, ``[0]``, ``[*]`` and ``[?(@.k=="v")]``); a few built-in
kinds get the columns a real server prints; every other kind gets Name and Age.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
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


Cell = Callable[[JSON], Any]


def _col(name: str, cell: Cell, column_type: str = "string", priority: int = 0) -> JSON:
    return {
        "name": name,
        "type": column_type,
        "format": "",
        "description": name,
        "priority": priority,
        "cell": cell,
    }


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _pod_ready(pod: JSON) -> str:
    statuses = _get(pod, "status", "containerStatuses") or []
    return f"{sum(1 for c in statuses if c.get('ready'))}/{len(_get(pod, 'spec', 'containers') or [])}"


def _pod_status(pod: JSON) -> str:
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    for container in _get(pod, "status", "containerStatuses") or []:
        reason = _get(container, "state", "waiting", "reason") or _get(
            container, "state", "terminated", "reason"
        )
        if reason:
            return str(reason)
    return str(_get(pod, "status", "phase") or "Pending")


def _ports(service: JSON) -> str:
    ports = _get(service, "spec", "ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _selector(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


_BUILTIN_COLUMNS: dict[tuple[str, str], list[JSON]] = {
    ("", "pods"): [
        _col("Ready", _pod_ready),
        _col("Status", _pod_status),
        _col(
            "Restarts",
            lambda p: sum(c.get("restartCount", 0) for c in _get(p, "status", "containerStatuses") or []),
            "integer",
        ),
        _col("IP", lambda p: _get(p, "status", "podIP") or "<none>", priority=1),
        _col("Node", lambda p: _get(p, "spec", "nodeName") or "<none>", priority=1),
        _col("Nominated Node", lambda p: _get(p, "status", "nominatedNodeName") or "<none>", priority=1),
        _col("Readiness Gates", lambda p: "<none>", priority=1),
    ],
    ("apps", "deployments"): [
        _col(
            "Ready", lambda d: f"{_get(d, 'status', 'readyReplicas') or 0}/{_get(d, 'spec', 'replicas') or 0}"
        ),
        _col("Up-to-date", lambda d: _get(d, "status", "updatedReplicas") or 0, "integer"),
        _col("Available", lambda d: _get(d, "status", "availableReplicas") or 0, "integer"),
        _col(
            "Containers",
            lambda d: ",".join(c["name"] for c in _get(d, "spec", "template", "spec", "containers") or []),
            priority=1,
        ),
        _col(
            "Images",
            lambda d: ",".join(
                c.get("image", "") for c in _get(d, "spec", "template", "spec", "containers") or []
            ),
            priority=1,
        ),
        _col("Selector", lambda d: _selector(_get(d, "spec", "selector", "matchLabels")), priority=1),
    ],
    ("", "services"): [
        _col("Type", lambda s: _get(s, "spec", "type") or "ClusterIP"),
        _col("Cluster-IP", lambda s: _get(s, "spec", "clusterIP") or "<none>"),
        _col("External-IP", lambda s: ",".join(_get(s, "spec", "externalIPs") or []) or "<none>"),
        _col("Port(s)", _ports),
        _col("Selector", lambda s: _selector(_get(s, "spec", "selector")), priority=1),
    ],
    ("", "namespaces"): [_col("Status", lambda n: _get(n, "status", "phase") or "Active")],
    ("", "configmaps"): [
        _col("Data", lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {}), "integer")
    ],
    ("", "secrets"): [
        _col("Type", lambda s: s.get("type", "Opaque")),
        _col("Data", lambda s: len(s.get("data") or {}), "integer"),
    ],
    ("", "events"): [
        _col("Type", lambda e: e.get("type", "")),
        _col("Reason", lambda e: e.get("reason", "")),
        _col(
            "Object",
            lambda e: (
                f"{str(_get(e, 'involvedObject', 'kind') or '').lower()}/"
                f"{_get(e, 'involvedObject', 'name') or ''}"
            ),
        ),
        _col("Message", lambda e: e.get("message", "")),
    ],
}


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
    builtin = _BUILTIN_COLUMNS.get((rt.group, rt.plural), []) if not rt.custom else []
    wide = [c for c in builtin if c["priority"]]
    return [_NAME, *[c for c in builtin if not c["priority"]], _AGE, *wide]


def render_list(rt: ResourceType, listed: JSON) -> JSON:
    """Render a list (or a single object wrapped in one) as a ``Table``."""
    columns = columns_for(rt)
    rows: list[JSON] = []
    for item in listed.get("items", []):
        cells: list[Any] = []
        for column in columns:
            if column is _NAME:
                cells.append(item["metadata"]["name"])
            elif "cell" in column:
                cells.append(column["cell"](item))
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
    definitions = [{k: v for k, v in column.items() if k not in ("jsonPath", "cell")} for column in columns]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {
            k: v for k, v in listed.get("metadata", {}).items() if k in ("resourceVersion", "continue")
        },
        "columnDefinitions": definitions,
        "rows": rows,
    }
