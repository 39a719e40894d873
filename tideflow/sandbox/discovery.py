"""Discovery and OpenAPI documents, built from the registered resource types.

kubectl reads ``/api``, ``/apis`` and each group version to map kinds to resources, and the
OpenAPI v3 documents to decide whether the server validates fields itself (a PATCH operation with
a ``fieldValidation`` parameter) and to answer ``kubectl explain`` from the CRD's schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from tideflow.sandbox.resources import VERBS, ResourceType

if TYPE_CHECKING:
    from tideflow.sandbox.apiserver import ApiServer

JSON = dict[str, Any]
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-tideflow-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"


def _group_versions(api: ApiServer) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for rt in api.types():
        versions = groups.setdefault(rt.group, [])
        if rt.version not in versions:
            versions.append(rt.version)
    return groups


def _group_doc(group: str, versions: list[str]) -> JSON:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def static_document(api: ApiServer, path: str, server_address: str) -> JSON | str | None:
    """The document served at a non-resource path, or ``None`` when ``path`` is not one of them."""
    if path in ("/healthz", "/livez", "/readyz"):
        return "ok"
    if path == "/version":
        return SERVER_VERSION
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }
    groups = _group_versions(api)
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group_doc(g, v) for g, v in sorted(groups.items()) if g],
        }
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "apis":
        if parts[1] not in groups:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(parts[1], groups[parts[1]])}
    if path == "/":
        listed = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v2", "/openapi/v3"}
        for group, versions in groups.items():
            if group:
                listed.add(f"/apis/{group}")
                listed.update(f"/apis/{group}/{v}" for v in versions)
        return {"paths": sorted(listed)}
    if path == "/openapi/v3":
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(openapi_v3(api, gv))}"}
                for gv in _gv_paths(api)
            }
        }
    if path.startswith("/openapi/v3/"):
        gv = path[len("/openapi/v3/") :]
        return openapi_v3(api, gv) if gv in _gv_paths(api) else None
    if path == "/openapi/v2":
        return openapi_v2(api)
    return None


def _hash(doc: JSON) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()


def _gv_paths(api: ApiServer) -> list[str]:
    return sorted(
        {f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}" for rt in api.types()}
    )


def resource_list(api: ApiServer, group: str, version: str) -> JSON:
    """The ``APIResourceList`` of one group version (404 when nothing is served there)."""
    from tideflow.sandbox.errors import ApiError

    types = [rt for rt in api.types() if rt.group == group and rt.version == version]
    if not types:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    resources: list[JSON] = []
    for rt in sorted(types, key=lambda t: t.plural):
        entry: JSON = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(VERBS),
            "storageVersionHash": hashlib.sha256(f"{rt.group}/{rt.plural}".encode()).hexdigest()[:11],
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        if rt.status_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if rt.scale is not None:
            resources.append(
                {
                    "name": f"{rt.plural}/scale",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        if "log" in rt.extra_subresources:
            resources.append(
                {
                    "name": f"{rt.plural}/log",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _definition_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "core"
    if rt.custom:
        return f"{group}.{rt.version}.{rt.kind}"
    return f"io.k8s.api.{group.replace('io.k8s.', '')}.{rt.version}.{rt.kind}"


def _schema_for(rt: ResourceType, ref_prefix: str) -> JSON:
    gvk = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    if rt.schema is not None:
        body = copy.deepcopy(rt.schema)
        body.setdefault("properties", {})["metadata"] = {
            "description": "Standard object's metadata.",
            "allOf": [{"$ref": f"{ref_prefix}{_OBJECT_META}"}],
        }
    else:
        body = {
            "description": f"{rt.kind} (the sandbox serves built-in kinds without a published schema).",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion of this object."},
                "kind": {"type": "string", "description": "Kind of this object."},
                "metadata": {
                    "description": "Standard object's metadata.",
                    "allOf": [{"$ref": f"{ref_prefix}{_OBJECT_META}"}],
                },
            },
            "x-kubernetes-preserve-unknown-fields": True,
        }
    body["x-kubernetes-group-version-kind"] = gvk
    return body


_META_SCHEMAS: JSON = {
    _OBJECT_META: {
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Name must be unique within a namespace."},
            "generateName": {"type": "string", "description": "Prefix for a server-generated name."},
            "namespace": {"type": "string", "description": "The namespace of the object."},
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Map of string keys and values to organize and select objects.",
            },
            "annotations": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Unstructured key value map stored with a resource.",
            },
            "uid": {"type": "string", "description": "Unique in time and space; set by the server."},
            "resourceVersion": {
                "type": "string",
                "description": "Opaque version for optimistic concurrency.",
            },
            "generation": {
                "type": "integer",
                "format": "int64",
                "description": "A sequence number for the desired state.",
            },
            "creationTimestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the object was created.",
            },
            "deletionTimestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the object will be deleted.",
            },
            "finalizers": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Must be empty before the object is deleted.",
            },
            "ownerReferences": {
                "type": "array",
                "items": {"type": "object"},
                "description": "Objects this object depends on.",
            },
        },
    },
    _LIST_META: {
        "description": "ListMeta describes metadata of synthetic resources.",
        "type": "object",
        "properties": {
            "resourceVersion": {"type": "string", "description": "Version of the list."},
            "continue": {"type": "string", "description": "Token for the next page."},
        },
    },
}

_WRITE_PARAMS = [
    {
        "name": "dryRun",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
        "description": "When present, modifications are not persisted (All).",
    },
    {
        "name": "fieldManager",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
        "description": "A name associated with the actor making the changes.",
    },
    {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
        "description": "How to treat unknown or duplicate fields: Ignore, Warn or Strict.",
    },
]


def _operations(rt: ResourceType, ref: str, prefix: str) -> JSON:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    body = {"content": {"application/json": {"schema": {"$ref": ref}}}}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}}

    def op(action: str, params: list[JSON], request: bool = False) -> JSON:
        operation: JSON = {
            "responses": ok,
            "parameters": params,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "operationId": f"{action}{rt.kind}",
        }
        if request:
            operation["requestBody"] = body
        return operation

    ns = "/namespaces/{namespace}" if rt.namespaced else ""
    collection = f"{prefix}{ns}/{rt.plural}"
    item = f"{collection}/{{name}}"
    return {
        collection: {"get": op("list", []), "post": op("post", _WRITE_PARAMS, True)},
        item: {
            "get": op("get", []),
            "put": op("put", _WRITE_PARAMS, True),
            "patch": op("patch", _WRITE_PARAMS, True),
            "delete": op("delete", []),
        },
    }


def openapi_v3(api: ApiServer, gv: str) -> JSON:
    """The OpenAPI v3 document of one group version (``api/v1`` or ``apis/<group>/<version>``)."""
    types = [
        rt
        for rt in api.types()
        if (f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}") == gv
    ]
    schemas: JSON = dict(_META_SCHEMAS)
    paths: JSON = {}
    for rt in types:
        name = _definition_name(rt)
        schemas[name] = _schema_for(rt, "#/components/schemas/")
        paths.update(_operations(rt, f"#/components/schemas/{name}", f"/{gv}"))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v2(api: ApiServer) -> JSON:
    """A Swagger 2.0 document with every kind's definition (for clients that still read v2)."""
    definitions: JSON = dict(_META_SCHEMAS)
    for rt in api.types():
        definitions[_definition_name(rt)] = _schema_for(rt, "#/definitions/")
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": {},
        "definitions": definitions,
    }
