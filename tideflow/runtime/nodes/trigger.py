"""Executor of every trigger type (manual, webhook, schedule, queue, email, event): it outputs the payload.

The payload is the run's trigger: ``inputs``, ``triggerType``, ``runId`` (and ``run_id``, the spelling
the seed workflows use), plus what the runtime recorded about the event (for a webhook its ``method``,
``path``, ``headers`` and ``query``; for a schedule its ``scheduledTime``). The trigger types differ in
what starts a run, which the runtime and the operator handle; inside a run they behave the same.
"""

from __future__ import annotations

from tideflow.runtime.nodes.base import NodeContext, NodeOutcome


async def execute(ctx: NodeContext) -> NodeOutcome:
    return NodeOutcome(dict(ctx.trigger))
