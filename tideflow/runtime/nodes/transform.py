"""Executor of ``transform``: builds an object from copied input fields (``map``) and values (``set``).

``map`` copies, for each output key, the value of an expression over the node's input
(``{"userId": "body.user.id"}``; an expression that does not resolve gives ``null``). ``set`` holds
templated values the engine has already rendered. With ``includeInput`` the output starts from the
input; ``map`` is applied next and ``set`` last.
"""

from __future__ import annotations

from typing import Any

from tideflow.core.templating import parse_expression
from tideflow.runtime.nodes.base import NodeContext, NodeOutcome


async def execute(ctx: NodeContext) -> NodeOutcome:
    config = ctx.config
    output: dict[str, Any] = dict(ctx.input) if config["includeInput"] else {}
    for key, expression in config.get("map", {}).items():
        output[key] = parse_expression(expression).evaluate(ctx.input)
    output.update(config.get("set", {}))
    return NodeOutcome(output)
