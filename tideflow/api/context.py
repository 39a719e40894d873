"""What every request shares: settings, the Kubernetes client, the key ring, metrics, an HTTP client.

One :class:`Context` is built per application in its lifespan and reached through the
:func:`get_context` dependency, so tests can build an app around any client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request

from tideflow.api.cache import WorkflowCache
from tideflow.api.keys import KeyRing
from tideflow.api.metrics import ApiMetrics
from tideflow.api.settings import ApiSettings
from tideflow.core.clock import Clock, system_clock
from tideflow.core.kube import KubeClient

__all__ = ["Context", "ContextDep", "get_context"]


@dataclass
class Context:
    """Shared per application: settings, clients, key ring, metrics and the held-trigger bound."""

    settings: ApiSettings
    kube: KubeClient
    keys: KeyRing
    metrics: ApiMetrics
    http: httpx.AsyncClient
    workflows: WorkflowCache
    clock: Clock = system_clock
    held: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]
