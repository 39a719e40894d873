"""The sandbox's control plane: garbage collector, namespace lifecycle and Deployment controller.

Each controller is level-based: an event only says *which* object to look at again, and the
controller then compares the stored state with the desired one. They call :class:`ApiServer`
in-process, so their writes get resource versions, watch events and validation like any client's.

* Garbage collector: an object whose owners (by uid) are all gone is deleted; a dangling owner
  reference next to a live owner is removed. ``Foreground`` deletion deletes the dependents first
  and releases the owner when no dependent with ``blockOwnerDeletion`` is left; ``Orphan``
  deletion strips the owner references from the dependents, then releases the owner.
* Namespaces: a deleted namespace is ``Terminating`` until every object in it is gone (objects
  with finalizers keep it there, as on a real cluster).
* Deployments: Pods are created directly (no ReplicaSet), named
  ``<deployment>-<template hash>-<suffix>`` and labelled ``pod-template-hash``. A changed template
  creates new Pods first and removes the old ones once the new ones are ready (a surge rollout).
  ``status`` reports replicas, updated, ready and available counts and ``observedGeneration``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from typing import Any

from tideflow.sandbox.apiserver import FOREGROUND, ORPHAN, ApiServer, Event, WriteOptions
from tideflow.sandbox.errors import ApiError
from tideflow.sandbox.resources import ResourceType

logger = logging.getLogger("tideflow.sandbox.controllers")
JSON = dict[str, Any]


def template_hash(template: JSON) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


class Controllers:
    """Runs the garbage collector, the namespace controller and the Deployment controller."""

    def __init__(self, api: ApiServer, node_name: str = "sandbox") -> None:
        self.api = api
        self.node_name = node_name
        self._pods = api.resource("", "v1", "pods")
        self._deployments = api.resource("apps", "v1", "deployments")
        self._namespaces = api.resource("", "v1", "namespaces")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Controllers:
        watcher = self.api.subscribe(None)
        self._task = asyncio.create_task(self._loop(watcher))
        for deployment in list(self.api.iter_objects(self._deployments)):
            self._sync_deployment(deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self, watcher: Any) -> None:
        try:
            while True:
                event: Event = await watcher.queue.get()
                try:
                    self.handle(event)
                except ApiError as exc:
                    logger.debug("controller write refused (%s): %s", exc.code, exc.message)
                except Exception:
                    logger.exception("controller failed on %s %s", event.type, event.key)
        finally:
            self.api.unsubscribe(watcher)

    def handle(self, event: Event) -> None:
        """React to one store event (public so that tests can drive the controllers step by step)."""
        obj = event.obj
        meta = obj.get("metadata", {})
        self._collect_garbage(event)
        if event.key == ("", "namespaces") and meta.get("deletionTimestamp"):
            self._sync_namespace(meta["name"])
        elif meta.get("namespace") and event.type == "DELETED":
            ns = self.api.namespace_object(meta["namespace"])
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self._sync_namespace(meta["namespace"])
        if event.key == ("apps", "deployments") and event.type != "DELETED":
            self._sync_deployment(meta["namespace"], meta["name"])
        elif event.key == ("", "pods"):
            for owner in meta.get("ownerReferences") or []:
                is_deployment = owner.get("kind") == "Deployment" and owner.get("apiVersion") == "apps/v1"
                if is_deployment and self.api.exists(self._deployments, meta.get("namespace"), owner["name"]):
                    self._sync_deployment(meta["namespace"], owner["name"])

    # ------------------------------------------------------------------------------------------
    # Garbage collection

    def _collect_garbage(self, event: Event) -> None:
        meta = event.obj.get("metadata", {})
        uid = meta.get("uid", "")
        if event.type == "DELETED":
            for dep_rt, dependent in self.api.dependents(uid):
                self._check_dependent(dep_rt, dependent)
            for owner in meta.get("ownerReferences") or []:
                found = self.api.by_uid(owner.get("uid", ""))
                if found is not None and FOREGROUND in (found[1]["metadata"].get("finalizers") or []):
                    self._foreground(found[0], found[1])
            return
        rt = self.api.type_for_key(event.key)
        if rt is None:
            return
        if meta.get("ownerReferences"):
            self._check_dependent(rt, event.obj)
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and ORPHAN in finalizers:
            self._orphan(rt, event.obj)
        elif meta.get("deletionTimestamp") and FOREGROUND in finalizers:
            self._foreground(rt, event.obj)

    def _check_dependent(self, rt: ResourceType, obj: JSON) -> None:
        meta = obj["metadata"]
        if not self.api.exists(rt, meta.get("namespace"), meta["name"]):
            return
        refs = meta.get("ownerReferences") or []
        alive = [ref for ref in refs if self.api.uid_exists(ref.get("uid", ""))]
        if not alive:
            if not meta.get("deletionTimestamp"):
                self.api.delete(rt, meta.get("namespace"), meta["name"], {"propagationPolicy": "Background"})
        elif len(alive) != len(refs):
            current = self.api.get(rt, meta.get("namespace"), meta["name"])
            current["metadata"]["ownerReferences"] = alive
            self.api.update(rt, meta.get("namespace"), meta["name"], current, WriteOptions())

    def _foreground(self, rt: ResourceType, owner: JSON) -> None:
        dependents = self.api.dependents(owner["metadata"]["uid"])
        blocking = 0
        for dep_rt, dependent in dependents:
            dep_meta = dependent["metadata"]
            if not dep_meta.get("deletionTimestamp"):
                self.api.delete(
                    dep_rt, dep_meta.get("namespace"), dep_meta["name"], {"propagationPolicy": "Foreground"}
                )
            refs = [
                r for r in dep_meta.get("ownerReferences") or [] if r.get("uid") == owner["metadata"]["uid"]
            ]
            if any(r.get("blockOwnerDeletion") for r in refs) and self.api.exists(
                dep_rt, dep_meta.get("namespace"), dep_meta["name"]
            ):
                blocking += 1
        if blocking == 0:
            self.api.remove_finalizer(rt, owner, FOREGROUND)

    def _orphan(self, rt: ResourceType, owner: JSON) -> None:
        uid = owner["metadata"]["uid"]
        for dep_rt, dependent in self.api.dependents(uid):
            current = self.api.get(
                dep_rt, dependent["metadata"].get("namespace"), dependent["metadata"]["name"]
            )
            current["metadata"]["ownerReferences"] = [
                r for r in current["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
            ]
            self.api.update(
                dep_rt, current["metadata"].get("namespace"), current["metadata"]["name"], current
            )
        self.api.remove_finalizer(rt, owner, ORPHAN)

    # ------------------------------------------------------------------------------------------
    # Namespaces

    def _sync_namespace(self, name: str) -> None:
        remaining = 0
        for rt in self.api.types():
            if not rt.namespaced:
                continue
            for obj in list(self.api.iter_objects(rt, name)):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self.api.delete(
                        rt,
                        name,
                        obj["metadata"]["name"],
                        {"propagationPolicy": "Background", "gracePeriodSeconds": 0},
                    )
        if remaining == 0 or not any(
            True for rt in self.api.types() if rt.namespaced for _ in self.api.iter_objects(rt, name)
        ):
            namespace = self.api.namespace_object(name)
            if namespace is not None:
                self.api.finish_deletion(self._namespaces, namespace)

    # ------------------------------------------------------------------------------------------
    # Deployments

    def _sync_deployment(self, namespace: str, name: str) -> None:
        if not self.api.exists(self._deployments, namespace, name):
            return
        deployment = self.api.get(self._deployments, namespace, name)
        meta = deployment["metadata"]
        if meta.get("deletionTimestamp"):
            return
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        wanted_hash = template_hash(template)
        pods = [
            pod
            for pod in self.api.iter_objects(self._pods, namespace)
            if any(ref.get("uid") == meta["uid"] for ref in pod["metadata"].get("ownerReferences") or [])
        ]
        live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
        current = [
            pod for pod in live if pod["metadata"].get("labels", {}).get("pod-template-hash") == wanted_hash
        ]
        old = [pod for pod in live if pod not in current]
        for _ in range(desired - len(current)):
            self._create_pod(deployment, template, wanted_hash)
        if len(current) > desired:
            surplus = sorted(current, key=lambda p: (_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in surplus[: len(current) - desired]:
                self._delete_pod(pod)
        ready_current = sum(1 for pod in current if _ready(pod))
        if ready_current >= desired or desired == 0:
            for pod in old:
                self._delete_pod(pod)
        self._write_deployment_status(deployment, live, current)

    def _create_pod(self, deployment: JSON, template: JSON, pod_hash: str) -> None:
        meta = deployment["metadata"]
        pod_meta = copy.deepcopy(template.get("metadata") or {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), "pod-template-hash": pod_hash}
        pod_meta["generateName"] = f"{meta['name']}-{pod_hash}-"
        pod_meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        spec = copy.deepcopy(template.get("spec") or {})
        spec["nodeName"] = self.node_name
        self.api.create(self._pods, meta["namespace"], {"metadata": pod_meta, "spec": spec})

    def _delete_pod(self, pod: JSON) -> None:
        self.api.delete(self._pods, pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _write_deployment_status(self, deployment: JSON, live: list[JSON], current: list[JSON]) -> None:
        meta = deployment["metadata"]
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        ready = sum(1 for pod in live if _ready(pod))
        updated = len(current)
        available = ready >= desired
        previous = deployment.get("status") or {}
        conditions = []
        for type_, condition_status, reason, message in (
            (
                "Available",
                "True" if available else "False",
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if updated >= desired else "ReplicaSetUpdated",
                f"Pods with template hash are {'available' if available else 'progressing'}.",
            ),
        ):
            before = next((c for c in previous.get("conditions") or [] if c.get("type") == type_), None)
            unchanged = before is not None and before.get("status") == condition_status
            since = before["lastTransitionTime"] if before is not None and unchanged else self.api.now()
            conditions.append(
                {
                    "type": type_,
                    "status": condition_status,
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": since,
                    "lastTransitionTime": since,
                }
            )
        status: JSON = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(live),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        if len(live) - ready > 0:
            status["unavailableReplicas"] = len(live) - ready
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        if status != previous:
            updated_obj = copy.deepcopy(deployment)
            updated_obj["status"] = status
            self.api.update(
                self._deployments, meta["namespace"], meta["name"], updated_obj, subresource="status"
            )


def _ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
