"""Executor of ``approval``: pauses the run until a human approves or rejects it.

``execute`` asks for a decision; the engine then returns a run in phase AwaitingInteraction with a
snapshot, and ``resume`` turns the decision into the node's outcome: approved continues on the
``approved`` port, rejected on the ``rejected`` port, or fails the node when nothing is connected to it.
The output is the node's input plus ``approved``, ``comment``, ``decidedBy`` and ``decidedAt``.
"""

from __future__ import annotations

from tideflow.core.templating import to_text
from tideflow.runtime.nodes.base import Decision, Interaction, NodeContext, NodeError, NodeOutcome


async def execute(ctx: NodeContext) -> NodeOutcome:
    request = {
        "message": to_text(ctx.config.get("message", "Approval required")),
        "approvers": list(ctx.config.get("approvers", [])),
    }
    return NodeOutcome(output=None, interaction=request)


def resume(interaction: Interaction, decision: Decision) -> NodeOutcome:
    output = {
        **interaction.input,
        "approved": decision.approved,
        "comment": decision.comment,
        "decidedBy": decision.decided_by,
        "decidedAt": interaction.decided_at.isoformat(),
    }
    if decision.approved:
        return NodeOutcome(output, port="approved")
    if "rejected" in interaction.connected_ports:
        return NodeOutcome(output, port="rejected")
    by = f" by {decision.decided_by}" if decision.decided_by else ""
    comment = f": {decision.comment}" if decision.comment else ""
    raise NodeError(f"rejected{by}{comment}")
