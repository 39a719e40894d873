"""The sandbox's HTTP front end: a kmock handler that maps Kubernetes REST calls onto :class:`ApiServer`.

kmock provides the HTTP server and its reaction DSL. Reactions added to the handler
(``handler['patch'][re.compile('/workflows/')] << 500``) are matched first, so tests can inject
faults; every request no reaction claims is served by the emulator. kmock's own path parser is not
used for routing because it cannot parse ``/api/v1/namespaces`` (the namespaces resource itself).

Besides the Kubernetes API, ``/_sandbox/faults`` lets a test in another process inject faults
(a status code for the next N matching requests, a dropped watch, a watch answered 410 Gone) and
``/_sandbox/compact`` drops the watch history so that an old ``resourceVersion`` is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import rendering
from multidict import CIMultiDict

from tideflow.sandbox import discovery, tables
from tideflow.sandbox.apiserver import ApiServer, Result, WriteOptions
from tideflow.sandbox.errors import ApiError
from tideflow.sandbox.resources import ResourceType

logger = logging.getLogger("tideflow.sandbox.http")

LogReader = Callable[[str, str, dict[str, str]], Awaitable[str]]
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class Route:
    """A parsed Kubernetes API path."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> Route | None:
    """Parse ``/api/v1/...`` and ``/apis/<group>/<version>/...``; ``None`` for anything else."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return Route(group, version)
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)
    ):
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(group, version, plural, namespace, name, subresource)


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> aiohttp.web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in warnings or []:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')  # warn-text is an RFC 7230 quoted-string
        headers.add("Warning", f'299 - "{escaped}"')
    return aiohttp.web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers
    )


def _status(error: ApiError) -> aiohttp.web.Response:
    return _json(error.status(), status=error.code)


@attrs.define(kw_only=True)
class SandboxHandler(kmock.RawHandler):
    """The kmock request handler: fault-injection reactions first, then the emulated API server."""

    api: ApiServer
    server_address: str = "127.0.0.1:0"
    log_reader: LogReader | None = None
    request_history: int = 256
    _counter: int = attrs.field(default=0, init=False)
    _faults: list[dict[str, Any]] = attrs.field(factory=list, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        try:
            request = await self._parse(raw_request)
            self._requests.append(request)
            # Keep kmock's request bookkeeping bounded: a sandbox serves millions of requests.
            del self._requests[: -self.request_history]
            for payload in self._payloads:
                del payload._requests[: -self.request_history]
            return await self._handle(request)
        except ApiError as exc:
            return _status(exc)
        except rendering.StreamingError as exc:
            logger.warning("stream failed: %r", exc.__cause__)
            response: aiohttp.web.StreamResponse = exc.args[0]
            return response
        except Exception as exc:  # a bug in the emulator must answer 500, like a real server
            logger.exception("internal error serving %s %s", raw_request.method, raw_request.path)
            return _status(ApiError(500, "InternalError", f"{exc!r}: {traceback.format_exc(limit=3)}"))

    async def _parse(self, raw_request: aiohttp.web.BaseRequest) -> rendering.Request:
        self._counter += 1
        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        if body:
            content_type = raw_request.headers.get("Content-Type", "")
            if "protobuf" in content_type or "cbor" in content_type:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the sandbox API server accepts JSON and YAML bodies only, not {content_type}; "
                    "kubectl's typed generators (kubectl create namespace|deployment|configmap ...) send "
                    "protobuf: use kubectl apply -f or kubectl create -f with a manifest instead",
                )
            try:
                data = yaml.safe_load(text) if "yaml" in content_type else json.loads(text)
            except (ValueError, yaml.YAMLError) as exc:
                raise ApiError.bad_request(f"the request body is not valid JSON or YAML: {exc}") from exc
        route = parse_route(raw_request.path)
        resource = (
            kmock.resource(route.group, route.version, route.plural) if route and route.plural else None
        )
        return rendering.Request(
            id=self._counter,
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=text,
            data=data,
            resource=resource,
            namespace=route.namespace if route else None,
            name=route.name if route else None,
            subresource=route.subresource if route else None,
        )

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self._payloads:
            try:
                return await super()._handle(request)
            except NotImplementedError:
                pass  # no injected reaction claims it: serve it as the API server
        return await self._serve(request)

    # ------------------------------------------------------------------------------------------

    async def _serve(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        path = raw.path.rstrip("/") or "/"
        method = raw.method.upper()
        if path.startswith("/_sandbox/"):
            return await self._serve_admin(path, method, request.data)
        if method == "GET":
            doc = discovery.static_document(self.api, path, self.server_address)
            if doc is not None:
                if isinstance(doc, str):
                    return aiohttp.web.Response(text=doc)
                return _json(doc)
        route = parse_route(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.plural is None:
            if method != "GET":
                raise ApiError.method_not_allowed()
            return _json(discovery.resource_list(self.api, route.group, route.version))
        rt = self.api.resource(route.group, route.version, route.plural)
        params = dict(request.params)
        if rt.namespaced is False and route.namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.name is None:
            return await self._serve_collection(rt, route, method, params, request, raw)
        return await self._serve_object(rt, route, method, params, request, raw)

    async def _serve_collection(
        self,
        rt: ResourceType,
        route: Route,
        method: str,
        params: dict[str, str],
        request: rendering.Request,
        raw: aiohttp.web.BaseRequest,
    ) -> aiohttp.web.StreamResponse:
        if method == "GET":
            if params.get("watch") in ("true", "1"):
                return await self._serve_watch(rt, route.namespace, params, raw)
            listed = self.api.list_objects(
                rt,
                route.namespace,
                label_selector=params.get("labelSelector"),
                field_selector=params.get("fieldSelector"),
                limit=int(params["limit"]) if params.get("limit", "").isdigit() else None,
                continue_token=params.get("continue"),
                resource_version=params.get("resourceVersion"),
                resource_version_match=params.get("resourceVersionMatch"),
            )
            if tables.wants_table(raw.headers.get("Accept", "")):
                return _json(tables.render_list(rt, listed))
            return _json(listed)
        if method == "POST":
            if rt.namespaced and not route.namespace and rt.plural != "namespaces":
                raise ApiError.method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            result = self.api.create(rt, route.namespace, request.data, self._write_options(params))
            return _json(result.obj, 201, result.warnings)
        if method == "DELETE":
            options = request.data if isinstance(request.data, dict) else {}
            options = {**_delete_options(params), **options}
            listed = self.api.delete_collection(
                rt,
                route.namespace,
                label_selector=params.get("labelSelector"),
                field_selector=params.get("fieldSelector"),
                options=options,
                dry_run=params.get("dryRun") == "All",
            )
            return _json(listed)
        raise ApiError.method_not_allowed()

    async def _serve_object(
        self,
        rt: ResourceType,
        route: Route,
        method: str,
        params: dict[str, str],
        request: rendering.Request,
        raw: aiohttp.web.BaseRequest,
    ) -> aiohttp.web.StreamResponse:
        assert route.name is not None
        name, sub, ns = route.name, route.subresource, route.namespace
        if sub is not None and sub not in rt.subresources:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({rt.plural}/{sub})"
            )
        options = self._write_options(params)
        if sub == "log" and method == "GET":
            return await self._serve_log(rt, ns, name, params)
        if sub == "scale":
            if method == "GET":
                return _json(self.api.get_scale(rt, ns, name))
            if method == "PUT":
                return self._result(self.api.update_scale(rt, ns, name, request.data or {}, options))
            if method == "PATCH":
                content_type = raw.headers.get("Content-Type", "")
                return self._result(
                    self.api.patch(rt, ns, name, request.data, content_type, options, subresource="scale")
                )
            raise ApiError.method_not_allowed()
        if method == "GET":
            if params.get("watch") in ("true", "1"):
                params = {**params, "fieldSelector": f"metadata.name={name}"}
                return await self._serve_watch(rt, ns, params, raw)
            obj = self.api.get(rt, ns, name)
            if tables.wants_table(raw.headers.get("Accept", "")):
                return _json(tables.render_list(rt, {"items": [obj], "metadata": {}}))
            return _json(obj)
        if method == "PUT":
            return self._result(self.api.update(rt, ns, name, request.data, options, subresource=sub))
        if method == "PATCH":
            content_type = raw.headers.get("Content-Type", "")
            return self._result(
                self.api.patch(rt, ns, name, request.data, content_type, options, subresource=sub)
            )
        if method == "DELETE" and sub is None:
            delete_options = {
                **_delete_options(params),
                **(request.data if isinstance(request.data, dict) else {}),
            }
            body, _ = self.api.delete(rt, ns, name, delete_options, dry_run=options.dry_run)
            return _json(body)
        raise ApiError.method_not_allowed()

    def _result(self, result: Result) -> aiohttp.web.Response:
        return _json(result.obj, 201 if result.created else 200, result.warnings)

    @staticmethod
    def _write_options(params: dict[str, str]) -> WriteOptions:
        validation = params.get("fieldValidation", "Warn")
        if validation not in ("Ignore", "Warn", "Strict"):
            raise ApiError.bad_request(
                f"fieldValidation must be one of Ignore, Warn, Strict, not {validation!r}"
            )
        return WriteOptions(
            dry_run=params.get("dryRun") == "All",
            field_validation=validation,
            field_manager=params.get("fieldManager"),
        )

    async def _serve_watch(
        self, rt: ResourceType, namespace: str | None, params: dict[str, str], raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        timeout = params.get("timeoutSeconds")
        events = self.api.watch(
            rt,
            namespace,
            resource_version=params.get("resourceVersion"),
            label_selector=params.get("labelSelector"),
            field_selector=params.get("fieldSelector"),
            timeout_seconds=float(timeout) if timeout else None,
            bookmarks=params.get("allowWatchBookmarks") in ("true", "1"),
            send_initial_events=params.get("sendInitialEvents") == "true",
        )
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(raw)  # headers go out at once, as a real server's do
        try:
            async for event in events:
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await events.aclose()
        return response

    async def _serve_log(
        self, rt: ResourceType, namespace: str | None, name: str, params: dict[str, str]
    ) -> aiohttp.web.StreamResponse:
        if rt.plural != "pods" or self.log_reader is None:
            raise ApiError(404, "NotFound", "logs are only served for pods")
        self.api.get(rt, namespace, name)
        text = await self.log_reader(namespace or "", name, params)
        return aiohttp.web.Response(text=text, content_type="text/plain")

    # ------------------------------------------------------------------------------------------
    # Admin endpoints for tests in other processes

    async def _serve_admin(self, path: str, method: str, data: Any) -> aiohttp.web.StreamResponse:
        if path == "/_sandbox/faults" and method == "POST":
            fault = _Fault.from_json(data)
            pattern = re.compile(f"(?s).*(?:{fault.path}).*")  # kmock full-matches; the API promises a search
            view = self[kmock.method(fault.method)][pattern]
            if fault.watch is not None:  # a filter, not the payload: a payload's NotImplemented disables it
                view = view[_is_watch]
            view << fault  # kmock's DSL registers the reaction on <<
            self._faults.append({"fault": fault, "spec": data})
            return _json({"registered": data}, 201)
        if path == "/_sandbox/faults" and method == "GET":
            return _json({"faults": [{**f["spec"], "remaining": f["fault"].remaining} for f in self._faults]})
        if path == "/_sandbox/faults" and method == "DELETE":
            self._payloads.clear()
            self._faults.clear()
            return _json({"cleared": True})
        if path == "/_sandbox/compact" and method == "POST":
            return _json({"compactedResourceVersion": self.api.compact()})
        raise ApiError(404, "NotFound", f"unknown sandbox admin endpoint {method} {path}")


class _Fault:
    """A kmock reaction payload that answers the next ``times`` matching requests, then steps aside."""

    def __init__(
        self, method: str, path: str, status: int, times: int, watch: str | None, message: str
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.remaining = times
        self.watch = watch
        self.message = message

    @classmethod
    def from_json(cls, data: Any) -> _Fault:
        if not isinstance(data, dict) or "path" not in data:
            raise ApiError.bad_request('a fault needs at least {"path": "<regex>"}')
        watch = data.get("watch")
        if watch not in (None, "drop", "gone"):
            raise ApiError.bad_request('"watch" must be "drop" or "gone"')
        return cls(
            method=str(data.get("method", "GET")).upper(),
            path=str(data["path"]),
            status=int(data.get("status", 500)),
            times=int(data.get("times", 1)),
            watch=watch,
            message=str(data.get("message", "injected fault")),
        )

    def __call__(self, request: rendering.Request) -> Any:
        if self.remaining <= 0:
            return NotImplemented  # kmock: this reaction is exhausted, serve the next one
        self.remaining -= 1
        if self.watch == "drop":
            return rendering.Response(status=200, payload=b"")
        if self.watch == "gone":
            event = {
                "type": "ERROR",
                "object": ApiError.gone(f"too old resource version: {self.message}").status(),
            }
            return rendering.Response(status=200, payload=json.dumps(event).encode() + b"\n")
        reasons = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests"}
        error = ApiError(self.status, reasons.get(self.status, "InternalError"), self.message)
        return rendering.Response(status=self.status, payload=error.status())


def _is_watch(request: rendering.Request) -> bool:
    return request.params.get("watch") in ("true", "1")


def _delete_options(params: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "propagationPolicy" in params:
        options["propagationPolicy"] = params["propagationPolicy"]
    if "gracePeriodSeconds" in params:
        options["gracePeriodSeconds"] = int(params["gracePeriodSeconds"])
    if "orphanDependents" in params:
        options["orphanDependents"] = params["orphanDependents"] == "true"
    return options
