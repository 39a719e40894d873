"""The standby rule for the resync loop: the replica with the highest live priority reconciles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tideflow.core.kube import NotFound, Resource
from tideflow.operator import peering
from tideflow.operator.main import peering_priority
from tideflow.operator.settings import OperatorSettings

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - dt.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("status", "priority", "expected"),
    [
        ({}, 100, True),
        ({"me": peer(100, 1)}, 100, True),
        ({"me": peer(100, 1), "other": peer(200, 5)}, 100, False),
        ({"me": peer(200, 1), "other": peer(100, 5)}, 200, True),
        ({"me": peer(100, 1), "dead": peer(200, 61)}, 100, True),  # past its lifetime: gone
        ({"me": peer(100, 1), "short": peer(200, 11, lifetime=10)}, 100, True),
        ({"me": peer(100, 1), "garbled": {"priority": 900}}, 100, True),  # no lastseen: not alive
        (
            {
                "me": peer(100, 1),
                "naive": {"priority": 200, "lifetime": 60, "lastseen": "2026-11-22T11:59:30"},
            },
            100,
            False,
        ),
    ],
)
def test_leads(status: dict[str, Any], priority: int, expected: bool) -> None:
    assert peering.leads(status, priority, NOW) is expected


class FakeClient:
    def __init__(self, peering_object: dict[str, Any] | None) -> None:
        self.peering_object = peering_object
        self.asked: list[tuple[str, str | None, str]] = []

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        self.asked.append((resource.plural, namespace, name))
        if self.peering_object is None:
            raise NotFound(404, "NotFound", "no peering")
        return self.peering_object


async def test_is_active_reads_the_namespaced_or_cluster_peering_and_fails_open() -> None:
    standby = FakeClient({"status": {"a": peer(500, 1)}})
    assert not await peering.is_active(standby, "tideflow", "team-a", 100, NOW)  # type: ignore[arg-type]
    assert standby.asked == [("kopfpeerings", "team-a", "tideflow")]
    cluster = FakeClient({"status": {}})
    assert await peering.is_active(cluster, "tideflow", None, 100, NOW)  # type: ignore[arg-type]
    assert cluster.asked == [("clusterkopfpeerings", None, "tideflow")]
    assert await peering.is_active(FakeClient(None), "tideflow", "team-a", 100, NOW)  # type: ignore[arg-type]


def test_peering_priority_is_the_setting_or_a_random_one() -> None:
    assert peering_priority(OperatorSettings(peering_priority=7)) == 7
    drawn = {peering_priority(OperatorSettings()) for _ in range(20)}
    assert len(drawn) == 20
    assert all(1 <= value <= 2**31 - 1 for value in drawn)
