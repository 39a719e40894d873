"""The http_request node against an in-process httpx.MockTransport, with the SSRF guard in the path."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest

from tests.unit.runtime.helpers import definition, node, run_virtual, services
from tideflow.core.models import NodeRunLog, RunPhase
from tideflow.runtime.engine import RunResult, TriggerEvent, WorkflowEngine
from tideflow.runtime.nodes import http_request

Handler = Callable[[httpx.Request], httpx.Response]
PUBLIC = {"api.example.com": ["93.184.216.34"], "other.example.org": ["8.8.8.8", "2606:4700:4700::1111"]}


def call(
    config: dict[str, Any],
    handler: Handler,
    *,
    inputs: dict[str, Any] | None = None,
    resolver: dict[str, list[str]] | None = None,
    allow: Sequence[str] = (),
    secrets: dict[tuple[str, str], str] | None = None,
) -> tuple[RunResult, NodeRunLog]:
    engine = WorkflowEngine(
        definition([node("t", "manual_trigger"), node("call", "http_request", config)], [("t", "call")]),
        services=services(handler=handler, resolver=resolver or PUBLIC, allow=allow, secrets=secrets),
    )
    result, _ = run_virtual(engine.run(TriggerEvent(inputs=inputs or {}, run_id="r")))
    return result, next(log for log in result.nodes if log.node_id == "call")


def test_get_with_templated_url_query_and_headers_parses_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 7, "tags": ["a"]}, headers={"X-Trace": "abc"})

    result, log = call(
        {
            "url": "https://api.example.com/users/{{ trigger.inputs.user }}",
            "query": {"expand": "all", "page": 2, "ids": [1, 2], "flag": True},
            "headers": {"X-Caller": "{{ run.id }}", "X-Count": 3},
        },
        handler,
        inputs={"user": "u1"},
    )
    assert result.phase is RunPhase.COMPLETED
    assert log.output["status"] == 200
    assert log.output["body"] == {"id": 7, "tags": ["a"]}
    assert log.output["headers"]["x-trace"] == "abc"
    request = seen[0]
    assert request.method == "GET"
    assert str(request.url) == "https://api.example.com/users/u1?expand=all&page=2&ids=1&ids=2&flag=true"
    assert request.headers["X-Caller"] == "r"
    assert request.headers["X-Count"] == "3"


def test_post_sends_objects_as_json_and_strings_as_is() -> None:
    bodies: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.headers.get("content-type"), request.content))
        return httpx.Response(201, text="created")

    _, log = call(
        {"method": "POST", "url": "https://api.example.com/x", "body": {"n": "{{ trigger.inputs.n }}"}},
        handler,
        inputs={"n": 5},
    )
    assert log.output == {"status": 201, "headers": log.output["headers"], "body": "created"}
    assert bodies[0] == ("application/json", b'{"n":5}')
    call({"method": "PUT", "url": "https://api.example.com/x", "body": "raw text"}, handler)
    assert bodies[1] == (None, b"raw text")


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        ({"type": "bearer"}, "authorization", "Bearer s3cret"),
        (
            {"type": "basic", "username": "bot"},
            "authorization",
            "Basic " + base64.b64encode(b"bot:s3cret").decode(),
        ),
        ({"type": "header", "header": "X-Api-Key"}, "x-api-key", "s3cret"),
    ],
)
def test_auth_from_a_secret_never_reaches_the_output(
    auth: dict[str, Any], header: str, expected: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    config = {
        "url": "https://api.example.com/x",
        "auth": {**auth, "secretRef": {"name": "api", "key": "token"}},
    }
    result, _ = call(config, handler, secrets={("api", "token"): "s3cret"})
    assert seen[0].headers[header] == expected
    assert "s3cret" not in json.dumps([entry.model_dump(mode="json") for entry in result.nodes])


def test_a_missing_secret_fails_without_retrying() -> None:
    config = {
        "url": "https://api.example.com/x",
        "auth": {"type": "bearer", "secretRef": {"name": "api", "key": "t"}},
    }
    result, log = call(config, lambda request: httpx.Response(200))
    assert result.phase is RunPhase.FAILED
    assert log.attempts == 1
    assert log.error == "secret api/t is not available"


def test_error_statuses_fail_unless_fail_on_status_is_off() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "no such user"})

    result, log = call({"url": "https://api.example.com/u?token=hidden"}, handler)
    assert result.phase is RunPhase.FAILED
    assert log.error == 'GET https://api.example.com/u answered 404 Not Found: {"error":"no such user"}'
    result, log = call({"url": "https://api.example.com/u", "failOnStatus": False}, handler)
    assert result.phase is RunPhase.COMPLETED
    assert log.output["status"] == 404
    assert log.output["body"] == {"error": "no such user"}


@pytest.mark.parametrize(
    ("mode", "content_type", "content", "expected"),
    [
        ("auto", "application/problem+json", b'{"a": 1}', {"a": 1}),
        ("auto", "application/json", b"not json", "not json"),
        ("auto", "application/json", b"", ""),
        ("auto", "text/plain; charset=latin-1", "caf\u00e9".encode("latin-1"), "caf\u00e9"),
        ("text", "application/json", b'{"a": 1}', '{"a": 1}'),
        ("json", "text/plain", b"[1, 2]", [1, 2]),
        ("json", "text/plain", b"", None),
    ],
)
def test_response_parsing(mode: str, content_type: str, content: bytes, expected: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"Content-Type": content_type})

    _, log = call({"url": "https://api.example.com/x", "responseType": mode}, handler)
    assert log.output["body"] == expected


def test_json_mode_refuses_a_body_that_is_not_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    _, log = call({"url": "https://api.example.com/x", "responseType": "json"}, handler)
    assert log.error == "response body is not JSON (Content-Type text/plain; charset=utf-8)"


def test_oversized_responses_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_request, "MAX_RESPONSE_BYTES", 10)
    _, log = call(
        {"url": "https://api.example.com/x"}, lambda request: httpx.Response(200, content=b"x" * 11)
    )
    assert log.error == "response body is larger than 10 bytes"


def test_header_injection_is_refused() -> None:
    _, log = call(
        {"url": "https://api.example.com/x", "headers": {"X-A": "a\r\nX-B: b"}}, lambda r: httpx.Response(200)
    )
    assert log.error == "header 'X-A' contains a line break or NUL character"


# --- redirects and the SSRF guard ------------------------------------------------------------------------


def redirecting(location: str, final: httpx.Response | None = None) -> tuple[list[httpx.Request], Handler]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(302, headers={"Location": location})
        return final or httpx.Response(200, json={"hop": len(seen)})

    return seen, handler


def test_redirects_are_followed_and_credentials_dropped_across_origins() -> None:
    seen, handler = redirecting("https://other.example.org/next")
    config = {
        "url": "https://api.example.com/start",
        "auth": {"type": "header", "header": "X-Key", "secretRef": {"name": "a", "key": "b"}},
    }
    result, log = call(config, handler, secrets={("a", "b"): "k"})
    assert result.phase is RunPhase.COMPLETED
    assert log.output["body"] == {"hop": 2}
    assert [str(request.url) for request in seen] == [
        "https://api.example.com/start",
        "https://other.example.org/next",
    ]
    assert seen[0].headers["X-Key"] == "k"
    assert "X-Key" not in seen[1].headers


def test_redirects_can_be_turned_off_and_are_bounded() -> None:
    _, handler = redirecting("/again")
    _, log = call(
        {"url": "https://api.example.com/", "followRedirects": False, "failOnStatus": False}, handler
    )
    assert log.output["status"] == 302

    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    _, log = call({"url": "https://api.example.com/", "maxRedirects": 2}, loop)
    assert log.error == "GET https://api.example.com/: more than 2 redirects"


def test_a_redirect_to_loopback_is_refused() -> None:
    seen, handler = redirecting("http://127.0.0.1:8080/admin")
    result, log = call({"url": "https://api.example.com/start"}, handler)
    assert result.phase is RunPhase.FAILED
    assert len(seen) == 1  # the loopback request was never sent
    assert log.attempts == 1
    assert log.error == (
        "GET https://api.example.com/start: refused to connect to 127.0.0.1: loopback address; "
        "an administrator can allow it in TIDEFLOW_HTTP_ALLOWLIST"
    )


def test_a_hostname_resolving_to_a_private_address_is_refused() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    _, log = call(
        {"url": "http://internal.example.com/"}, handler, resolver={"internal.example.com": ["10.0.0.5"]}
    )
    assert seen == []
    assert log.error is not None
    assert "refused to connect to internal.example.com (10.0.0.5): private address" in log.error


@pytest.mark.parametrize("allow", [["internal.example.com"], ["10.0.0.0/8"], ["*.example.com"], ["10.0.0.5"]])
def test_an_allowlisted_host_passes(allow: list[str]) -> None:
    result, log = call(
        {"url": "http://internal.example.com/"},
        lambda request: httpx.Response(200, text="internal"),
        resolver={"internal.example.com": ["10.0.0.5"]},
        allow=allow,
    )
    assert result.phase is RunPhase.COMPLETED
    assert log.output["body"] == "internal"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata hostname"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[::ffff:127.0.0.1]/", "loopback address"),
        ("http://[fd00:ec2::254]/", "cloud metadata address"),
        ("ftp://api.example.com/file", "scheme 'ftp' is not allowed"),
    ],
)
def test_internal_targets_are_refused(url: str, message: str) -> None:
    _, log = call({"url": url}, lambda request: httpx.Response(200))
    assert log.error is not None
    assert message in log.error


def test_unresolvable_hosts_are_retryable_transport_errors() -> None:
    _, log = call({"url": "https://nowhere.example.net/"}, lambda r: httpx.Response(200), resolver={})
    assert log.error is not None
    assert "ConnectError: cannot resolve nowhere.example.net" in log.error


def test_invalid_urls_fail_without_retrying() -> None:
    result, log = call({"url": "http://[::1/"}, lambda request: httpx.Response(200))
    assert result.phase is RunPhase.FAILED
    assert log.error is not None
    assert log.error.startswith("invalid request:")


def test_unknown_charsets_fall_back_to_utf8() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content="caf\u00e9".encode(), headers={"Content-Type": "text/plain; charset=x-nope"}
        )

    _, log = call({"url": "https://api.example.com/x"}, handler)
    assert log.output["body"] == "caf\u00e9"


class BrokenStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("connection reset")


def test_a_response_that_breaks_off_is_a_retryable_failure() -> None:
    _, log = call(
        {"url": "https://api.example.com/x"},
        lambda request: httpx.Response(200, stream=BrokenStream()),
    )
    assert log.error == "GET https://api.example.com/x: reading the response failed: connection reset"
