"""API keys: their format, how they are stored (hashed, in Secrets) and how a presented key is verified.

A key reads ``tfk_<organization>_<id>_<secret>``: the organization (a namespace) and the id locate the
Secret ``tideflow-apikey-<id>`` in that namespace without any cluster-wide read, and the 256-bit random
secret makes the key unguessable. The Secret holds only the SHA-256 of the whole key (a fast hash is
right for a random secret of this length: there is nothing to brute-force), with the user, the scopes
and whether the key is an organization admin's. Verification compares hashes in constant time.

The bootstrap key (``TIDEFLOW_BOOTSTRAP_API_KEY`` or the Secret named by ``TIDEFLOW_BOOTSTRAP_SECRET``)
may be any string of 16+ characters; it is kept in memory as its hash only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from tideflow.core import names
from tideflow.core.kube import SECRETS, KubeClient, NotFound
from tideflow.core.naming import random_suffix

__all__ = [
    "ALL_SCOPES",
    "KeyRing",
    "Principal",
    "Scope",
    "hash_key",
    "key_secret",
    "new_key",
    "parse_key",
]

LABEL_API_KEY: Final = f"{names.GROUP}/api-key"
SECRET_PREFIX: Final = "tideflow-apikey-"  # noqa: S105 - a name prefix, not a password
_KEY = re.compile(
    r"^tfk_(?P<org>[a-z0-9]([-a-z0-9]*[a-z0-9])?)_(?P<id>[a-z0-9]{10})_(?P<secret>[0-9a-f]{64})$"
)


class Scope(StrEnum):
    """What a key may do."""

    READ = "workflows:read"
    WRITE = "workflows:write"
    EXECUTE = "workflows:execute"
    ADMIN = "admin"
    """Manage API keys and see every workflow of the organization; the bootstrap key has it."""


ALL_SCOPES: Final = frozenset(Scope)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of an organization, with the scopes of the key used."""

    user: str
    org: str
    scopes: frozenset[Scope]
    key_id: str

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(org: str) -> tuple[str, str]:
    """A fresh ``(key id, key)`` for an organization."""
    key_id = random_suffix(10)
    return key_id, f"tfk_{org}_{key_id}_{secrets.token_hex(32)}"


def parse_key(key: str) -> tuple[str, str] | None:
    """``(organization, key id)`` of a well-formed key, else ``None``."""
    match = _KEY.match(key)
    return (match["org"], match["id"]) if match else None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def key_secret(
    key_id: str, key: str, *, user: str, scopes: frozenset[Scope], description: str = ""
) -> dict[str, Any]:
    """The Secret that stores a key: its hash, never the key."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_PREFIX + key_id,
            "labels": {LABEL_API_KEY: "true", names.LABEL_PART_OF: names.PART_OF},
            "annotations": {f"{names.GROUP}/description": description} if description else {},
        },
        "type": "Opaque",
        "data": {
            "sha256": _b64(hash_key(key)),
            "user": _b64(user),
            "scopes": _b64(" ".join(sorted(scopes))),
        },
    }


def _decode(data: Mapping[str, str], field_name: str) -> str:
    return base64.b64decode(data.get(field_name) or "").decode()


def principal_from_secret(secret: Mapping[str, Any], org: str) -> tuple[str, Principal]:
    """``(stored hash, principal)`` from a key Secret; raises ``ValueError`` if it is not one."""
    data = secret.get("data") or {}
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_API_KEY) != "true":
        raise ValueError("not an API key Secret")
    scopes = frozenset(Scope(s) for s in _decode(data, "scopes").split() if s in {v.value for v in Scope})
    name = str((secret.get("metadata") or {}).get("name") or "")
    return _decode(data, "sha256"), Principal(
        user=_decode(data, "user"), org=org, scopes=scopes, key_id=name.removeprefix(SECRET_PREFIX)
    )


@dataclass
class KeyRing:
    """Verifies presented keys against their Secrets, trusting a verified key for ``cache_seconds``."""

    kube: KubeClient
    cache_seconds: float = 30.0
    bootstrap: tuple[str, Principal] | None = None
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)

    def set_bootstrap(self, key: str, org: str) -> None:
        self.bootstrap = (hash_key(key), Principal("admin", org, ALL_SCOPES, "bootstrap"))

    async def verify(self, key: str) -> Principal | None:
        """The key's principal, or ``None`` when the key is unknown, malformed or revoked."""
        digest = hash_key(key)
        if self.bootstrap is not None and hmac.compare_digest(digest, self.bootstrap[0]):
            return self.bootstrap[1]
        cached = self._cache.get(digest)
        now = self.clock()
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        parsed = parse_key(key)
        if parsed is None:
            return None
        org, key_id = parsed
        try:
            secret = await self.kube.get(SECRETS, org, SECRET_PREFIX + key_id)
            stored, principal = principal_from_secret(secret, org)
        except (NotFound, ValueError, UnicodeDecodeError):
            self._cache.pop(digest, None)
            return None
        if not hmac.compare_digest(digest, stored):
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, principal)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache at once (this process; others within ``cache_seconds``)."""
        for digest, (_, principal) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]
