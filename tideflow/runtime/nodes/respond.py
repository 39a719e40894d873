"""Executor of ``respond``: sets the reply to the webhook request that started the run.

The engine reports the reply as soon as the node runs (a progress event), so the runtime can answer
the caller while the rest of the run continues; when several ``respond`` nodes run, the first wins.
"""

from __future__ import annotations

from tideflow.core.templating import to_text
from tideflow.runtime.nodes.base import NodeContext, NodeOutcome, WebhookResponse


async def execute(ctx: NodeContext) -> NodeOutcome:
    config = ctx.config
    response = WebhookResponse(
        status=config["status"],
        headers={str(name): to_text(value) for name, value in config.get("headers", {}).items()},
        body=config.get("body"),
    )
    ctx.set_response(response)
    return NodeOutcome({"status": response.status, "headers": response.headers, "body": response.body})
