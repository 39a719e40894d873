"""Executor of ``delay``: waits ``seconds`` (through the injectable sleep), then passes its input on."""

from __future__ import annotations

from tideflow.runtime.nodes.base import NodeContext, NodeOutcome


async def execute(ctx: NodeContext) -> NodeOutcome:
    await ctx.services.sleep(float(ctx.config["seconds"]))
    return NodeOutcome(dict(ctx.input))
