"""ASGI middleware shared by Tideflow's HTTP servers (the runtime and the API).

:class:`BodyLimitMiddleware` refuses oversized request bodies before any route, dependency or
authentication runs, so an unauthenticated client cannot make a server buffer more than the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]


def _detail_body(limit: int) -> bytes:
    return json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413, before the app sees the request.

    A ``Content-Length`` over the limit is refused without reading the body; a chunked body is read up to
    the limit and refused as soon as it passes it. The body read is then replayed to the app.
    ``error_body`` renders the 413 answer for the limit (the server's own error shape).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_reject: Callable[[], None] | None = None,
        error_body: Callable[[int], bytes] = _detail_body,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject
        self.error_body = error_body

    async def _refuse(self, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject()
        body = self.error_body(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
