"""Executor of ``condition``: tests a value and continues on the ``true`` or the ``false`` port.

Two forms. ``{expression}``: any expression of the template language (``n1.status == 200 and
trigger.inputs.force``), its truth decides. ``{field, operator, value}``: ``field`` is an expression
giving the value to test, ``value`` the (templated) value it is compared with. The output is the
node's input plus ``result`` (the boolean), so data flows through a condition unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from tideflow.core.templating import parse_expression, values_equal
from tideflow.runtime.nodes.base import NodeContext, NodeError, NodeOutcome

_MISSING: Final = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        if (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
            return test(left, right)
        raise NodeError(f"cannot compare {left!r} with {right!r}: both must be numbers or both strings")

    return compare


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(values_equal(element, item) for element in container)
    return False


def _is_empty(value: Any) -> bool:
    return (
        value is _MISSING or value is None or (isinstance(value, str | list | tuple | Mapping) and not value)
    )


_BINARY: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "equals": values_equal,
    "not_equals": lambda left, right: not values_equal(left, right),
    "greater_than": _ordered(lambda left, right: left > right),
    "greater_than_or_equal": _ordered(lambda left, right: left >= right),
    "less_than": _ordered(lambda left, right: left < right),
    "less_than_or_equal": _ordered(lambda left, right: left <= right),
    "contains": _contains,
    "not_contains": lambda left, right: not _contains(left, right),
    "starts_with": lambda left, right: (
        isinstance(left, str) and isinstance(right, str) and left.startswith(right)
    ),
    "ends_with": lambda left, right: (
        isinstance(left, str) and isinstance(right, str) and left.endswith(right)
    ),
    "in": lambda left, right: _contains(right, left),
    "not_in": lambda left, right: not _contains(right, left),
}
_UNARY: Final[dict[str, Callable[[Any], bool]]] = {
    "is_empty": _is_empty,
    "is_not_empty": lambda value: not _is_empty(value),
    "exists": lambda value: value is not _MISSING and value is not None,
    "not_exists": lambda value: value is _MISSING or value is None,
}


def evaluate(config: Mapping[str, Any], scope: Mapping[str, Any]) -> bool:
    """The condition's truth for a rendered config (``value`` rendered, ``field``/``expression`` not)."""
    if "expression" in config:
        return bool(parse_expression(config["expression"]).evaluate(scope))
    operator: str = config["operator"]
    subject = parse_expression(config["field"]).evaluate(scope, missing=_MISSING)
    if operator in _UNARY:
        return _UNARY[operator](subject)
    return _BINARY[operator](None if subject is _MISSING else subject, config.get("value"))


async def execute(ctx: NodeContext) -> NodeOutcome:
    result = evaluate(ctx.config, ctx.scope)
    return NodeOutcome({**ctx.input, "result": result}, port="true" if result else "false")
