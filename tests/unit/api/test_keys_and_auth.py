"""API keys (format, storage, verification, cache) and the visibility rules, without a cluster."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from tideflow.api.auth import can_read, can_write
from tideflow.api.keys import ALL_SCOPES, KeyRing, Principal, Scope, key_secret, new_key, parse_key
from tideflow.core.kube import NotFound


class FakeSecrets:
    """Just ``get`` of Secrets, counting reads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads = 0

    async def get(self, resource: object, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        try:
            return self.objects[(namespace, name)]
        except KeyError:
            raise NotFound(404, "NotFound", f"secrets {name} not found") from None


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(fake: FakeSecrets, org: str, user: str, scopes: frozenset[Scope]) -> str:
    key_id, key = new_key(org)
    secret = key_secret(key_id, key, user=user, scopes=scopes)
    fake.objects[(org, secret["metadata"]["name"])] = secret
    return key


def test_keys_name_their_organization_and_id_and_are_unguessable() -> None:
    key_id, key = new_key("team-a")
    assert parse_key(key) == ("team-a", key_id)
    assert len(key.rsplit("_", 1)[1]) == 64
    assert new_key("team-a")[1] != key
    for bad in (
        "",
        "tfk_team-a",
        key + "0",
        key.replace("tfk_", "tfx_"),
        "tfk_Team_" + key_id + "_" + "0" * 64,
    ):
        assert parse_key(bad) is None


def test_the_secret_stores_a_hash_never_the_key() -> None:
    key_id, key = new_key("org")
    secret = key_secret(key_id, key, user="ann", scopes=frozenset({Scope.READ}))
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
        "user": "ann",
        "scopes": "workflows:read",
    }
    assert key not in str(secret)
    assert secret["metadata"]["labels"]["tideflow.io/api-key"] == "true"


async def test_verify_accepts_stored_keys_and_refuses_everything_else() -> None:
    fake = FakeSecrets()
    key = _store(fake, "org", "ann", frozenset({Scope.READ, Scope.EXECUTE}))
    ring = KeyRing(fake, cache_seconds=30)  # type: ignore[arg-type]
    principal = await ring.verify(key)
    assert principal == Principal("ann", "org", frozenset({Scope.READ, Scope.EXECUTE}), parse_key(key)[1])  # type: ignore[index]
    assert not principal.admin
    wrong_secret = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert await ring.verify(wrong_secret) is None
    assert await ring.verify("tfk_org_bcdfghjklm_" + "a" * 64) is None  # no such Secret
    assert await ring.verify("not a key") is None


async def test_verified_keys_are_cached_until_the_ttl_and_revocation_clears_them() -> None:
    fake = FakeSecrets()
    key = _store(fake, "org", "ann", frozenset({Scope.READ}))
    clock = Ticker()
    ring = KeyRing(fake, cache_seconds=30, clock=clock)  # type: ignore[arg-type]
    assert await ring.verify(key) is not None
    assert await ring.verify(key) is not None
    assert fake.reads == 1
    fake.objects.clear()  # revoked elsewhere
    clock.now = 29.0
    assert await ring.verify(key) is not None  # still trusted within the TTL
    clock.now = 31.0
    assert await ring.verify(key) is None
    assert fake.reads == 2

    key = _store(fake, "org", "bob", frozenset({Scope.READ}))
    principal = await ring.verify(key)
    assert principal is not None
    fake.objects.clear()
    ring.forget(principal.key_id)
    assert await ring.verify(key) is None


async def test_the_bootstrap_key_is_an_admin_of_its_organization() -> None:
    fake = FakeSecrets()
    ring = KeyRing(fake)  # type: ignore[arg-type]
    ring.set_bootstrap("a-long-enough-bootstrap-key", "default")
    principal = await ring.verify("a-long-enough-bootstrap-key")
    assert principal is not None
    assert (principal.user, principal.org, principal.admin, principal.scopes) == (
        "admin",
        "default",
        True,
        ALL_SCOPES,
    )
    assert await ring.verify("a-long-enough-bootstrap-kex") is None
    assert fake.reads == 0  # a malformed key never reaches the cluster


def _workflow(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "w"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "user", "admin", "read", "write"),
    [
        ({"owner": "ann"}, "ann", False, True, True),
        ({"owner": "ann"}, "bob", False, False, False),
        ({"owner": "ann", "sharedWith": ["bob"]}, "bob", False, True, False),
        ({"owner": "ann", "isPublic": True}, "carl", False, True, False),
        ({"owner": "ann"}, "root", True, True, True),
        ({}, "ann", False, False, False),  # applied with kubectl: no owner
        ({}, "root", True, True, True),
    ],
)
def test_visibility_rules(spec: dict[str, Any], user: str, admin: bool, read: bool, write: bool) -> None:
    scopes = ALL_SCOPES if admin else frozenset({Scope.READ, Scope.WRITE})
    principal = Principal(user, "org", scopes, "k")
    assert can_read(principal, _workflow(**spec)) is read
    assert can_write(principal, _workflow(**spec)) is write
