"""Webhook routes and authentication: bearer tokens, HMAC signatures, the replay window and replays."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from starlette.datastructures import Headers

from tests.unit.runtime.helpers import DictSecrets, definition, node
from tideflow.runtime.webhooks import (
    ReplayCache,
    WebhookAuth,
    WebhookAuthError,
    WebhookConfigError,
    WebhookVerifier,
    normalize_path,
    sign,
    webhook_routes,
)

NOW = 1_700_000_000
SECRET = "s3cr3t-signing-key"
TOKEN = "t0ken-value"
BEARER = WebhookAuth.from_config({"type": "bearer", "secretRef": {"name": "hooks", "key": "token"}}, "auth")
HMAC = WebhookAuth.from_config(
    {"type": "hmac", "secretRef": {"name": "hooks", "key": "signing"}, "toleranceSeconds": 300}, "auth"
)


class Clock:
    """Unix time that a test sets."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock | None = None) -> WebhookVerifier:
    secrets = DictSecrets({("hooks", "token"): TOKEN, ("hooks", "signing"): SECRET})
    return WebhookVerifier(secrets, now=clock or Clock())


def signed(body: bytes, timestamp: int = NOW, secret: str = SECRET, *, sent_timestamp: str = "") -> Headers:
    """Headers a sender computes; ``sent_timestamp`` sends another timestamp than the one signed."""
    return Headers(
        {
            "X-Tideflow-Signature": sign(secret, timestamp, body),
            "X-Tideflow-Timestamp": sent_timestamp or str(timestamp),
        }
    )


async def refused(check: WebhookVerifier, auth: WebhookAuth, headers: Headers, body: bytes = b"{}") -> str:
    with pytest.raises(WebhookAuthError) as caught:
        await check.verify(auth, headers, body)
    assert caught.value.status == 401
    return caught.value.message


def test_sign_is_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, b'{"a":1}') == f"sha256={expected}"
    assert sign(SECRET, NOW, b"{}", "sha512").startswith("sha512=")


async def test_a_valid_bearer_token_is_accepted_and_others_are_not() -> None:
    check = verifier()
    await check.verify(BEARER, Headers({"Authorization": f"Bearer {TOKEN}"}), b"")
    await check.verify(BEARER, Headers({"authorization": f"bearer {TOKEN}"}), b"")  # scheme is case-blind
    assert await refused(check, BEARER, Headers({"Authorization": "Bearer wrong"})) == "invalid bearer token"
    assert await refused(check, BEARER, Headers({})) == "a bearer token is required"
    assert (
        await refused(check, BEARER, Headers({"Authorization": f"Basic {TOKEN}"}))
        == "a bearer token is required"
    )


async def test_a_missing_secret_is_a_server_error_not_an_open_door() -> None:
    check = WebhookVerifier(DictSecrets({}), now=Clock())
    with pytest.raises(WebhookAuthError) as caught:
        await check.verify(BEARER, Headers({"Authorization": f"Bearer {TOKEN}"}), b"")
    assert caught.value.status == 500


async def test_a_valid_signature_is_accepted() -> None:
    body = b'{"order": 42}'
    await verifier().verify(HMAC, signed(body), body)
    await verifier().verify(HMAC, signed(body, NOW - 299), body)  # inside the window
    bare = Headers(
        {"X-Tideflow-Signature": sign(SECRET, NOW, body).partition("=")[2], "X-Tideflow-Timestamp": str(NOW)}
    )
    await verifier().verify(HMAC, bare, body)  # the bare hex digest is accepted too


async def test_a_bad_signature_is_refused() -> None:
    body = b'{"order": 42}'
    check = verifier()
    assert await refused(check, HMAC, signed(body, secret="other-key"), body) == "invalid signature"
    assert await refused(check, HMAC, signed(body), b'{"order": 43}') == "invalid signature"  # tampered body
    tampered_time = signed(body, sent_timestamp=str(NOW + 1))
    assert await refused(check, HMAC, tampered_time, body) == "invalid signature"
    assert "are required" in await refused(check, HMAC, Headers({"X-Tideflow-Timestamp": str(NOW)}), body)
    not_a_time = signed(body, sent_timestamp="yesterday")
    assert "Unix time" in await refused(check, HMAC, not_a_time, body)


async def test_an_expired_or_future_timestamp_is_refused() -> None:
    body = b"{}"
    check = verifier()
    assert "replay window" in await refused(check, HMAC, signed(body, NOW - 301), body)
    assert "replay window" in await refused(check, HMAC, signed(body, NOW + 301), body)


async def test_a_replayed_request_is_refused_within_the_window() -> None:
    body = b'{"order": 42}'
    clock = Clock()
    check = verifier(clock)
    headers = signed(body)
    await check.verify(HMAC, headers, body)
    clock.now += 10
    assert "replayed" in await refused(check, HMAC, headers, body)
    clock.now += 300  # and once the window has passed, it is an expired timestamp
    assert "replay window" in await refused(check, HMAC, headers, body)
    await check.verify(HMAC, signed(body, int(clock.now)), body)  # a fresh signature is fine


def test_the_replay_cache_forgets_expired_entries_and_stays_bounded() -> None:
    cache = ReplayCache(max_entries=3)
    assert cache.check_and_add("a", expires_at=10, now=0)
    assert not cache.check_and_add("a", expires_at=10, now=5)
    assert cache.check_and_add("a", expires_at=30, now=11)  # expired: accepted again
    for key in "bcdef":
        assert cache.check_and_add(key, expires_at=100, now=12)
    assert len(cache._seen) <= 3


def hook(node_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return node(node_id, "webhook_trigger", config)


def test_routes_use_the_path_or_the_node_id_and_the_method() -> None:
    routes = webhook_routes(
        definition(
            [
                hook("orders", {"path": "/in/orders/", "method": "post"}),
                hook("ping", {}),
                node("log", "log", {"message": "x"}),
            ],
            [("orders", "log"), ("ping", "log")],
        )
    )
    assert set(routes) == {"in/orders", "ping"}
    assert routes["in/orders"].method == "POST"
    assert routes["ping"].method is None
    assert routes["in/orders"].auth is None
    assert normalize_path(" /a/b/ ") == "a/b"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"auth": {"type": "basic", "secretRef": {"name": "a", "key": "b"}}}, "bearer or hmac"),
        ({"auth": {"type": "bearer"}}, "secretRef"),
        ({"auth": {"type": "hmac", "secretRef": {"name": "a", "key": "b"}, "algorithm": "md5"}}, "algorithm"),
        (
            {"auth": {"type": "hmac", "secretRef": {"name": "a", "key": "b"}, "toleranceSeconds": 0}},
            "1..3600",
        ),
        (
            {"auth": {"type": "hmac", "secretRef": {"name": "a", "key": "b"}, "signatureHeader": "a b"}},
            "header",
        ),
        ({"path": "../etc"}, "segments"),
        ({"auth": "token"}, "must be an object"),
    ],
)
def test_bad_webhook_configs_are_refused_with_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(WebhookConfigError, match=message) as caught:
        webhook_routes(definition([hook("h", config)]))
    assert "spec.nodes[0].config" in str(caught.value)


def test_two_webhooks_cannot_share_a_path() -> None:
    with pytest.raises(WebhookConfigError, match="already used"):
        webhook_routes(definition([hook("a", {"path": "x"}), hook("b", {"path": "/x"})]))
