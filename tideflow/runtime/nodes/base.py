"""What a node executor receives and returns, and the services (clock, HTTP, secrets) it may use.

An executor is ``async def execute(ctx: NodeContext) -> NodeOutcome``. The engine has already
rendered the node's config (every string with ``{{ }}`` except the type's ``expression_keys``),
checked it against the catalog schema and filled in the schema defaults, and assembled the node's
input. An executor raises :class:`NodeError` for an expected failure (``retryable`` says whether
another attempt could succeed); anything else it raises counts as a retryable failure too.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from tideflow.core.catalog import NodeType, secret_env_prefix, secret_env_var
from tideflow.runtime.ssrf import GuardedTransport, SSRFGuard

__all__ = [
    "Decision",
    "EnvSecretResolver",
    "Interaction",
    "NodeContext",
    "NodeError",
    "NodeExecutor",
    "NodeImplementation",
    "NodeOutcome",
    "NodeResumer",
    "SecretNotFoundError",
    "SecretResolver",
    "Services",
    "WebhookResponse",
]


class NodeError(Exception):
    """An expected node failure with a message fit for the run log (never a secret)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class SecretNotFoundError(LookupError):
    """A Secret key a node refers to is not available to the runtime."""


class SecretResolver(Protocol):
    """Returns the value of key ``key`` of Secret ``name``; raises :class:`SecretNotFoundError`."""

    async def __call__(self, name: str, key: str) -> str: ...


class EnvSecretResolver:
    """Reads Secret keys from ``TIDEFLOW_SECRET_<NAME>_<KEY>`` environment variables (the default).

    The key is looked up normalized (``..._API_TOKEN``) and then as written after the prefix
    (``..._api.token``, what ``envFrom`` with the prefix ``TIDEFLOW_SECRET_<NAME>_`` gives).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def __call__(self, name: str, key: str) -> str:
        variable = secret_env_var(name, key)
        for candidate in (variable, secret_env_prefix(name) + key):
            value = self._environ.get(candidate)
            if value is not None:
                return value
        raise SecretNotFoundError(f"secret {name}/{key} is not available (expected in ${variable})")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """What the engine and the executors use from the outside world; every piece is injectable.

    Tests pass a recording ``sleep``, a fixed ``now``, a seeded ``rng``, a dict-backed secret resolver,
    and an ``http_client`` over ``httpx.MockTransport`` with a guard whose resolver is a dict.
    """

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], datetime] = _utcnow
    rng: random.Random = field(default_factory=random.Random)
    """Source of the retry jitter."""
    secrets: SecretResolver = field(default_factory=EnvSecretResolver)
    guard: SSRFGuard = field(default_factory=SSRFGuard.from_env)
    http_client: httpx.AsyncClient | None = None
    """Client for HTTP nodes; by default one is created on first use over a :class:`GuardedTransport`."""
    _owns_client: bool = field(default=False, init=False, repr=False)

    def http(self) -> httpx.AsyncClient:
        if self.http_client is None:
            self.http_client = httpx.AsyncClient(transport=GuardedTransport(self.guard), trust_env=False)
            self._owns_client = True
        return self.http_client

    async def aclose(self) -> None:
        """Close the HTTP client if these services created it."""
        if self._owns_client and self.http_client is not None:
            await self.http_client.aclose()
            self.http_client = None
            self._owns_client = False


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """The reply a ``respond`` node sets for the webhook request that started the run."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """What an executor returns: its output, the output port it continues on, or a pause."""

    output: Any
    port: str = "output"
    interaction: Mapping[str, Any] | None = None
    """Set to pause the run for a human decision: what to ask (shown by the API and the CLI)."""


@dataclass(slots=True)
class NodeContext:
    """Everything one node execution sees."""

    node_id: str
    node_type: NodeType
    config: dict[str, Any]
    """Rendered, checked, with schema defaults; ``expression_keys`` are left as written."""
    input: dict[str, Any]
    trigger: Mapping[str, Any]
    """The run's trigger payload (also ``{{ trigger }}``)."""
    scope: Mapping[str, Any]
    """What ``{{ }}`` expressions see: ``trigger``, ``run``, ``input``, ``nodes`` and each node's id."""
    attempt: int
    connected_ports: frozenset[str]
    services: Services
    emit_log: Callable[[str, str], None]
    """``(level, message)`` to the run log."""
    set_response: Callable[[WebhookResponse], None]


@dataclass(frozen=True, slots=True)
class Decision:
    """A human's answer to a paused node (an approval)."""

    approved: bool
    comment: str | None = None
    decided_by: str | None = None
    node_id: str | None = None
    """Which paused node the decision is for; needed only when several are waiting."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Decision:
        """Read the API's JSON form ``{approved, comment, decidedBy, nodeId}``; ValueError if malformed."""
        approved = data.get("approved")
        if not isinstance(approved, bool):
            raise ValueError("decision.approved must be true or false")
        fields: dict[str, str | None] = {}
        for key, attribute in (("comment", "comment"), ("decidedBy", "decided_by"), ("nodeId", "node_id")):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"decision.{key} must be a string")
            fields[attribute] = value
        return cls(approved, **fields)


@dataclass(frozen=True, slots=True)
class Interaction:
    """A paused node as a resumer sees it."""

    node_id: str
    request: Mapping[str, Any]
    input: Mapping[str, Any]
    connected_ports: frozenset[str]
    decided_at: datetime


NodeExecutor = Callable[[NodeContext], Awaitable[NodeOutcome]]
NodeResumer = Callable[[Interaction, Decision], NodeOutcome]


@dataclass(frozen=True, slots=True)
class NodeImplementation:
    """A node type's code: how to execute it and, for types that pause, how to resume it."""

    execute: NodeExecutor
    resume: NodeResumer | None = None
