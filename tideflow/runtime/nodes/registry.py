"""The node registry: the implementation of each catalog node type, by type id.

Adding a node type: describe it in ``tideflow.core.catalog`` (ports, config schema), write a module here
with ``async def execute(ctx: NodeContext) -> NodeOutcome``, and add one line below.
``tests/unit/runtime/test_registry.py`` checks that the catalog and this registry list the same types.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from tideflow.runtime.nodes import approval, condition, delay, http_request, log, respond, transform, trigger
from tideflow.runtime.nodes.base import NodeImplementation

IMPLEMENTATIONS: Final[Mapping[str, NodeImplementation]] = MappingProxyType(
    {
        "manual_trigger": NodeImplementation(trigger.execute),
        "webhook_trigger": NodeImplementation(trigger.execute),
        "schedule_trigger": NodeImplementation(trigger.execute),
        "queue_trigger": NodeImplementation(trigger.execute),
        "email_trigger": NodeImplementation(trigger.execute),
        "event_trigger": NodeImplementation(trigger.execute),
        "http_request": NodeImplementation(http_request.execute),
        "condition": NodeImplementation(condition.execute),
        "transform": NodeImplementation(transform.execute),
        "delay": NodeImplementation(delay.execute),
        "log": NodeImplementation(log.execute),
        "respond": NodeImplementation(respond.execute),
        "approval": NodeImplementation(approval.execute, approval.resume),
    }
)
