"""A small asynchronous Kubernetes API client shared by the operator, the runtime and the API.

Connection settings come from the official ``kubernetes`` package (in-cluster service account, or
the kubeconfig named by ``KUBECONFIG``), requests go through ``httpx.AsyncClient``. Failures raise
:class:`KubeError` subclasses carrying the API server's ``Status``, so callers can tell a missing
object (404), a lost optimistic-concurrency race (409) and invalid input (422) apart.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from tideflow.core import names

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """A request the API server refused; ``status`` is its ``Status`` body when it sent one."""

    def __init__(self, code: int, reason: str, message: str, status: JSON | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or {}

    @property
    def causes(self) -> list[JSON]:
        return list((self.status.get("details") or {}).get("causes") or [])


class NotFound(KubeError):
    """404: the object (or its namespace, or the resource) does not exist."""


class Conflict(KubeError):
    """409: a stale resourceVersion, or an object that already exists (see ``reason``)."""


class Invalid(KubeError):
    """422: the object breaks its schema; ``causes`` name the fields."""


def _error(response: httpx.Response) -> KubeError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    reason = str(body.get("reason") or response.reason_phrase)
    message = str(body.get("message") or response.text[:500])
    kind = {404: NotFound, 409: Conflict, 422: Invalid}.get(response.status_code, KubeError)
    return kind(response.status_code, reason, message, body)


@dataclass(frozen=True)
class Resource:
    """A resource's coordinates: enough to build its URLs."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        sub = f"/{subresource}" if subresource else ""
        return f"{prefix}{ns}/{self.plural}{tail}{sub}"


WORKFLOWS = Resource(names.GROUP, names.VERSION, names.WORKFLOW_PLURAL)
WORKFLOWRUNS = Resource(names.GROUP, names.VERSION, names.WORKFLOWRUN_PLURAL)
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
SERVICES = Resource("", "v1", "services")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
DEPLOYMENTS = Resource("apps", "v1", "deployments")


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate, as the official client resolved it."""

    server: str
    headers: Mapping[str, str]
    verify: ssl.SSLContext | bool
    cert: tuple[str, str] | None = None

    @classmethod
    def from_environment(cls) -> Self:
        """In-cluster configuration when running in a pod, else the kubeconfig (``KUBECONFIG``)."""
        import kubernetes

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        headers: dict[str, str] = {}
        token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get(
            "BearerToken"
        )
        if token:
            prefix = (configuration.api_key_prefix or {}).get("authorization", "Bearer")
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"{prefix} {token}"
        verify: ssl.SSLContext | bool = bool(configuration.verify_ssl)
        if configuration.ssl_ca_cert:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        cert = (
            (str(configuration.cert_file), str(configuration.key_file))
            if configuration.cert_file and configuration.key_file
            else None
        )
        return cls(server=configuration.host.rstrip("/"), headers=headers, verify=verify, cert=cert)


class KubeClient:
    """Async CRUD, patch and watch for any resource; counts the requests it makes (for benchmarks)."""

    def __init__(
        self, connection: Connection, *, timeout: float = 30.0, user_agent: str = "tideflow"
    ) -> None:
        self.connection = connection
        self.requests = 0
        self._http = httpx.AsyncClient(
            base_url=connection.server,
            headers={**connection.headers, "User-Agent": user_agent, "Accept": "application/json"},
            verify=connection.verify,
            cert=connection.cert,
            timeout=timeout,
        )

    @classmethod
    def from_environment(cls, *, user_agent: str = "tideflow") -> Self:
        return cls(Connection.from_environment(), user_agent=user_agent)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        self.requests += 1
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type} if content is not None else {}
        response = await self._http.request(method, path, content=content, params=params, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        result = response.json() if response.content else {}
        return result if isinstance(result, dict) else {"items": result}

    async def version(self) -> JSON:
        """``GET /version``: the server's build; a cheap call that proves the API server answers."""
        return await self._call("GET", "/version")

    async def get(
        self, resource: Resource, namespace: str | None, name: str, subresource: str | None = None
    ) -> JSON:
        return await self._call("GET", resource.path(namespace, name, subresource))

    async def get_or_none(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        try:
            return await self.get(resource, namespace, name)
        except NotFound:
            return None

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        return await self._call("GET", resource.path(namespace), params=params)

    async def list_all(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[JSON]:
        """Every item, following ``continue`` tokens page by page."""
        items: list[JSON] = []
        token: str | None = None
        while True:
            page = await self.list_objects(
                resource, namespace, label_selector=label_selector, limit=500, continue_token=token
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def create(self, resource: Resource, namespace: str | None, body: JSON) -> JSON:
        return await self._call("POST", resource.path(namespace), body=body)

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: JSON, subresource: str | None = None
    ) -> JSON:
        return await self._call("PUT", resource.path(namespace, name, subresource), body=body)

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> JSON:
        return await self._call(
            "PATCH", resource.path(namespace, name, subresource), body=patch, content_type=content_type
        )

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> JSON:
        return await self._call(
            "DELETE",
            resource.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]:
        """Stream watch events; a 410 arrives as an ``ERROR`` event for the caller to re-list."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds), "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        self.requests += 1
        async with self._http.stream(
            "GET", resource.path(namespace), params=params, timeout=httpx.Timeout(timeout_seconds + 30)
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            async for line in response.aiter_lines():
                if line.strip():
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
