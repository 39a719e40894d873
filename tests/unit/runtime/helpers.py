"""Test helpers: a virtual-time event loop, workflow builders and fake services.

``run_virtual(coro)`` runs a coroutine on :class:`VirtualTimeLoop`, whose clock jumps straight to the
next timer whenever nothing is ready, so ``asyncio.sleep(3600)`` and ``asyncio.timeout(300)`` take no
real time while keeping their order. It returns the result and the virtual seconds that passed.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from tideflow.core.models import WorkflowDefinition
from tideflow.runtime.nodes.base import SecretNotFoundError, Services
from tideflow.runtime.ssrf import Allowlist, SSRFGuard

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready and a timer is due later, jumps the clock to it."""

    loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0 if timeout is not None else None)
        if not events and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock that starts at 0 and only moves when the loop would wait."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        self._virtual_now = 0.0
        selector.loop = self

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(coro: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """Run ``coro`` to completion in virtual time; return its result and the virtual time it took."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        loop = runner.get_loop()
        start = loop.time()
        result = runner.run(coro)
        return result, loop.time() - start


class FixedClock:
    """A wall clock for log timestamps that ticks one second per reading."""

    def __init__(self) -> None:
        self.current = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class RecordingSleep:
    """The engine's sleep: records each delay and sleeps it on the (virtual) loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds)


class DictSecrets:
    """A secret resolver backed by a dict of ``(name, key) -> value``."""

    def __init__(self, values: Mapping[tuple[str, str], str] | None = None) -> None:
        self.values = dict(values or {})

    async def __call__(self, name: str, key: str) -> str:
        try:
            return self.values[(name, key)]
        except KeyError:
            raise SecretNotFoundError(f"secret {name}/{key} is not available") from None


class DictResolver:
    """A DNS resolver backed by a dict of hostname -> addresses; records the names it resolved."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name: list(addresses) for name, addresses in table.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return self.table[host]


def services(
    *,
    handler: Any = None,
    resolver: Mapping[str, Sequence[str]] | None = None,
    allow: Sequence[str] = (),
    secrets: Mapping[tuple[str, str], str] | None = None,
    seed: int = 1,
    sleep: RecordingSleep | None = None,
) -> Services:
    """Services for tests: no real sleep, DNS, clock, secrets or network."""
    guard = SSRFGuard(
        Allowlist.parse(allow), DictResolver(resolver or {"api.example.com": ["93.184.216.34"]})
    )
    client = (
        None
        if handler is None
        else httpx.AsyncClient(transport=httpx.MockTransport(handler), trust_env=False)
    )
    return Services(
        sleep=sleep or RecordingSleep(),
        now=FixedClock(),
        rng=random.Random(seed),
        secrets=DictSecrets(secrets),
        guard=guard,
        http_client=client,
    )


def definition(
    nodes: Sequence[Mapping[str, Any]],
    connections: Sequence[tuple[str, str] | tuple[str, str, str]] = (),
    **settings: Any,
) -> WorkflowDefinition:
    """Build a definition: connections are ``(source, target)`` or ``(source, port, target)``."""
    wired = []
    for number, connection in enumerate(connections):
        if len(connection) == 2:
            source, target = connection[0], connection[1]
            port = "output"
        else:
            source, port, target = connection[0], connection[1], connection[2]
        wired.append({"id": f"c{number}", "source": source, "sourcePort": port, "target": target})
    return WorkflowDefinition.model_validate(
        {"nodes": list(nodes), "connections": wired, "settings": settings}
    )


def node(
    node_id: str, node_type: str, config: Mapping[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": dict(config or {}), **fields}
