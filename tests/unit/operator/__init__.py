"""Unit tests of the operator's pure modules: lifecycle policies, child builders, planning, settings.

Nothing here needs a cluster, a process or a clock: every test hands the functions the Workflow as the
API server stores it and the instant to decide at. :func:`stored_workflow` builds such a Workflow from a
manifest in ``examples/``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
NAMESPACE = "acme"
UID = "5b7d3a8e-0c1f-4c55-9a0e-3f6f1d2b9c01"

_CACHE: dict[str, dict[str, Any]] = {}


def stored_workflow(
    example: str = "lifecycle-always-on.yaml",
    *,
    namespace: str = NAMESPACE,
    uid: str = UID,
    generation: int = 1,
    resource_version: str = "1001",
) -> dict[str, Any]:
    """A fresh copy of ``examples/<example>`` with the metadata the API server adds on create."""
    if example not in _CACHE:
        _CACHE[example] = yaml.safe_load((EXAMPLES_DIR / example).read_text(encoding="utf-8"))
    workflow = copy.deepcopy(_CACHE[example])
    workflow["metadata"].update(
        namespace=namespace,
        uid=uid,
        generation=generation,
        resourceVersion=resource_version,
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    return workflow
