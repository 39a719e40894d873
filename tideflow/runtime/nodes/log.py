"""Executor of ``log``: writes its rendered ``message`` to the run log at ``level``."""

from __future__ import annotations

from tideflow.runtime.nodes.base import NodeContext, NodeOutcome


async def execute(ctx: NodeContext) -> NodeOutcome:
    message: str = ctx.config["message"]
    level: str = ctx.config["level"]
    ctx.emit_log(level, message)
    return NodeOutcome({"message": message, "level": level})
