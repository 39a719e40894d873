"""Node executors on their own: condition operators, transform, approval decisions, services."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tideflow.runtime.nodes import approval, condition
from tideflow.runtime.nodes.base import (
    Decision,
    EnvSecretResolver,
    Interaction,
    NodeError,
    SecretNotFoundError,
    Services,
)
from tideflow.runtime.ssrf import GuardedTransport

SCOPE: dict[str, Any] = {
    "input": {
        "status": 200,
        "name": "Ada Lovelace",
        "tags": ["a", "b"],
        "empty": "",
        "none": None,
        "obj": {"k": 1},
    },
    "trigger": {"inputs": {"limit": 10}},
}


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("input.status", "equals", 200, True),
        ("input.status", "equals", "200", False),
        ("input.status", "not_equals", 201, True),
        ("input.status", "greater_than", 199, True),
        ("input.status", "greater_than_or_equal", 200, True),
        ("input.status", "less_than", 200, False),
        ("input.status", "less_than_or_equal", 200, True),
        ("input.name", "greater_than", "Ada", True),
        ("input.name", "contains", "Love", True),
        ("input.name", "not_contains", "Babbage", True),
        ("input.tags", "contains", "b", True),
        ("input.obj", "contains", "k", True),
        ("input.status", "contains", 2, False),
        ("input.name", "starts_with", "Ada", True),
        ("input.name", "ends_with", "Ada", False),
        ("input.status", "starts_with", "2", False),
        ("input.status", "in", [200, 204], True),
        ("input.status", "not_in", [200, 204], False),
        ("input.empty", "is_empty", None, True),
        ("input.none", "is_empty", None, True),
        ("input.missing", "is_empty", None, True),
        ("input.tags", "is_not_empty", None, True),
        ("input.none", "exists", None, False),
        ("input.status", "exists", None, True),
        ("input.missing", "not_exists", None, True),
        ("input.missing", "equals", None, True),
        ("{{ input.status }}", "equals", 200, True),
    ],
)
def test_condition_operators(field: str, operator: str, value: Any, expected: bool) -> None:
    assert condition.evaluate({"field": field, "operator": operator, "value": value}, SCOPE) is expected


def test_condition_expressions() -> None:
    assert (
        condition.evaluate({"expression": "input.status == 200 and trigger.inputs.limit > 5"}, SCOPE) is True
    )
    assert condition.evaluate({"expression": "{{ input.missing }}"}, SCOPE) is False
    assert condition.evaluate({"expression": "'b' in input.tags"}, SCOPE) is True


def test_condition_ordering_needs_comparable_values() -> None:
    with pytest.raises(NodeError, match="cannot compare 200 with 'x'"):
        condition.evaluate({"field": "input.status", "operator": "less_than", "value": "x"}, SCOPE)


def interaction(ports: frozenset[str]) -> Interaction:
    return Interaction("ask", {"message": "?"}, {"order": 1}, ports, datetime(2025, 1, 1, tzinfo=UTC))


def test_approval_decisions() -> None:
    approved = approval.resume(interaction(frozenset({"approved"})), Decision(True, "ok", "ann"))
    assert approved.port == "approved"
    assert approved.output == {
        "order": 1,
        "approved": True,
        "comment": "ok",
        "decidedBy": "ann",
        "decidedAt": "2025-01-01T00:00:00+00:00",
    }
    rejected = approval.resume(interaction(frozenset({"approved", "rejected"})), Decision(False))
    assert rejected.port == "rejected"
    with pytest.raises(NodeError, match=r"^rejected$"):
        approval.resume(interaction(frozenset({"approved"})), Decision(False))


def test_decision_from_mapping() -> None:
    assert Decision.from_mapping({"approved": False, "decidedBy": "x", "nodeId": "n"}) == Decision(
        False, None, "x", "n"
    )
    with pytest.raises(ValueError, match=r"decision\.comment must be a string"):
        Decision.from_mapping({"approved": True, "comment": 3})


async def test_env_secret_resolver() -> None:
    resolver = EnvSecretResolver(
        {"TIDEFLOW_SECRET_MY_API_API_TOKEN": "v", "TIDEFLOW_SECRET_MY_API_raw-key": "w"}
    )
    assert await resolver("my-api", "api.token") == "v"
    assert await resolver("my-api", "raw-key") == "w"  # envFrom with the prefix keeps the key as written
    with pytest.raises(SecretNotFoundError, match=r"expected in \$TIDEFLOW_SECRET_OTHER_KEY"):
        await resolver("other", "key")


async def test_services_create_and_close_a_guarded_client() -> None:
    services = Services()
    client = services.http()
    assert services.http() is client
    assert isinstance(client._transport, GuardedTransport)
    assert client.trust_env is False
    await services.aclose()
    assert client.is_closed
    assert services.http_client is None
    given = httpx.AsyncClient()
    shared = Services(http_client=given)
    await shared.aclose()
    assert not given.is_closed  # a client passed in belongs to the caller
    await given.aclose()
