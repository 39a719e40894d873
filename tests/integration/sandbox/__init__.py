"""Fidelity tests of the sandbox API server, and the helper they share to install a test CRD."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from tests.integration.conftest import Sandbox
from tests.support import wait_for

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@contextlib.contextmanager
def installed_crd(sandbox: Sandbox, crd: dict[str, Any]) -> Iterator[str]:
    """Create ``crd``, wait until it is Established and served, yield ``/apis/<group>/<version>``."""
    name = crd["metadata"]["name"]
    group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
    plural = crd["spec"]["names"]["plural"]
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        created = client.post(CRDS, json=crd)
        assert created.status_code == 201, created.text

        def established() -> bool:
            got = client.get(f"{CRDS}/{name}").json()
            conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions", [])}
            return conditions.get("Established") == "True"

        wait_for(established, what=f"CRD {name} to be Established")
        wait_for(
            lambda: client.get(f"/apis/{group}/{version}/{plural}").status_code == 200,
            what=f"{plural} to be served",
        )
        try:
            yield f"/apis/{group}/{version}"
        finally:
            client.delete(f"{CRDS}/{name}")
