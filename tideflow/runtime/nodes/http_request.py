"""Executor of ``http_request``: calls an HTTP endpoint through the SSRF guard.

The output is ``{status, headers, body}``: ``headers`` with lower-case names (repeated headers joined
by ``, ``), ``body`` parsed as JSON or kept as text (``responseType``). With ``failOnStatus`` (the
default) a status of 400 or more fails the node; 429 and 5xx are retryable, other statuses are not.
Credentials come from a Secret (``auth.secretRef``) through the injectable secret resolver and never
appear in the output, the run log or error messages. Bodies larger than ``MAX_RESPONSE_BYTES`` (after
decompression) fail the node rather than fill the runtime's memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

from tideflow.core.templating import to_text
from tideflow.runtime.nodes.base import NodeContext, NodeError, NodeOutcome, SecretNotFoundError
from tideflow.runtime.ssrf import SSRFError, send_guarded

MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024
_ERROR_BODY_PREVIEW: Final = 200


def _describe_url(url: httpx.URL) -> str:
    """The URL without query and credentials: what error messages may show."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def _header_value(name: str, value: Any) -> tuple[str, str]:
    text = to_text(value)
    if any(char in name or char in text for char in "\r\n\0"):
        raise NodeError(f"header {name!r} contains a line break or NUL character")
    return name, text


async def _auth_headers(ctx: NodeContext, auth: Mapping[str, Any]) -> dict[str, str]:
    ref = auth["secretRef"]
    try:
        secret = await ctx.services.secrets(ref["name"], ref["key"])
    except SecretNotFoundError as exc:
        raise NodeError(str(exc)) from None
    kind = auth["type"]
    if kind == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if kind == "basic":
        token = base64.b64encode(f"{auth['username']}:{secret}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {auth["header"]: secret}


def _query(params: Mapping[str, Any]) -> httpx.QueryParams:
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((name, to_text(item)))
    return httpx.QueryParams(pairs)


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise NodeError(f"response body is larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(response: httpx.Response, content: bytes) -> str:
    try:
        return content.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        return content.decode("utf-8", errors="replace")


def _parse_body(response: httpx.Response, content: bytes, mode: str) -> Any:
    text = _decode(response, content)
    content_type = response.headers.get("content-type", "").lower()
    wants_json = mode == "json" or (mode == "auto" and "json" in content_type)
    if not wants_json or (mode == "auto" and not text.strip()):
        return text
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        if mode == "json":
            raise NodeError(f"response body is not JSON (Content-Type {content_type or 'unset'})") from None
        return text


async def execute(ctx: NodeContext) -> NodeOutcome:
    config = ctx.config
    method: str = config["method"]
    headers = dict(_header_value(str(name), value) for name, value in config.get("headers", {}).items())
    credential_headers: list[str] = []
    if "auth" in config:
        secret_headers = await _auth_headers(ctx, config["auth"])
        headers.update(secret_headers)
        credential_headers.extend(secret_headers)
    body = config.get("body")
    client = ctx.services.http()
    try:
        request = client.build_request(
            method,
            config["url"],
            headers=headers,
            params=_query(config.get("query", {})),
            content=body.encode() if isinstance(body, str) else None,
            json=body if body is not None and not isinstance(body, str) else None,
            timeout=httpx.Timeout(config["timeoutSeconds"]),
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError, ValueError) as exc:
        raise NodeError(f"invalid request: {exc}") from None
    target = f"{method} {_describe_url(request.url)}"
    try:
        response = await send_guarded(
            client,
            request,
            ctx.services.guard,
            follow_redirects=config["followRedirects"],
            max_redirects=config["maxRedirects"],
            credential_headers=credential_headers,
        )
    except SSRFError as exc:
        raise NodeError(f"{target}: {exc}") from None
    except httpx.TooManyRedirects as exc:
        raise NodeError(f"{target}: {exc}") from None
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise NodeError(f"{target}: {type(exc).__name__}: {exc}", retryable=True) from None
    try:
        content = await _read_limited(response)
    except httpx.TransportError as exc:
        raise NodeError(f"{target}: reading the response failed: {exc}", retryable=True) from None
    finally:
        await response.aclose()
    status = response.status_code
    output = {
        "status": status,
        "headers": dict(response.headers.items()),
        "body": _parse_body(response, content, config["responseType"]),
    }
    if config["failOnStatus"] and status >= 400:
        preview = _decode(response, content[: _ERROR_BODY_PREVIEW * 4])[:_ERROR_BODY_PREVIEW]
        raise NodeError(
            f"{target} answered {status} {response.reason_phrase}" + (f": {preview}" if preview else ""),
            retryable=status >= 500 or status == 429,
        )
    return NodeOutcome(output)
