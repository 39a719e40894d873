"""Authentication, scopes and visibility over HTTP: every 401, 403 and 404 the API promises."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Stack, workflow_body


def _create(client: httpx.Client, **fields: object) -> str:
    answer = client.post("/api/v1/workflows", json=workflow_body(**fields))  # type: ignore[arg-type]
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowId"])


def test_requests_without_a_valid_key_are_401(stack: Stack) -> None:
    with stack.client() as anonymous:
        missing = anonymous.get("/api/v1/workflows")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        assert "WWW-Authenticate" in missing.headers
    forged = "tfk_" + stack.org + "_bcdfghjklm_" + "0" * 64
    for key in ("wrong", forged, stack.admin_key + "x"):
        with stack.client(key) as client:
            assert client.get("/api/v1/workflows").status_code == 401


def test_bearer_and_x_api_key_are_the_same_key(stack: Stack) -> None:
    key = stack.key("bearer-user", ("workflows:read",))
    with stack.client(Authorization=f"Bearer {key}") as bearer:
        assert bearer.get("/api/v1/workflows").status_code == 200
    with stack.client(Authorization=f"Basic {key}") as basic:
        assert basic.get("/api/v1/workflows").status_code == 401


def test_the_key_secret_holds_a_hash_not_the_key(stack: Stack) -> None:
    key = stack.key("hash-user", ("workflows:read",))
    key_id = key.split("_")[2]
    with httpx.Client(base_url=stack.sandbox.url) as kube:
        secret = kube.get(f"/api/v1/namespaces/{stack.org}/secrets/tideflow-apikey-{key_id}").json()
    import base64
    import hashlib

    stored = {name: base64.b64decode(value).decode() for name, value in secret["data"].items()}
    assert key not in str(secret)
    assert stored["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert stored["user"] == "hash-user"


@pytest.mark.parametrize(
    ("scopes", "method", "path_template", "expected"),
    [
        (("workflows:read",), "POST", "/api/v1/workflows", 403),
        (("workflows:write",), "GET", "/api/v1/workflows", 403),
        (("workflows:read",), "POST", "/api/v1/workflows/{id}/trigger", 403),
        (("workflows:read",), "POST", "/api/v1/workflows/{id}/execute", 403),
        (("workflows:read", "workflows:write"), "POST", "/api/v1/api-keys", 403),
        (("workflows:execute",), "GET", "/api/v1/workflows/{id}", 403),
        (("workflows:read",), "GET", "/api/v1/workflows/{id}", 200),
    ],
)
def test_each_route_needs_its_scope(
    stack: Stack, scopes: tuple[str, ...], method: str, path_template: str, expected: int
) -> None:
    user = "scoped-" + "-".join(s.split(":")[1] for s in scopes)
    with stack.admin() as admin:
        workflow_id = _create(admin, isPublic=True)
    with stack.client(stack.key(user, scopes)) as client:
        body = workflow_body() if path_template == "/api/v1/workflows" else None
        answer = client.request(method, path_template.format(id=workflow_id), json=body)
    assert answer.status_code == expected, answer.text
    if expected == 403:
        assert answer.json()["error"]["code"] == "forbidden"


def test_visibility_owner_shared_public_and_other_organizations(stack: Stack) -> None:
    alice = stack.client(stack.key("alice"))
    bob = stack.client(stack.key("bob"))
    carol = stack.client(stack.key("carol"))
    outsider = stack.client(stack.key("alice", org=stack.other))
    with alice, bob, carol, outsider:
        private = _create(alice, name="alice private")
        shared = _create(alice, name="alice shared", sharedWith=["bob"])
        public = _create(alice, name="alice public", isPublic=True)

        def visible(client: httpx.Client) -> set[str]:
            listed = client.get("/api/v1/workflows", params={"limit": 100}).json()["workflows"]
            return {w["id"] for w in listed} & {private, shared, public}

        assert visible(alice) == {private, shared, public}
        assert visible(bob) == {shared, public}
        assert visible(carol) == {public}
        assert visible(outsider) == set()

        assert carol.get(f"/api/v1/workflows/{private}").status_code == 404
        assert outsider.get(f"/api/v1/workflows/{public}").status_code == 404
        assert bob.get(f"/api/v1/workflows/{shared}").status_code == 200
        # Shared and public users may read but not change; the owner may.
        assert bob.put(f"/api/v1/workflows/{shared}", json={"description": "bob was here"}).status_code == 403
        assert carol.delete(f"/api/v1/workflows/{public}").status_code == 403
        assert carol.delete(f"/api/v1/workflows/{private}").status_code == 404
        assert alice.put(f"/api/v1/workflows/{shared}", json={"description": "mine"}).status_code == 200
        with stack.admin() as admin:
            assert admin.get(f"/api/v1/workflows/{private}").status_code == 200


def test_revoked_keys_stop_working(stack: Stack) -> None:
    key = stack.key("short-lived", ("workflows:read",))
    with stack.client(key) as client:
        assert client.get("/api/v1/workflows").status_code == 200
        with stack.admin() as admin:
            listed = admin.get("/api/v1/api-keys").json()["keys"]
            key_id = key.split("_")[2]
            assert any(k["keyId"] == key_id and k["user"] == "short-lived" for k in listed)
            assert "apiKey" not in str(listed)
            assert admin.delete(f"/api/v1/api-keys/{key_id}").status_code == 204
        assert client.get("/api/v1/workflows").status_code == 401


def test_the_body_limit_applies_before_authentication(stack: Stack) -> None:
    with stack.client() as anonymous:
        answer = anonymous.post(
            "/api/v1/workflows", content=b"x" * 70_000, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
