"""The sandbox's API semantics: storage, versions, validation, subresources, deletion and watch.

This module knows nothing about HTTP. :class:`ApiServer` keeps every object in memory and applies
the rules kube-apiserver applies to each request, so that the HTTP layer (``http.py``) and the
in-process controllers (``controllers.py``) go through exactly the same code paths:

* every write gets a new cluster-wide ``resourceVersion``; a no-op write changes nothing and emits
  no watch event; ``uid`` and ``creationTimestamp`` are set once; ``generation`` moves only when
  something outside ``metadata`` and ``status`` changes;
* creates answer 201 and refuse an existing name (409 AlreadyExists); updates with a stale
  ``resourceVersion`` are refused (409 Conflict);
* with a status subresource, writes to the main resource keep the stored status and writes to
  ``/status`` keep everything but the status; ``/scale`` reads and writes the scale paths;
* custom resources are pruned, defaulted and validated against their CRD's structural schema and
  CEL rules (422 Invalid with field paths);
* deletion honours finalizers, ``propagationPolicy`` (Background, Foreground, Orphan) and
  preconditions; owned objects are collected by the garbage collector in ``controllers.py``;
* watches resume from a ``resourceVersion`` while it is in the event history and answer an
  ``ERROR`` event with code 410 once it has been compacted away.

All methods that change state are synchronous: under asyncio they are atomic with respect to one
another, which is what makes a watch registration and its initial snapshot consistent.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import datetime
import ipaddress
import json
import random
import re
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tideflow.sandbox import paths, schema
from tideflow.sandbox.errors import ApiError
from tideflow.sandbox.patching import APPLY_PATCH, apply_patch, json_merge_patch
from tideflow.sandbox.resources import BUILTINS, ResourceType, from_crd, storage_version
from tideflow.sandbox.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    format_label_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)

JSON = dict[str, Any]
Key = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace or "", name)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_STALE = "the object has been modified; please apply your changes to the latest version and try again"
_PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    """One change in the store, as watchers see it (``old`` lets selectors translate the type)."""

    rv: int
    type: str
    key: Key
    obj: JSON
    old: JSON | None = None


@dataclass(eq=False)
class Watcher:
    """A live subscription to the changes of one resource (or of everything, for controllers)."""

    key: Key | None
    namespace: str | None = None
    labels: list[Requirement] = field(default_factory=list)
    fields: list[FieldRequirement] = field(default_factory=list)
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)

    def accepts(self, obj: JSON) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def translate(self, event: Event) -> tuple[str, JSON] | None:
        """The event as this watcher must see it: a label change can turn MODIFIED into ADDED/DELETED."""
        now = self.accepts(event.obj)
        if event.type != "MODIFIED" or event.old is None:
            return (event.type, event.obj) if now else None
        before = self.accepts(event.old)
        if now and before:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before:
            return ("DELETED", event.obj)
        return None


@dataclass
class WriteOptions:
    """Query options shared by create, update and patch."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    field_manager: str | None = None


@dataclass
class Result:
    """An object returned by a write, with the warnings to send in ``Warning`` headers."""

    obj: JSON
    warnings: list[str] = field(default_factory=list)
    created: bool = False


class ApiServer:
    """In-memory Kubernetes API semantics shared by the HTTP front end and the controllers."""

    def __init__(
        self,
        *,
        history_limit: int = 50_000,
        clock: Callable[[], datetime.datetime] = utcnow,
        bookmark_interval: float = 60.0,
    ) -> None:
        self._clock = clock
        self._rv = 0
        self._compacted_rv = 0
        self._history: collections.deque[Event] = collections.deque()
        self._history_limit = history_limit
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._objects: dict[Key, dict[ObjectKey, JSON]] = collections.defaultdict(dict)
        self._watchers: dict[Key | None, set[Watcher]] = collections.defaultdict(set)
        self._dependents: dict[str, set[tuple[Key, ObjectKey]]] = collections.defaultdict(set)
        self._uids: dict[str, tuple[Key, ObjectKey]] = {}
        self._bookmark_interval = bookmark_interval
        self._ips = _IpAllocator()
        self._random = random.Random()  # noqa: S311  (generated names, not secrets)
        for rt in BUILTINS:
            self._register(rt)
        for name in _SYSTEM_NAMESPACES:
            self.create(self.resource("", "v1", "namespaces"), None, {"metadata": {"name": name}})

    # ----------------------------------------------------------------------------------------
    # Types and discovery

    def _register(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self._types.get((group, version, plural))
        if rt is None:
            gv = f"{group}/{version}" if group else version
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural} in {gv})"
            )
        return rt

    @property
    def resource_version(self) -> int:
        return self._rv

    def now(self) -> str:
        return rfc3339(self._clock())

    # ----------------------------------------------------------------------------------------
    # Reads

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self._objects[rt.key].get((namespace or "" if rt.namespaced else "", name))
        if obj is None:
            raise ApiError.not_found(rt.group, rt.plural, name)
        return obj

    def _served(self, rt: ResourceType, obj: JSON) -> JSON:
        """The stored object as this version serves it (custom resources: no conversion, same body)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version}

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        return copy.deepcopy(self._served(rt, self._stored(rt, namespace, name)))

    def exists(self, rt: ResourceType, namespace: str | None, name: str) -> bool:
        return (namespace or "" if rt.namespaced else "", name) in self._objects[rt.key]

    def iter_objects(self, rt: ResourceType, namespace: str | None = None) -> Iterable[JSON]:
        """Stored objects by reference, for in-process readers that promise not to mutate them."""
        for (ns, _), obj in sorted(self._objects[rt.key].items()):
            if namespace is None or ns == namespace:
                yield obj

    def _state_at(self, rt: ResourceType, rv: int) -> dict[ObjectKey, JSON]:
        """The objects of one resource as they were at ``rv``, rebuilt from the watch history."""
        if rv >= self._rv:
            return dict(self._objects[rt.key])
        if rv < self._compacted_rv:
            raise ApiError.gone(
                f"The resourceVersion for the provided list is too old (compacted to {self._compacted_rv}); "
                "start a new list without a continue token or an older resourceVersion."
            )
        state = dict(self._objects[rt.key])
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.key != rt.key:
                continue
            key = _object_key(rt, event.obj)
            if event.type == "ADDED":
                state.pop(key, None)
            elif event.old is not None:
                state[key] = event.old
        return state

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> JSON:
        """A list, consistent at one resourceVersion across all its pages (as etcd serves it)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.selectable_fields)
        start_after = ""
        at = self._rv
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start_after, at = str(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError.bad_request(f"continue key is not valid: {exc}") from exc
        elif resource_version not in (None, "", "0"):
            requested = _parse_resource_version(resource_version)
            if requested > self._rv:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {requested}, current: {self._rv}",
                    {
                        "causes": [
                            {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                        ],
                        "retryAfterSeconds": 1,
                    },
                )
            if resource_version_match == "Exact":
                at = requested
        state = self._state_at(rt, at)
        items: list[JSON] = []
        more = False
        remaining = 0
        for (ns, name), obj in sorted(state.items()):
            if namespace is not None and rt.namespaced and ns != namespace:
                continue
            if start_after and f"{ns}/{name}" <= start_after:
                continue
            if not (labels_match(labels, obj) and fields_match(fields, obj)):
                continue
            if limit and len(items) >= limit:
                more = True
                remaining += 1
                continue
            items.append(self._served(rt, obj))
        metadata: JSON = {"resourceVersion": str(at)}
        if more:
            last = items[-1]["metadata"]
            start = f"{last.get('namespace', '')}/{last['name']}"
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": at, "start": start}).encode()
            ).decode()
            if not labels and not fields:  # a real server cannot count ahead through a selector
                metadata["remainingItemCount"] = remaining
        return {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": metadata, "items": items}

    # ----------------------------------------------------------------------------------------
    # Writes

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, rt: ResourceType, event_type: str, obj: JSON, old: JSON | None = None) -> None:
        event = Event(self._rv, event_type, rt.key, obj, old)
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted_rv = self._history.popleft().rv
        for watcher in (*self._watchers.get(rt.key, ()), *self._watchers.get(None, ())):
            watcher.queue.put_nowait(event)

    def _index_owners(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        ref = (rt.key, _object_key(rt, obj))
        for owner in (old or {}).get("metadata", {}).get("ownerReferences") or []:
            self._dependents[owner.get("uid", "")].discard(ref)
        for owner in obj.get("metadata", {}).get("ownerReferences") or []:
            self._dependents[owner.get("uid", "")].add(ref)

    def _unindex_owners(self, rt: ResourceType, obj: JSON) -> None:
        ref = (rt.key, _object_key(rt, obj))
        for owner in obj.get("metadata", {}).get("ownerReferences") or []:
            self._dependents[owner.get("uid", "")].discard(ref)

    def dependents(self, uid: str) -> list[tuple[ResourceType, JSON]]:
        """Objects whose ``ownerReferences`` name this uid (for the garbage collector)."""
        found: list[tuple[ResourceType, JSON]] = []
        for key, okey in sorted(self._dependents.get(uid, ())):
            rt = self._type_for_key(key)
            obj = self._objects[key].get(okey)
            if rt is not None and obj is not None:
                found.append((rt, obj))
        return found

    def uid_exists(self, uid: str) -> bool:
        return uid in self._uids

    def by_uid(self, uid: str) -> tuple[ResourceType, JSON] | None:
        found = self._uids.get(uid)
        if found is None:
            return None
        rt = self._type_for_key(found[0])
        obj = self._objects[found[0]].get(found[1])
        return (rt, obj) if rt is not None and obj is not None else None

    def namespace_object(self, name: str) -> JSON | None:
        """The stored Namespace object called ``name`` (by reference), if any."""
        return self._objects[("", "namespaces")].get(("", name))

    def type_for_key(self, key: Key) -> ResourceType | None:
        return self._type_for_key(key)

    def _type_for_key(self, key: Key) -> ResourceType | None:
        for rt in self._types.values():
            if rt.key == key:
                return rt
        return None

    def _check_namespace(self, rt: ResourceType, namespace: str | None, body: JSON) -> str | None:
        meta_ns = (body.get("metadata") or {}).get("namespace")
        if not rt.namespaced:
            return None
        if namespace and meta_ns and meta_ns != namespace:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or meta_ns
        if not ns:
            raise ApiError.bad_request("the namespace of the object must be given for a namespaced resource")
        ns_obj = self._objects[("", "namespaces")].get(("", ns))
        if ns_obj is None:
            raise ApiError.not_found("", "namespaces", ns)
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError.forbidden(
                f"{rt.plural} is forbidden: unable to create new content in namespace {ns} "
                "because it is being terminated"
            )
        return str(ns)

    def _generate_name(self, prefix: str) -> str:
        return prefix + "".join(self._random.choice(_GENERATE_ALPHABET) for _ in range(5))

    def create(
        self, rt: ResourceType, namespace: str | None, body: JSON, options: WriteOptions | None = None
    ) -> Result:
        options = options or WriteOptions()
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request must be a JSON object")
        self._check_kind(rt, body)
        ns = self._check_namespace(rt, namespace, body)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise ApiError.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(10):
                meta["name"] = self._generate_name(str(meta["generateName"]))
                if (ns or "", meta["name"]) not in self._objects[rt.key]:
                    break
        name = meta.get("name")
        if not name:
            raise ApiError.invalid(
                rt.group,
                rt.kind,
                "",
                [
                    _cause(
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        if (ns or "", name) in self._objects[rt.key]:
            raise ApiError.already_exists(rt.group, rt.plural, str(name))
        for key in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        if ns is not None:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        if rt.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if rt.status_subresource and rt.plural not in ("namespaces",):
            obj.pop("status", None)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        warnings = self._admit(rt, obj, None, options)
        meta = obj["metadata"]  # admission may have replaced it (pruning and defaulting copy)
        if options.dry_run:
            return Result(self._served(rt, obj), warnings, created=True)
        meta["resourceVersion"] = self._next_rv()
        self._after_admit_create(rt, obj)
        self._objects[rt.key][(ns or "", name)] = obj
        self._uids[meta["uid"]] = (rt.key, (ns or "", name))
        self._index_owners(rt, obj, None)
        self._emit(rt, "ADDED", obj)
        return Result(copy.deepcopy(obj), warnings, created=True)

    def _check_kind(self, rt: ResourceType, body: JSON) -> None:
        kind = body.get("kind")
        api_version = body.get("apiVersion")
        if kind and kind != rt.kind:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version}) or the kind {kind!r} is not {rt.kind!r}"
            )
        if api_version and api_version != rt.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: JSON,
        options: WriteOptions | None = None,
        *,
        subresource: str | None = None,
    ) -> Result:
        options = options or WriteOptions()
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request must be a JSON object")
        current = self._stored(rt, namespace, name)
        self._check_kind(rt, body)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != (namespace or ""):
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        given_rv = meta.get("resourceVersion")
        if given_rv:
            if str(given_rv) != current["metadata"]["resourceVersion"]:
                raise ApiError.conflict(
                    rt.group,
                    rt.plural,
                    name,
                    _STALE,
                )
        elif rt.custom and subresource is None:
            raise ApiError.invalid(
                rt.group,
                rt.kind,
                name,
                [
                    _cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        uid = meta.get("uid")
        if uid and uid != current["metadata"]["uid"]:
            raise ApiError.conflict(
                rt.group, rt.plural, name, "Precondition failed: UID in precondition does not match"
            )
        return self._write(rt, current, copy.deepcopy(body), options, subresource)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_body: Any,
        content_type: str,
        options: WriteOptions | None = None,
        *,
        subresource: str | None = None,
    ) -> Result:
        options = options or WriteOptions()
        media = content_type.split(";", 1)[0].strip().lower()
        if media == APPLY_PATCH:
            return self._apply(rt, namespace, name, patch_body, options, subresource)
        current = self._stored(rt, namespace, name)
        if subresource == "scale":
            return self._patch_scale(rt, current, patch_body, content_type, options)
        patched = apply_patch(current, patch_body, content_type, strategic_allowed=not rt.custom)
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patched object is not a JSON object")
        patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if patched_rv and str(patched_rv) != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(
                rt.group,
                rt.plural,
                name,
                _STALE,
            )
        return self._write(rt, current, patched, options, subresource)

    def _apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str | None,
    ) -> Result:
        """Server-side apply, simplified: create if absent, else merge the applied fields (no ownership)."""
        if not options.field_manager:
            raise ApiError.bad_request("fieldManager is required for apply requests")
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of an apply request must be an object")
        if not self.exists(rt, namespace, name):
            body.setdefault("metadata", {})["name"] = name
            return self.create(rt, namespace, body, options)
        current = self._stored(rt, namespace, name)
        return self._write(rt, current, json_merge_patch(current, body), options, subresource)

    def _write(
        self, rt: ResourceType, current: JSON, new: JSON, options: WriteOptions, subresource: str | None
    ) -> Result:
        """The shared tail of update and patch: merge by subresource, admit, detect no-ops, store."""
        name = current["metadata"]["name"]
        if subresource == "status":
            if not rt.status_subresource:
                raise ApiError(
                    404, "NotFound", f"the server could not find the requested resource ({rt.plural}/status)"
                )
            obj = copy.deepcopy(current)
            if "status" in new:
                obj["status"] = new["status"]
            else:
                obj.pop("status", None)
        elif subresource is not None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({rt.plural}/{subresource})",
            )
        else:
            obj = new
            if rt.status_subresource and rt.plural != "namespaces":
                if "status" in current:
                    obj["status"] = copy.deepcopy(current["status"])
                else:
                    obj.pop("status", None)
        obj["apiVersion"] = current["apiVersion"]
        obj["kind"] = rt.kind
        meta = obj.setdefault("metadata", {})
        old_meta = current["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("managedFields", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise ApiError.invalid(
                    rt.group,
                    rt.kind,
                    name,
                    [
                        _cause(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        )
                    ],
                )
        warnings = self._admit(rt, obj, current, options)
        meta = obj["metadata"]  # admission may have replaced it (pruning and defaulting copy)
        if rt.tracks_generation and _spec_of(obj, rt) != _spec_of(current, rt):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if obj == current:
            return Result(copy.deepcopy(current), warnings)  # a no-op write changes nothing
        if options.dry_run:
            return Result(self._served(rt, obj), warnings)
        meta["resourceVersion"] = self._next_rv()
        okey = (meta.get("namespace", "") if rt.namespaced else "", name)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and old_meta.get("finalizers"):
            self._finalize(rt, okey, obj)  # the last finalizer is gone: the deletion completes
            return Result(copy.deepcopy(obj), warnings)
        self._objects[rt.key][okey] = obj
        self._index_owners(rt, obj, current)
        self._emit(rt, "MODIFIED", obj, current)
        if rt.plural == "customresourcedefinitions":
            self._sync_crd(obj)
        return Result(copy.deepcopy(obj), warnings)

    def _finalize(self, rt: ResourceType, key: ObjectKey, obj: JSON) -> None:
        """Remove an object for good (no finalizers left) and tell the watchers."""
        before = self._objects[rt.key].pop(key, None)
        self._uids.pop(obj["metadata"].get("uid", ""), None)
        self._unindex_owners(rt, obj)
        self._emit(rt, "DELETED", obj, before)
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            self._unregister_crd(obj)

    # ----------------------------------------------------------------------------------------
    # Admission: defaulting, pruning and validation per kind

    def _admit(self, rt: ResourceType, obj: JSON, old: JSON | None, options: WriteOptions) -> list[str]:
        meta = obj["metadata"]
        name = str(meta.get("name", ""))
        pattern = _DNS_LABEL if rt.plural in ("namespaces", "services") else _DNS_SUBDOMAIN
        if old is None and (len(name) > 253 or not pattern.match(name)):
            kind_text = "RFC 1123 label" if pattern is _DNS_LABEL else "RFC 1123 subdomain"
            raise ApiError.invalid(
                rt.group,
                rt.kind,
                name,
                [
                    _cause(
                        "metadata.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase {kind_text} must consist of lower case '
                        "alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character",
                    )
                ],
            )
        causes = _validate_metadata(meta)
        if causes:
            raise ApiError.invalid(rt.group, rt.kind, name, causes)
        warnings: list[str] = []
        if rt.custom and rt.schema is not None:
            warnings = self._admit_custom(rt, obj, old, options)
        admit = getattr(self, f"_admit_{rt.group.replace('.', '_')}_{rt.plural}", None)
        if admit is not None:
            admit(rt, obj, old)
        return warnings

    def _admit_custom(
        self, rt: ResourceType, obj: JSON, old: JSON | None, options: WriteOptions
    ) -> list[str]:
        assert rt.schema is not None
        pruned = schema.prune(rt.schema, obj)
        unknown = _unknown_fields(obj, pruned)
        warnings: list[str] = []
        if unknown and options.field_validation == "Strict":
            listed = ", ".join(f'unknown field "{path}"' for path in unknown)
            raise ApiError.bad_request(f"strict decoding error: {listed}")
        if unknown and options.field_validation != "Ignore":
            warnings = [f'unknown field "{path}"' for path in unknown]
        defaulted = schema.apply_defaults(rt.schema, pruned)
        errors = schema.validate(rt.schema, defaulted, old=old)
        if errors:
            raise ApiError.invalid(
                rt.group,
                rt.kind,
                str(obj["metadata"].get("name", "")),
                [_cause(error.path, error.type, error.message) for error in errors],
            )
        admitted = dict(defaulted)
        obj.clear()
        obj.update(admitted)
        return warnings

    def _admit__configmaps(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        _check_data(obj, ("data", "binaryData"))
        _check_immutable(rt, obj, old, ("data", "binaryData"))

    def _admit__secrets(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        _check_data(obj, ("data", "stringData"))
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data or "data" in obj else None
        if data is not None:
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
        _check_immutable(rt, obj, old, ("data",))

    def _admit__services(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if old is not None and (old.get("spec") or {}).get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]
            spec["clusterIPs"] = [old["spec"]["clusterIP"]]
        elif spec["type"] != "ExternalName" and spec.get("clusterIP") != "None":
            spec["clusterIP"] = self._ips.allocate()
            spec["clusterIPs"] = [spec["clusterIP"]]
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        spec.setdefault("sessionAffinity", "None")

    def _admit__pods(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        if old is None:
            obj["status"] = {"phase": "Pending"}
        if not spec.get("containers"):
            raise ApiError.invalid(
                "",
                "Pod",
                obj["metadata"]["name"],
                [_cause("spec.containers", "FieldValueRequired", "Required value")],
            )

    def _admit__namespaces(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        if old is None:
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        else:
            obj["status"] = copy.deepcopy(old.get("status") or {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def _admit_apps_deployments(self, rt: ResourceType, obj: JSON, old: JSON | None) -> None:
        spec = obj.setdefault("spec", {})
        name = obj["metadata"]["name"]
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        )
        causes: list[dict[str, str]] = []
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            causes.append(
                _cause(
                    "spec.replicas",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                )
            )
        selector = spec.get("selector")
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(_cause("spec.selector", "FieldValueRequired", "Required value"))
        elif not labels_match(
            selector_from_label_selector_object(selector), {"metadata": {"labels": template_labels}}
        ):
            causes.append(
                _cause(
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(template_labels)}: `selector` does not match "
                    "template `labels`",
                )
            )
        if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
            causes.append(_cause("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        if old is not None and selector != (old.get("spec") or {}).get("selector"):
            causes.append(
                _cause(
                    "spec.selector",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(selector)}: field is immutable",
                )
            )
        if causes:
            raise ApiError.invalid("apps", "Deployment", name, causes)

    def _admit_apiextensions_k8s_io_customresourcedefinitions(
        self, rt: ResourceType, obj: JSON, old: JSON | None
    ) -> None:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        name = obj["metadata"]["name"]
        causes: list[dict[str, str]] = []
        for path, value in (
            ("spec.group", spec.get("group")),
            ("spec.names.plural", names.get("plural")),
            ("spec.names.kind", names.get("kind")),
        ):
            if not value:
                causes.append(_cause(path, "FieldValueRequired", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(
                _cause(
                    "spec.scope",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
                )
            )
        if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
            causes.append(
                _cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            causes.append(
                _cause(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: null: must have exactly one version marked as storage version",
                )
            )
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(
                _cause(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: ...: must have exactly one version marked as storage version",
                )
            )
        for index, version in enumerate(versions):
            openapi = (version.get("schema") or {}).get("openAPIV3Schema")
            if openapi is None:
                causes.append(
                    _cause(
                        f"spec.versions[{index}].schema.openAPIV3Schema",
                        "FieldValueRequired",
                        "Required value: schemas are required",
                    )
                )
                continue
            for problem in schema.check_structural(openapi):
                causes.append(
                    _cause(
                        f"spec.versions[{index}].schema.openAPIV3Schema",
                        "FieldValueInvalid",
                        f"Invalid value: ...: {problem}",
                    )
                )
        if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
            causes.append(
                _cause(
                    "spec.scope",
                    "FieldValueInvalid",
                    f'Invalid value: "{spec.get("scope")}": field is immutable',
                )
            )
        if causes:
            raise ApiError.invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, causes)
        served = {(v.get("name"), names.get("plural")) for v in versions}
        for other in self._types.values():
            if (
                other.group == spec.get("group")
                and (other.version, other.plural) in served
                and not other.custom
            ):
                raise ApiError.invalid(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    name,
                    [
                        _cause(
                            "spec.names.plural",
                            "FieldValueInvalid",
                            "Invalid value: ...: conflicts with a built-in resource",
                        )
                    ],
                )

    def _after_admit_create(self, rt: ResourceType, obj: JSON) -> None:
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            self._establish_crd(obj)

    # ----------------------------------------------------------------------------------------
    # CRDs

    def _establish_crd(self, crd: JSON) -> None:
        names = crd["spec"]["names"]
        now = self.now()
        crd["status"] = {
            "acceptedNames": {
                k: v
                for k, v in names.items()
                if k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
            },
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
            "storedVersions": [storage_version(crd)],
        }
        crd["status"]["acceptedNames"].setdefault("listKind", f"{names['kind']}List")
        for rt in from_crd(crd):
            self._register(rt)

    def _sync_crd(self, crd: JSON) -> None:
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        for key in [
            k for k, rt in self._types.items() if rt.custom and rt.group == group and rt.plural == plural
        ]:
            del self._types[key]
        if not crd["metadata"].get("deletionTimestamp"):
            for rt in from_crd(crd):
                self._register(rt)

    def _unregister_crd(self, crd: JSON) -> None:
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        for key in [
            k for k, rt in self._types.items() if rt.custom and rt.group == group and rt.plural == plural
        ]:
            rt = self._types.pop(key)
            for okey, obj in list(self._objects[rt.key].items()):
                self._objects[rt.key].pop(okey)
                self._uids.pop(obj["metadata"].get("uid", ""), None)
                self._next_rv()
                deleted = copy.deepcopy(obj)
                deleted["metadata"]["resourceVersion"] = str(self._rv)
                self._unindex_owners(rt, obj)
                self._emit(rt, "DELETED", deleted, obj)

    # ----------------------------------------------------------------------------------------
    # Scale subresource

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        if rt.scale is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({rt.plural}/scale)"
            )
        return self._scale_of(rt, self._stored(rt, namespace, name))

    def _scale_of(self, rt: ResourceType, obj: JSON) -> JSON:
        assert rt.scale is not None
        meta = obj["metadata"]
        selector: Any
        if rt.plural == "deployments" and rt.group == "apps":
            selector = format_label_selector((obj.get("spec") or {}).get("selector"))
        else:
            selector = paths.get(obj, rt.scale.label_selector_path) if rt.scale.label_selector_path else None
        status: JSON = {"replicas": paths.get(obj, rt.scale.status_replicas_path) or 0}
        if selector:
            status["selector"] = selector
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": paths.get(obj, rt.scale.spec_replicas_path) or 0},
            "status": status,
        }

    def update_scale(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: JSON,
        options: WriteOptions | None = None,
    ) -> Result:
        if rt.scale is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({rt.plural}/scale)"
            )
        current = self._stored(rt, namespace, name)
        given_rv = (body.get("metadata") or {}).get("resourceVersion")
        if given_rv and str(given_rv) != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(
                rt.group,
                rt.plural,
                name,
                _STALE,
            )
        return self._write_scale(rt, current, body, options or WriteOptions())

    def _patch_scale(
        self, rt: ResourceType, current: JSON, patch_body: Any, content_type: str, options: WriteOptions
    ) -> Result:
        if rt.scale is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({rt.plural}/scale)"
            )
        scale = apply_patch(self._scale_of(rt, current), patch_body, content_type, strategic_allowed=True)
        given_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if given_rv and str(given_rv) != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(
                rt.group,
                rt.plural,
                current["metadata"]["name"],
                _STALE,
            )
        return self._write_scale(rt, current, scale, options)

    def _write_scale(self, rt: ResourceType, current: JSON, scale: JSON, options: WriteOptions) -> Result:
        assert rt.scale is not None
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError.invalid(
                "autoscaling",
                "Scale",
                current["metadata"]["name"],
                [
                    _cause(
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0",
                    )
                ],
            )
        updated = paths.with_value(current, rt.scale.spec_replicas_path, replicas)
        result = self._write(rt, current, updated, options, None)
        return Result(self._scale_of(rt, result.obj), result.warnings)

    # ----------------------------------------------------------------------------------------
    # Deletion

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: JSON | None = None,
        *,
        dry_run: bool = False,
    ) -> tuple[JSON, bool]:
        """Delete (or start deleting) one object; returns the body to answer and whether it is gone."""
        options = options or {}
        current = self._stored(rt, namespace, name)
        meta = current["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise ApiError.conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise ApiError.conflict(
                rt.group,
                rt.plural,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        if rt.plural == "namespaces" and not rt.group and name in _PROTECTED_NAMESPACES:
            raise ApiError.forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise ApiError.invalid(
                "",
                "DeleteOptions",
                "",
                [
                    _cause(
                        "propagationPolicy",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", '
                        '"Background", "Orphan"',
                    )
                ],
            )
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        grace = self._grace_period(rt, current, options)
        if rt.plural == "namespaces" and not rt.group:
            grace = 1  # the namespace controller empties it before it goes
        key = (meta.get("namespace", "") if rt.namespaced else "", name)
        if dry_run:
            return copy.deepcopy(current), False
        if finalizers or grace > 0 or meta.get("deletionTimestamp"):
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                if rt.plural == "pods" and grace == 0:
                    self._next_rv()
                    final = copy.deepcopy(current)
                    final["metadata"]["resourceVersion"] = str(self._rv)
                    self._finalize(rt, key, final)
                    return _success(rt, final), True
                return copy.deepcopy(current), False
            obj = copy.deepcopy(current)
            obj["metadata"]["finalizers"] = finalizers
            if not meta.get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = self.now()
                obj["metadata"]["deletionGracePeriodSeconds"] = grace
                if rt.tracks_generation:
                    obj["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
            if rt.plural == "namespaces" and not rt.group:
                obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[rt.key][key] = obj
            self._emit(rt, "MODIFIED", obj, current)
            return copy.deepcopy(obj), False
        self._next_rv()
        final = copy.deepcopy(current)
        final["metadata"]["resourceVersion"] = str(self._rv)
        self._finalize(rt, key, final)
        return _success(rt, final), True

    def _grace_period(self, rt: ResourceType, obj: JSON, options: JSON) -> int:
        """Only pods are deleted gracefully (the pod runner stops the process, then removes the pod)."""
        if rt.plural != "pods" or rt.group:
            return 0
        if options.get("gracePeriodSeconds") is not None:
            return int(options["gracePeriodSeconds"])
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed") or not obj.get("spec", {}).get(
            "nodeName"
        ):
            return 0
        return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    def remove_finalizer(self, rt: ResourceType, obj: JSON, finalizer: str) -> None:
        """Drop one finalizer (as a controller does) with an ordinary update."""
        current = self._objects[rt.key].get(_object_key(rt, obj))
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        updated = copy.deepcopy(current)
        updated["metadata"]["finalizers"] = [f for f in current["metadata"]["finalizers"] if f != finalizer]
        self._write(rt, current, updated, WriteOptions(), None)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None,
        field_selector: str | None,
        options: JSON | None = None,
        dry_run: bool = False,
    ) -> JSON:
        listed = self.list_objects(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        for item in listed["items"]:
            meta = item["metadata"]
            if self.exists(rt, meta.get("namespace"), meta["name"]):
                self.delete(rt, meta.get("namespace"), meta["name"], options, dry_run=dry_run)
        return {**listed, "items": listed["items"]}

    def finish_deletion(self, rt: ResourceType, obj: JSON) -> None:
        """Complete a pending deletion that no finalizer holds (namespaces, once they are empty)."""
        current = self._objects[rt.key].get(_object_key(rt, obj))
        if current is None or not current["metadata"].get("deletionTimestamp"):
            return
        if current["metadata"].get("finalizers"):
            return
        final = copy.deepcopy(current)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._finalize(rt, _object_key(rt, current), final)

    # ----------------------------------------------------------------------------------------
    # Watch

    def compact(self) -> int:
        """Drop the whole watch history: a watch from any older resourceVersion now gets 410 Gone."""
        self._history.clear()
        self._compacted_rv = self._rv
        return self._rv

    def subscribe(self, key: Key | None = None) -> Watcher:
        """An in-process subscription (controllers): every event of one resource, or of all."""
        watcher = Watcher(key)
        self._watchers[key].add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers[watcher.key].discard(watcher)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: float | None = None,
        bookmarks: bool = False,
        send_initial_events: bool = False,
    ) -> AsyncGenerator[JSON, None]:
        """Check the request (400 on a bad selector or version) and return its stream of watch events.

        The stream yields ``{"type", "object"}`` dicts until the timeout or until the consumer
        closes it; the caller can send its response headers before the first event arrives.
        """
        watcher = Watcher(
            rt.key,
            namespace if rt.namespaced else None,
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, rt.selectable_fields),
        )
        since: int | None = None
        if send_initial_events:
            # A streaming list (watch-list): the state now, which is "not older than" any version the
            # client gives, then a bookmark marking the end of the initial events, then changes.
            if not bookmarks:
                raise ApiError.invalid(
                    "",
                    "ListOptions",
                    "",
                    [
                        _cause(
                            "allowWatchBookmarks",
                            "FieldValueForbidden",
                            "Forbidden: allowWatchBookmarks must be set to true "
                            "when sendInitialEvents is true",
                        )
                    ],
                )
            return self._stream(rt, watcher, None, timeout_seconds, bookmarks, initial_events_end=True)
        if resource_version not in (None, "", "0"):
            since = _parse_resource_version(resource_version)
        return self._stream(rt, watcher, since, timeout_seconds, bookmarks)

    async def _stream(
        self,
        rt: ResourceType,
        watcher: Watcher,
        since: int | None,
        timeout_seconds: float | None,
        bookmarks: bool,
        *,
        initial_events_end: bool = False,
    ) -> AsyncGenerator[JSON, None]:
        # From here to the registration of the watcher nothing awaits: the backlog and the live
        # events together are exactly the history after ``since`` (or the state now, then changes).
        backlog: list[tuple[str, JSON]] = []
        if since is None:
            backlog = [
                ("ADDED", obj) for obj in self.iter_objects(rt, watcher.namespace) if watcher.accepts(obj)
            ]
        elif since < self._compacted_rv:
            too_old = ApiError.gone(f"too old resource version: {since} ({self._compacted_rv + 1})")
            yield {"type": "ERROR", "object": too_old.status()}
            return
        else:
            for event in self._history:
                if event.rv > since and event.key == rt.key:
                    translated = watcher.translate(event)
                    if translated is not None:
                        backlog.append(translated)
        self._watchers[rt.key].add(watcher)
        snapshot_rv = self._rv  # the backlog is exactly the state at this version
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_seconds if timeout_seconds else 1800 * (1 + self._random.random()))
        try:
            for event_type, obj in backlog:
                yield {"type": event_type, "object": self._served(rt, obj)}
            if initial_events_end:
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "apiVersion": rt.api_version,
                        "kind": rt.kind,
                        "metadata": {
                            "resourceVersion": str(snapshot_rv),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                }
            next_bookmark = loop.time() + self._bookmark_interval
            while True:
                now = loop.time()
                if now >= deadline:
                    return
                wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0))
                except TimeoutError:
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self._bookmark_interval
                        yield {
                            "type": "BOOKMARK",
                            "object": {
                                "apiVersion": rt.api_version,
                                "kind": rt.kind,
                                "metadata": {"resourceVersion": str(self._rv)},
                            },
                        }
                    continue
                translated = watcher.translate(event)
                if translated is not None:
                    yield {"type": translated[0], "object": self._served(rt, translated[1])}
        finally:
            self._watchers[rt.key].discard(watcher)


class _IpAllocator:
    """Cluster IPs for Services, from a loopback range so that a local proxy could listen on them."""

    def __init__(self, network: str = "127.96.0.0/16") -> None:
        self._hosts = ipaddress.ip_network(network).hosts()

    def allocate(self) -> str:
        return str(next(self._hosts))


def _parse_resource_version(text: str | None) -> int:
    try:
        return int(str(text))
    except ValueError as exc:
        raise ApiError.bad_request(f"invalid resource version: {text!r}") from exc


def _object_key(rt: ResourceType, obj: JSON) -> ObjectKey:
    meta = obj["metadata"]
    return (meta.get("namespace", "") if rt.namespaced else "", meta["name"])


def _spec_of(obj: JSON, rt: ResourceType) -> JSON:
    """What moves ``generation``: everything but metadata (and status, when it has a subresource)."""
    ignored = (
        ("metadata", "apiVersion", "kind", "status")
        if rt.status_subresource
        else ("metadata", "apiVersion", "kind")
    )
    return {k: v for k, v in obj.items() if k not in ignored}


def _check_data(obj: JSON, fields: tuple[str, ...]) -> None:
    """ConfigMap and Secret data are maps of strings: anything else fails to decode (400)."""
    for name in fields:
        data = obj.get(name)
        if data is None:
            continue
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            kind = obj.get("kind", "object")
            raise ApiError.bad_request(
                f'{kind} in version "v1" cannot be handled as a {kind}: '
                f"json: cannot unmarshal into Go struct field {kind}.{name} of type map[string]string"
            )


def _check_immutable(rt: ResourceType, obj: JSON, old: JSON | None, fields: tuple[str, ...]) -> None:
    """``immutable: true`` freezes the data and cannot be unset (422 naming the field)."""
    if old is None or not old.get("immutable"):
        return
    causes = [
        _cause(name, "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")
        for name in fields
        if obj.get(name) != old.get(name)
    ]
    if not obj.get("immutable"):
        causes.append(
            _cause(
                "immutable", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"
            )
        )
    if causes:
        raise ApiError.invalid("", rt.kind, obj["metadata"]["name"], causes)


def _cause(path: str, reason: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": path}


def _success(rt: ResourceType, obj: JSON) -> JSON:
    meta = obj["metadata"]
    details: JSON = {"name": meta["name"], "kind": rt.plural, "uid": meta["uid"]}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _unknown_fields(original: Any, pruned: Any, prefix: str = "") -> list[str]:
    """Paths present in ``original`` that pruning removed (unknown to the schema)."""
    found: list[str] = []
    if isinstance(original, dict) and isinstance(pruned, dict):
        for key, value in original.items():
            path = f"{prefix}.{key}" if prefix else key
            if key not in pruned:
                found.append(path)
            else:
                found.extend(_unknown_fields(value, pruned[key], path))
    elif isinstance(original, list) and isinstance(pruned, list):
        for index, (a, b) in enumerate(zip(original, pruned, strict=False)):
            found.extend(_unknown_fields(a, b, f"{prefix}[{index}]"))
    return found


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_PREFIX = _DNS_SUBDOMAIN


def _validate_metadata(meta: JSON) -> list[dict[str, str]]:
    """The ObjectMeta rules every kind shares: label and annotation keys and values."""
    causes: list[dict[str, str]] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [_cause("metadata.labels", "FieldValueTypeInvalid", "Invalid value: must be a map")]
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _LABEL_PREFIX.match(prefix)) or len(name) > 63 or not _LABEL_NAME.match(name):
            causes.append(
                _cause(
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            causes.append(
                _cause(
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character",
                )
            )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        causes.append(
            _cause(
                "metadata.annotations",
                "FieldValueTypeInvalid",
                "Invalid value: annotations must be a map of strings",
            )
        )
    elif sum(len(k) + len(v) for k, v in annotations.items()) > 256 * 1024:
        causes.append(
            _cause("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes")
        )
    return causes
