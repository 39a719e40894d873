"""A minimal kopf operator used by test_kopf_compat: it marks each Workflow seen and posts an Event."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.create("tideflow.io", "v1alpha1", "workflows")
@kopf.on.update("tideflow.io", "v1alpha1", "workflows")
def observe(body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    patch.status["observedGeneration"] = meta.get("generation")
    patch.status["deploymentStatus"] = "Starting"
    kopf.info(body, reason="Observed", message=f"generation {meta.get('generation')}")
